"""The flagship teardown on a distributed Airflow: CeleryExecutor, PostgreSQL, Redis, two workers (issue #17).

The cluster (``cluster.py``) and the sandbox run on 127.0.0.1. Through the REST API the test triggers
``rewards_campaign_teardown`` for 20 Thanx jobs (their waits deferred in the triggerer), 100,000 HPGames reward
ids from a file (``hpgames_reward_ids_path``) and 20 players by query, then, during the run:

1. SIGKILLs the Celery worker running the bulk cancel once a tenth of its batches are sent: the scheduler
   notices the lost heartbeat, the task is retried on the other worker and resumes from its checkpoint;
   the sandbox's request log must hold every batch digest, at most one of them twice (the batch in flight).
2. once every wait is deferred, measures the worker slots they hold (must be 0), SIGKILLs the triggerer and
   starts a new one: every trigger row must move to the new triggerer, which polls the jobs again.
3. moves the sandbox clock past the revocation: the waits finish and the report runs.

Then it checks the sandbox (everything targeted torn down, nothing else touched), the results record, every
task's final state, and scans for the planted secrets every component's output, every component's
``AIRFLOW_HOME`` (task logs, airflow.cfg), the records, the REST answers and PostgreSQL (every text column,
the trigger kwargs decrypted, ``pg_dump``). The checks are the functions of ``checks.py``; ``test_checks.py``
shows that they fail, naming what is left, on a run that skips a batch.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rewards_sandbox import DEMO_HPGAMES_MERCHANT_ID, DEMO_THANX_MERCHANT_ID, SandboxServer

from tests.e2e.distributed import checks
from tests.e2e.distributed.cluster import WORKERS, Cluster
from tests.e2e.distributed.conftest import ID_SOURCE, REVOKE_SECONDS, job_ids, query_player_ids, reward_ids
from tests.e2e.secret_scan import as_text, decrypted_triggers, files_under, find_leaks, postgres_text_columns
from tests.e2e.stack import AirflowStack, Deadline

DAG_ID = "rewards_campaign_teardown"
RUN_ID = "e2e_distributed"
SENSOR = "wait_until_revoked"
BY_FILE = "cancel_rewards_by_id_file"
BY_LIST = "cancel_rewards_by_id"
BATCH_SIZE = 500
#: Tasks this run uses (the others skip: their list is empty, their path null).
USED = {"thanx_job_ids", "revoke_thanx_jobs", "jobs_to_wait_for", SENSOR, "cancel_rewards_by_player", "teardown_report"}
FINISHED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
TRIGGER_CLASSPATH = "airflow_provider_rewards.triggers.thanx.ThanxIssuanceJobTrigger"


class Run:
    """REST views of the one DAG run of the test."""

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack
        self.path = f"/dags/{DAG_ID}/dagRuns/{RUN_ID}"

    def task_instances(self) -> list[dict[str, Any]]:
        answer = self.stack.api_json("GET", f"{self.path}/taskInstances", params={"limit": 100})
        return answer["task_instances"]

    def instances_of(self, task_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances() if ti["task_id"] == task_id]

    def states(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for ti in self.task_instances():
            found.setdefault(ti["task_id"], []).append(ti["state"])
        return found

    def dag_run(self) -> dict[str, Any]:
        return self.stack.api_json("GET", self.path)


def bulk_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [e for e in sandbox.request_log() if e["path"] == checks.BULK_CANCEL_PATH and e["status"] == 200]


def job_polls(sandbox: SandboxServer) -> int:
    return sum(1 for e in sandbox.request_log() if e["method"] == "GET" and "/issuance_jobs/" in e["path"])


def worker_holding(cluster: Cluster, task_id: str, try_number: int) -> str:
    """The worker whose own AIRFLOW_HOME holds the task log of that try (each worker logs to its own home)."""
    holders = [
        name
        for name in WORKERS
        if any(
            cluster.home(name).glob(f"logs/dag_id={DAG_ID}/run_id={RUN_ID}/task_id={task_id}/attempt={try_number}.log")
        )
    ]
    return holders[0] if len(holders) == 1 else ""


def trigger_rows(cluster: Cluster) -> dict[int, int | None]:
    return dict(cluster.query("SELECT id, triggerer_id FROM trigger"))  # type: ignore[arg-type]


def running_triggerer_ids(cluster: Cluster) -> list[int]:
    rows = cluster.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id")
    return [row[0] for row in rows]


def db_text(cluster: Cluster) -> dict[str, str]:
    with cluster.connect() as conn, conn.cursor() as cursor:
        return postgres_text_columns(cursor)


@pytest.mark.e2e
def test_flagship_teardown_on_celery_postgres_redis_survives_a_killed_worker_and_triggerer(
    cluster: Cluster, sandbox: SandboxServer, planted_secrets: dict[str, str], deadline: Deadline, tmp_path: Path
) -> None:
    stack = cluster.stack
    run = Run(stack)
    timings = dict(cluster.timings)
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        timings[name] = time.monotonic() - mark
        mark = time.monotonic()

    def wait(what: str, probe: Callable[[], Any], limit: float, interval: float = 1.0) -> Any:
        return stack.wait_for(what, probe, deadline, limit=limit, interval=interval)

    # 0. Everything up, the DAG parsed; a file or a list, whichever the DAG takes.
    wait("scheduler, triggerer and dag-processor to be healthy", stack.healthy, 240)
    wait(f"DAG {DAG_ID} to be parsed", lambda: stack.api("GET", f"/dags/{DAG_ID}").ok or None, 180)
    phase("components healthy, DAG parsed")
    params = stack.api_json("GET", f"/dags/{DAG_ID}/details")["params"]
    has_path = "hpgames_reward_ids_path" in params
    if ID_SOURCE == "file" and not has_path:
        raise stack.fail(f"E2E_DISTRIBUTED_ID_SOURCE=file but {DAG_ID} has no hpgames_reward_ids_path param")
    by_file = has_path and ID_SOURCE != "list"
    bulk_task = BY_FILE if by_file else BY_LIST
    ids = reward_ids()
    targets = checks.Targets(
        thanx_merchant_id=DEMO_THANX_MERCHANT_ID,
        hpgames_merchant_id=DEMO_HPGAMES_MERCHANT_ID,
        issuance_job_ids=frozenset(job_ids()),
        reward_ids=frozenset(ids),
        player_ids=frozenset(query_player_ids()),
    )
    conf: dict[str, Any] = {
        "thanx_merchant_id": DEMO_THANX_MERCHANT_ID,
        "issuance_job_ids": job_ids(),
        "hpgames_player_ids": query_player_ids(),
        "dry_run": False,
    }
    results_root = tmp_path / "records"
    if by_file:
        ids_file = tmp_path / "reward_ids.txt"
        ids_file.write_text("".join(f"{i}\n" for i in ids))
        conf |= {"hpgames_reward_ids_path": str(ids_file), "hpgames_results_path": str(results_root)}
    else:
        conf["hpgames_reward_ids"] = ids
    before = sandbox.snapshot()

    # 1. Trigger through the REST API.
    assert stack.api_json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})["is_paused"] is False
    answer = stack.api_json(
        "POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": RUN_ID, "logical_date": None, "conf": conf}
    )
    assert answer["dag_run_id"] == RUN_ID
    triggered = time.monotonic()
    phase("triggered")

    # 2. SIGKILL the worker running the bulk cancel once a tenth of its batches are sent.
    expected_batches = checks.batches(ids, BATCH_SIZE)
    kill_at = max(2, len(expected_batches) // 10)

    def bulk_in_flight() -> str | None:
        ti = run.instances_of(bulk_task)
        if ti and ti[0]["state"] in FINISHED:
            raise stack.fail(f"{bulk_task} ended {ti[0]['state']} before its worker could be killed; raise LATENCY_MS")
        if len(bulk_requests(sandbox)) < kill_at or not ti or ti[0]["state"] != "running":
            return None
        return worker_holding(cluster, bulk_task, ti[0]["try_number"]) or None

    victim = wait(f"{bulk_task} to send {kill_at} batches", bulk_in_flight, 300, interval=0.2)
    first_try = run.instances_of(bulk_task)[0]["try_number"]
    sent_before_kill = len(bulk_requests(sandbox))
    stack.kill(stack.component(victim), signal.SIGKILL)
    phase(f"bulk cancel running; {victim} SIGKILLed after {sent_before_kill} batches")
    survivor = next(name for name in WORKERS if name != victim)

    # 3. Every wait deferred: the slots they hold, then the triggerer killed and replaced.
    def all_deferred() -> list[dict[str, Any]] | None:
        sensors = run.instances_of(SENSOR)
        bad = [ti for ti in sensors if ti["state"] in FINISHED]
        if bad:
            raise stack.fail(
                f"a wait ended before the revocation finished: {[(t['map_index'], t['state']) for t in bad]}"
            )
        deferred = [ti for ti in sensors if ti["state"] == "deferred"]
        return sensors if len(deferred) == len(job_ids()) else None

    wait(f"all {len(job_ids())} waits to be deferred", all_deferred, 420, interval=1.0)
    phase("all waits deferred")
    instances = run.task_instances()
    sensor_slots = sum(1 for ti in instances if ti["task_id"] == SENSOR and ti["state"] in ("running", "queued"))
    running_now = sorted(f"{ti['task_id']}[{ti['map_index']}]" for ti in instances if ti["state"] == "running")
    old_triggerers = running_triggerer_ids(cluster)

    def assigned() -> dict[int, int | None] | None:
        # A wait is "deferred" as soon as its trigger row exists; the triggerer claims the row on its next
        # load, a moment later. Only a row that stays unclaimed is a failure.
        now = trigger_rows(cluster)
        return now if len(now) == len(job_ids()) and set(now.values()) <= set(old_triggerers) else None

    rows = wait(f"triggerer(s) {old_triggerers} to claim every trigger row", assigned, 60)
    assert len(rows) == len(job_ids()), f"expected one trigger row per wait: {rows}"
    with cluster.connect() as conn, conn.cursor() as cursor:
        decrypted = decrypted_triggers(cursor, cluster.fernet_key)
        deferred_db = postgres_text_columns(cursor)
    assert len(decrypted) == len(job_ids())
    assert all(TRIGGER_CLASSPATH in where for where in decrypted), sorted(decrypted)
    assert {job for job in job_ids() if any(job in kwargs for kwargs in decrypted.values())} == set(job_ids())
    assert sensor_slots == 0, f"{sensor_slots} worker slots held by deferred waits"

    polls_before = job_polls(sandbox)
    stack.kill(stack.component("triggerer"), signal.SIGKILL)
    cluster.start_airflow("triggerer")

    def reassigned() -> dict[int, int | None] | None:
        now = trigger_rows(cluster)
        fresh = set(running_triggerer_ids(cluster)) - set(old_triggerers)
        return now if fresh and set(now.values()) <= fresh and len(now) == len(job_ids()) else None

    new_rows = wait("the trigger rows to move to the new triggerer", reassigned, 180)
    wait("the new triggerer to poll the jobs", lambda: job_polls(sandbox) >= polls_before + len(job_ids()) or None, 90)
    assert {ti["state"] for ti in run.instances_of(SENSOR)} == {"deferred"}
    phase("triggerer SIGKILLed, new one adopted the triggers")

    # 4. The bulk cancel retried on the other worker and finished.
    def bulk_done() -> dict[str, Any] | None:
        ti = run.instances_of(bulk_task)[0]
        if ti["state"] in ("failed", "upstream_failed"):
            raise stack.fail(f"{bulk_task} ended {ti['state']} after its worker was killed")
        return ti if ti["state"] == "success" else None

    bulk_ti = wait(f"{bulk_task} to be retried and succeed", bulk_done, 300)
    assert bulk_ti["try_number"] > first_try, bulk_ti
    assert worker_holding(cluster, bulk_task, bulk_ti["try_number"]) == survivor
    phase("bulk cancel retried on the other worker")

    # 5. The revocations finish; the waits resume on a worker, the report runs.
    sandbox.clock.advance(REVOKE_SECONDS)

    def run_finished() -> dict[str, Any] | None:
        dag_run = run.dag_run()
        return dag_run if dag_run["state"] in ("success", "failed") else None

    dag_run = wait("the DAG run to finish", run_finished, 300)
    teardown_seconds = time.monotonic() - triggered
    phase("waits released, report ran")
    after = sandbox.snapshot()

    # 6. The checks: sandbox, task states, the record, the batches sent.
    states = run.states()
    expected = {task_id: "success" if task_id in USED | {bulk_task} else "skipped" for task_id in _task_ids(stack)}
    problems = checks.sandbox_problems(before, after, targets)
    problems += checks.task_problems(states, expected)
    if dag_run["state"] != "success":
        problems.append(f"DAG run {RUN_ID} ended {dag_run['state']}")
    sent = bulk_requests(sandbox)
    if by_file:
        record = results_root / bulk_task
        problems += checks.results_problems(record / "results.jsonl", ids)
        problems += checks.batch_problems(sent, expected_batches, resends=1)
    else:  # no resumption for a list: the retry sends everything again, but nothing may be lost
        problems += checks.batch_problems(sent, expected_batches, resends=len(expected_batches))
    checks.require_clean(problems, stack)
    phase("checks")

    # 7. The secret scan: everything the SQLite e2e scans, plus PostgreSQL.
    xcoms = {
        f"XCom {ti['task_id']}[{ti['map_index']}] (REST)": as_text(_xcom(stack, run, ti))
        for ti in run.task_instances()
        if ti["state"] == "success"
    }
    end_db = db_text(cluster)
    dump = cluster.pg_dump()
    exit_codes = cluster.stop()
    sources: dict[str, str | bytes] = {
        **files_under(stack.logs_dir),
        **files_under(cluster.root / "homes"),
        **(files_under(results_root) if results_root.exists() else {}),
        **xcoms,
        "task instances (REST)": as_text(instances),
        "DAG run (REST)": as_text(dag_run),
        **{f"PostgreSQL while deferred: {k}": v for k, v in deferred_db.items()},
        **{f"PostgreSQL decrypted {k}": v for k, v in decrypted.items()},
        **{f"PostgreSQL at the end: {k}": v for k, v in end_db.items()},
        "pg_dump --data-only": dump,
    }
    task_logs = [p for p in sources if "/logs/dag_id=" in p]
    assert any(f"task_id={bulk_task}" in p for p in task_logs), "no task log of the bulk cancel was scanned"
    assert deferred_db["trigger.kwargs"], "no trigger kwargs were scanned while the waits were deferred"
    assert end_db["xcom.value"], "no XCom value was scanned"
    leaks = find_leaks(planted_secrets, sources)
    phase("secret scan")

    slots_note = f"{sensor_slots} (running TIs then: {running_now or 'none'})"
    print(f"\ndistributed e2e ({'file' if by_file else 'list'} of {len(ids)} ids, {len(expected_batches)} batches):")
    print(f"  worker slots held by the {len(job_ids())} deferred waits: {slots_note}")
    print(f"  teardown wall time (trigger -> run finished): {teardown_seconds:.1f} s")
    print(
        f"  bulkCancel requests: {len(sent)} (killed {victim} after {sent_before_kill}); triggers moved to {new_rows}"
    )
    plain = sum(1 for where in decrypted if where.endswith("(plain)"))
    print(f"  trigger kwargs in PostgreSQL: {plain} plain JSON, {len(decrypted) - plain} Fernet-encrypted")
    per_worker = {
        name: len(list(cluster.home(name).glob("logs/dag_id=*/run_id=*/task_id=*/**/*.log"))) for name in WORKERS
    }
    print(f"  task logs per worker: {per_worker}")
    print(f"  phases (s): { {name: round(s, 1) for name, s in timings.items()} }")
    print(f"  scanned {len(sources)} sources, {sum(map(len, sources.values()))} bytes; exit codes {exit_codes}")
    assert not leaks, "planted secrets leaked:\n" + "\n".join(leaks)


def _task_ids(stack: AirflowStack) -> list[str]:
    return [task["task_id"] for task in stack.api_json("GET", f"/dags/{DAG_ID}/tasks")["tasks"]]


def _xcom(stack: AirflowStack, run: Run, ti: dict[str, Any]) -> Any:
    path = f"{run.path}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
    response = stack.api("GET", path, params={"map_index": ti["map_index"], "deserialize": "true"})
    return response.json() if response.status_code == 200 else None
