"""A stand-in for an Airflow worker: run ``HPGamesBulkCancelRewardsOperator.execute()`` once, in this process.

``python tests/e2e/bulk_cancel_worker.py --reward-ids-path F --results-path D [--batch-size N]
[--max-concurrency N] [--no-resume] --out SUMMARY.json``. The connection comes from ``AIRFLOW_CONN_HPGAMES_DEFAULT``.
The task context is the minimal one of the operator tests (a task-instance stub) plus the
``outlet_events`` accessor a real task gets, so the results Asset event has somewhere to go. On success
the XCom return value is written to ``--out``; a failure exits 1 with the traceback on stderr. The
SIGKILL test (test_resume_after_kill.py) kills this process by PID and starts it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.operators.conftest import TaskInstanceStub  # noqa: E402

DAG_ID, RUN_ID, TASK_ID = "resume_after_kill", "manual__1", "cancel_rewards"


class WorkerTaskInstance(TaskInstanceStub):
    """The operator tests' stub, with the identity a record's manifest names."""

    dag_id, run_id, task_id, map_index, try_number = DAG_ID, RUN_ID, TASK_ID, -1, 1


def context() -> dict[str, Any]:
    """The task context of one try."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = WorkerTaskInstance()
    return {"ti": ti, "task_instance": ti, "params": {}, "run_id": RUN_ID, "outlet_events": OutletEventAccessors()}


def main(argv: list[str] | None = None) -> int:
    """Build the operator from the arguments, execute it, write its return value."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reward-ids-path", required=True)
    parser.add_argument("--results-path", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--no-resume", action="store_true", help="resume=False: start over")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator

    operator = HPGamesBulkCancelRewardsOperator(
        task_id=TASK_ID,
        reward_ids_path=args.reward_ids_path,
        results_path=args.results_path,
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
        resume=not args.no_resume,
    )
    summary = operator.execute(context())
    Path(args.out).write_text(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
