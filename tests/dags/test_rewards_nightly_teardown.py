"""The nightly teardown DAG against the sandbox, night after night, with ``airflow dags test <logical date>``.

The sandbox's clock is moved past the demo's ended configuration and campaign (both end 2025-08-31T23:59:59Z).
One fresh metadata database for this module, so "the last successful run" is only what these tests ran.
Sequence: a dry run on the first night, then the real run an hour later, then the next night:
- the dry run changes nothing and its plan lists exactly what the real run then tears down;
- the real run cancels exactly the ended configuration's live rewards and revokes exactly the recorded job of
  the ended campaign (the record also holds a job of a running campaign), and nothing else changes; its 3
  targets are at the threshold it is given (3), so no approval is asked;
- then the issuing process records the ended campaign's second job late (``recorded_at`` after the real run):
  the next night, although nothing has ended since, plans and revokes exactly that job and changes nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rewards_sandbox as seed
from rewards_sandbox.demo import Credentials, airflow, airflow_env, migrate, task_states
from rewards_sandbox.testing import job_states, reward_statuses

from tests.dags.conftest import DAGS_FOLDER

DAG_ID = "rewards_nightly_teardown"
FIRST_NIGHT = "2025-09-01T00:00:00+00:00"
AN_HOUR_LATER = "2025-09-01T01:00:00+00:00"
NEXT_NIGHT = "2025-09-02T00:00:00+00:00"
RECORDED_LATE = "2025-09-01T12:00:00Z"  # in the next night's window, after its campaign's window ran
APPROVAL_REQUESTS_QUERY = """
from sqlalchemy import func, select
from airflow.models.hitl import HITLDetail
from airflow.utils.session import create_session
with create_session() as session:
    print(session.scalar(select(func.count()).select_from(HITLDetail)))
"""
SANDBOX_NOW_MS = 1756710000000  # 2025-09-01T07:00Z: past the endDate of the demo's ended configuration


@pytest.fixture(scope="module")
def nightly_home(tmp_path_factory) -> Path:
    """A metadata database of this module's runs only."""
    home = tmp_path_factory.mktemp("nightly-airflow-home")
    migrate(airflow_env(home, DAGS_FOLDER, "http://127.0.0.1:9", Credentials.demo()))
    return home


