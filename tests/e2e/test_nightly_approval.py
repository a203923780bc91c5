"""The nightly teardown's approval guard in a real deployment: api-server, scheduler, dag-processor, triggerer.

Two runs of ``dags/rewards_nightly_teardown.py``, triggered through the REST API against the sandbox (its
clock past the demo's ended configuration and campaign), each with its own record root:

1. above the threshold (1): the run waits in ``approve_teardown``; the test reads the approval request (counts
   per vendor and target type, a sample, the plan's path), rejects it through the REST API, and nothing is
   touched; the approval task ends skipped, and so does everything after it (the record saying why);
2. above the threshold again: the test approves through the REST API and the teardown runs, cancelling
   exactly the plan's rewards and revoking exactly its jobs.

At or below the threshold no approval is asked: ``tests/dags/test_rewards_nightly_teardown.py`` asserts it on
the metadata database (no human-in-the-loop request at all), without the cost of a third run here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rewards_sandbox as seed
from rewards_sandbox.demo import Credentials, airflow_env
from rewards_sandbox.testing import job_states, reward_statuses, running_sandbox

from tests.e2e.stack import AirflowStack, Deadline, free_port, running_stack, stack_settings

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "rewards_nightly_teardown.py"
DAG_ID = "rewards_nightly_teardown"
APPROVAL_TASK = "approve_teardown"
TEST_BUDGET_SECONDS = 150.0
SANDBOX_NOW_MS = 1756710000000  # 2025-09-01T07:00Z, past the demo's ended configuration and campaign
WAITING_STATES = frozenset({"awaiting_input", "deferred"})  # Airflow 3.3+ parks the task; 3.1-3.2 defer it
FINISHED = frozenset({"success", "failed"})
ENDED_REWARDS = dict.fromkeys(seed.DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS, "CANCELLED")
ENDED_JOBS = dict.fromkeys(seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS, "revoked")


@pytest.fixture
def deadline() -> Deadline:
    return Deadline(TEST_BUDGET_SECONDS)


@pytest.fixture
def sandbox() -> Iterator[Any]:
    with running_sandbox(revoke_seconds=1.0) as server:
        server.clock.set_ms(SANDBOX_NOW_MS)
        yield server


@pytest.fixture
def job_record(tmp_path) -> str:
    """The ended campaign's two jobs and a running campaign's job."""
    path = tmp_path / "thanx-jobs.txt"
    path.write_text("\n".join([*seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS, seed.DEMO_THANX_UNTOUCHED_JOB_ID]) + "\n")
    return f"file://{path}"


@pytest.fixture
def nightly_stack(tmp_path, sandbox) -> Iterator[AirflowStack]:
    """The four components on a migrated SQLite home whose DAG folder holds only the nightly DAG."""
    port = free_port()
    dags, home = tmp_path / "dags", tmp_path / "airflow-home"
    dags.mkdir()
    home.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    settings = {
        **stack_settings(port),
        "REWARDS_NIGHTLY_RECORD_ROOT": f"file://{tmp_path}/scheduled-records",
        "REWARDS_TEARDOWN_POLL_INTERVAL": "1",
        "REWARDS_TEARDOWN_RETRY_DELAY": "1",
    }
    env = airflow_env(home, dags, sandbox.base_url, Credentials.demo(), poll_interval=1, extra=settings)
    with running_stack(env, port, tmp_path / "components") as stack:
        yield stack


class NightlyRuns:
    """Trigger runs and read their task instances and approval requests through the REST API."""

    def __init__(self, stack: AirflowStack, deadline: Deadline, tmp_path: Path, job_record: str) -> None:
        self.stack, self.deadline, self.tmp_path, self.job_record = stack, deadline, tmp_path, job_record

    def trigger(self, run_id: str, logical_date: str, **conf: Any) -> None:
        conf = {"record_root": f"file://{self.tmp_path}/{run_id}", "thanx_job_record": self.job_record, **conf}
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        assert self.stack.api_json("POST", f"/dags/{DAG_ID}/dagRuns", json=body)["dag_run_id"] == run_id

    def task(self, run_id: str, task_id: str) -> dict[str, Any] | None:
        response = self.stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
        return None if response.status_code == 404 else response.json()

    def wait_for_approval_request(self, run_id: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            ti = self.task(run_id, APPROVAL_TASK)
            if ti and ti["state"] in FINISHED | {"skipped", "upstream_failed"}:
                raise self.stack.fail(f"{APPROVAL_TASK} ended {ti['state']} without asking for approval")
            return ti if ti and ti["state"] in WAITING_STATES else None

        self.stack.wait_for(f"{run_id} to wait for approval", probe, self.deadline, limit=90)
        return self.stack.api_json("GET", self.hitl_path(run_id))

    def hitl_path(self, run_id: str) -> str:
        return f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{APPROVAL_TASK}/-1/hitlDetails"

    def answer(self, run_id: str, option: str) -> None:
        """Respond like a person would: only once the scheduler has taken in the parked task's executor event.

        Airflow 3.3.2 fails the task when a response resumes it before the scheduler has processed the
        "success" event of the park (a stale event then meets a running task); a person takes seconds."""
        scheduler = self.stack.component("scheduler").stdout
        parked = re.compile(
            r"Received executor event with state \w+ for task instance TaskInstanceKey\("
            rf"dag_id='{DAG_ID}', task_id='{APPROVAL_TASK}', run_id='{run_id}'"
        )
        self.stack.wait_for(
            f"the scheduler to take in {run_id}'s park",
            lambda: parked.search(scheduler.read_text()) or None,
            self.deadline,
            30,
        )
        self.stack.api_json("PATCH", self.hitl_path(run_id), json={"chosen_options": [option], "params_input": {}})

    def wait_until_done(self, run_id: str) -> dict[str, str]:
        def probe() -> dict[str, Any] | None:
            run = self.stack.api_json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            return run if run["state"] in FINISHED else None

        run = self.stack.wait_for(f"{run_id} to finish", probe, self.deadline, limit=120)
        answer = self.stack.api_json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        states = {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}
        assert run["state"] == "success", f"{run_id} ended {run['state']}: {states}"
        return states


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    rewards = {k: v for k, v in reward_statuses(after).items() if reward_statuses(before)[k] != v}
    jobs = {k: v for k, v in job_states(after).items() if job_states(before)[k] != v}
    return rewards, jobs


@pytest.mark.e2e
def test_approval_guard_reject_then_approve(nightly_stack, sandbox, deadline, tmp_path, job_record):
    stack = nightly_stack
    runs = NightlyRuns(stack, deadline, tmp_path, job_record)
    stack.wait_for("the components to be healthy", stack.healthy, deadline, limit=90)
    stack.wait_for("the DAG to be parsed", lambda: stack.api("GET", f"/dags/{DAG_ID}").ok or None, deadline, limit=60)
    assert stack.api_json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})["is_paused"] is False
    start = sandbox.snapshot()

    # 1. Above the threshold: the run waits; the approval screen shows counts, a sample and the plan; reject.
    runs.trigger("rejected", "2025-09-01T06:00:00Z", approval_threshold=1)
    request = runs.wait_for_approval_request("rejected")
    assert request["options"] == ["Approve", "Reject"]
    assert "4 targets" in request["subject"]
    body = request["body"]
    assert "| hpgames | reward_ids | 2 |" in body
    assert f"| thanx | issuance_job_ids | 2 | `{seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS[0]}`" in body
    assert f"file://{tmp_path}/rejected/{DAG_ID}/rejected/plan.json" in body
    runs.answer("rejected", "Reject")
    states = runs.wait_until_done("rejected")
    assert states[APPROVAL_TASK] == "skipped"
    assert {states[t] for t in ("cancel_hpgames_rewards", "thanx_jobs", "teardown_record")} == {"skipped"}
    assert changes(start, sandbox.snapshot()) == ({}, {}), "a rejected plan touched the sandbox"

    # 2. Above the threshold again: approve, and exactly the plan is torn down.
    runs.trigger("approved", "2025-09-01T00:00:00Z", approval_threshold=1)
    runs.wait_for_approval_request("approved")
    assert changes(start, sandbox.snapshot()) == ({}, {}), "something was torn down before the approval"
    runs.answer("approved", "Approve")
    states = runs.wait_until_done("approved")
    assert states[APPROVAL_TASK] == "success"
    assert states["teardown_record"] == "success"
    assert changes(start, sandbox.snapshot()) == (ENDED_REWARDS, ENDED_JOBS)

    report = json.loads(next((tmp_path / "approved").rglob("report.json")).read_text())
    assert report["planned"] == {"hpgames": {"reward_ids": 2}, "thanx": {"issuance_job_ids": 2}}
    assert report["hpgames"]["cancelled"] == 2
    events = stack.api_json("GET", f"/assets/events?source_dag_id={DAG_ID}&source_run_id=approved")["asset_events"]
    by_name = {event["name"]: event for event in events}
    record_event = by_name["rewards_nightly_teardown_record"]  # the record's Asset, declared by the DAG
    assert record_event["source_task_id"] == "teardown_record"
    assert record_event["extra"]["record_dir"] == f"file://{tmp_path}/approved/{DAG_ID}/approved"
    assert record_event["extra"]["counts"] == report["planned"]
    rejected = stack.api_json("GET", f"/assets/events?source_dag_id={DAG_ID}&source_run_id=rejected")["asset_events"]
    assert rejected == [], "a rejected run emitted an Asset event"
    print(f"\nnightly approval e2e: {deadline.elapsed:.0f}s")