@pytest.fixture
def nightly(nightly_home, sandbox, tmp_path):
    """``nightly(logical_date, conf=None)`` runs the DAG once; returns ``(succeeded, output, run_id)``.
    Records go under ``tmp_path/records``; the Thanx job record holds the ended campaign's first job and a job of
    the running campaign (bare); ``run.record_late()`` appends the ended campaign's second job, without its
    campaign, recorded at ``RECORDED_LATE``."""
    record = tmp_path / "thanx-jobs.jsonl"
    ended_1, ended_2 = seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS
    record.write_text(
        json.dumps({"issuance_job_id": ended_1, "campaign_id": seed.DEMO_THANX_ENDED_CAMPAIGN_ID})
        + f"\n{seed.DEMO_THANX_UNTOUCHED_JOB_ID}\n"
    )
    sandbox.clock.set_ms(SANDBOX_NOW_MS)
    env = airflow_env(
        nightly_home,
        DAGS_FOLDER,
        sandbox.base_url,
        Credentials.demo(),
        poll_interval=0.5,
        extra={
            "REWARDS_NIGHTLY_RECORD_ROOT": f"file://{tmp_path}/records",
            "REWARDS_THANX_JOB_RECORD": f"file://{record}",
            "REWARDS_TEARDOWN_RETRY_DELAY": "1",
        },
    )

    def run(logical_date: str, conf: dict[str, Any] | None = None) -> tuple[bool, str, str]:
        args = ["dags", "test", DAG_ID, logical_date] + (["-c", json.dumps(conf)] if conf else [])
        done = airflow(*args, env=env, timeout=300)
        output = done.stdout + done.stderr
        finished = re.search(r"DagRun Finished: dag_id=\w+, .*? run_id=([^,]+),.*? state=(\w+),", output)
        assert finished, output[-3000:]
        return done.returncode == 0 and finished.group(2) == "success", output, finished.group(1)

    run.states = lambda run_id: task_states(DAG_ID, run_id, env)
    run.approval_requests = lambda: int(
        subprocess.run(
            [sys.executable, "-c", APPROVAL_REQUESTS_QUERY], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    run.records = tmp_path / "records" / DAG_ID
    run.record_late = lambda: record.write_text(
        record.read_text() + json.dumps({"issuance_job_id": ended_2, "recorded_at": RECORDED_LATE}) + "\n"
    )
    return run


def written(records: Path, run_id: str, name: str) -> dict[str, Any]:
    """The JSON file ``name`` (``plan.json``, ``report.json``) of run ``run_id`` (its id as one path segment)."""
    return json.loads((records / re.sub(r"[^A-Za-z0-9._-]", "_", run_id) / name).read_text())


def plan_of(records: Path, run_id: str) -> dict[str, Any]:
    return written(records, run_id, "plan.json")


def planned_ids(plan: dict[str, Any]) -> tuple[set[str], set[str]]:
    def ids(name: str, key: str) -> set[str]:
        text = Path(plan["files"][name].removeprefix("file://")).read_text()
        return {json.loads(line)[key] for line in text.splitlines()}

    return ids("hpgames_reward_ids", "id"), ids("thanx_issuance_jobs", "issuance_job_id")


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``({reward id: new status}, {job id: new state})`` of everything that changed."""
    rewards = {k: v for k, v in reward_statuses(after).items() if reward_statuses(before)[k] != v}
    jobs = {k: v for k, v in job_states(after).items() if job_states(before)[k] != v}
    return rewards, jobs


def test_two_nights_tear_down_exactly_what_ended_once_and_a_job_recorded_late(nightly, sandbox):
    start = sandbox.snapshot()
    ended_1, ended_2 = seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS

    ok, output, dry_run_id = nightly(FIRST_NIGHT, {"dry_run": True})
    assert ok, output[-5000:]
    assert changes(start, sandbox.snapshot()) == ({}, {}), "the dry run changed the sandbox"
    dry_plan = plan_of(nightly.records, dry_run_id)
    assert dry_plan["dry_run"] is True
    assert planned_ids(dry_plan) == (set(seed.DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS), {ended_1})

    ok, output, run_id = nightly(AN_HOUR_LATER, {"approval_threshold": 3})
    assert ok, output[-5000:]
    plan = plan_of(nightly.records, run_id)
    assert plan["window"]["ended_after"] == dry_plan["window"]["ended_after"], "the dry run moved the window's start"
    rewards, jobs = changes(start, sandbox.snapshot())
    planned_rewards, planned_jobs = planned_ids(dry_plan)
    assert rewards == dict.fromkeys(planned_rewards, "CANCELLED"), "not exactly the dry run's rewards"
    assert jobs == dict.fromkeys(planned_jobs, "revoked"), "not exactly the dry run's jobs"
    states = nightly.states(run_id)
    assert states["approve_teardown"] == ["success"]
    assert nightly.approval_requests() == 0, "an approval was asked at the threshold (3 targets, threshold 3)"
    assert "3 target(s), at or below the approval threshold 3: no approval needed" in output
    assert states["wait_until_revoked"] == ["success"]
    report = written(nightly.records, run_id, "report.json")
    assert report["hpgames"]["cancelled"] == 2
    assert [job["state"] for job in report["thanx"]["waited"]] == ["revoked"]

    after_first = sandbox.snapshot()
    nightly.record_late()
    ok, output, next_id = nightly(NEXT_NIGHT)
    assert ok, output[-5000:]
    assert changes(after_first, sandbox.snapshot()) == ({}, {ended_2: "revoked"}), "not exactly the late job"
    next_plan = plan_of(nightly.records, next_id)
    assert (next_plan["total"], next_plan["window"]["ended_after"]) == (1, "2025-09-01T01:00:00Z")
    assert planned_ids(next_plan) == (set(), {ended_2})
    assert "1 recorded in the window (recorded_at) for campaigns that ended before it" in output
    mutating = [e for e in sandbox.request_log() if e["path"].endswith(("/revoke", "/bulkCancel", "/cancel"))]
    assert len(mutating) == 3, mutating  # one bulkCancel and a revoke in the real run, the late job's revoke
