"""End to end with a real triggerer: the deferrable Thanx sensor against the sandbox, in a real deployment.

The test starts the sandbox and, on 127.0.0.1 only, ``airflow api-server``, ``scheduler`` (LocalExecutor),
``dag-processor`` and ``triggerer`` on SQLite in a temporary ``AIRFLOW_HOME`` (see ``stack.py``). It
revokes a job in the sandbox, triggers ``tests/e2e/dags/rewards_e2e_deferred.py`` through the REST API and
watches the task instance: it must be ``deferred`` while the triggerer polls the sandbox, then ``success``.

Timing is in the test's hands, not a race: the sandbox runs on a clock the test controls, and the revocation
takes an hour of that clock. The job therefore reads ``revoking`` until the test has seen the task deferred
and the trigger polling; then the test moves the clock on and the next poll reads ``revoked``.

The sandbox credentials are distinctive per run, and after the run the test looks for them in the
components' stdout/stderr, every file under ``$AIRFLOW_HOME/logs``, the XCom value, the rendered template
fields, the trigger kwargs and the task instance's ``next_kwargs`` (read from the metadata DB), the REST
answers, and the SQLite database file itself. The scan's own tests below show that a planted secret is found.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from rewards_sandbox import (
    DEMO_THANX_CLIENT_ID,
    DEMO_THANX_COMPLETED_JOB_IDS,
    DEMO_THANX_MERCHANT_ID,
    SandboxConfig,
    SandboxServer,
    SandboxState,
)
from rewards_sandbox.demo import airflow_env
from rewards_sandbox.testing import job_states, thanx_headers

from tests.e2e.secret_scan import as_text, files_under, find_leaks
from tests.e2e.stack import AirflowStack, Deadline, free_port, running_stack, stack_settings

DAGS_FOLDER = Path(__file__).parent / "dags"
#: Ids of the DAG in DAGS_FOLDER (rewards_e2e_deferred.py); not imported, only Airflow parses that file.
DAG_ID = "rewards_e2e_thanx_deferred"
TASK_ID = "wait_for_revocation"
TRIGGER_CLASSPATH = "airflow_provider_rewards.triggers.thanx.ThanxIssuanceJobTrigger"
JOB_ID = DEMO_THANX_COMPLETED_JOB_IDS[1]
RUN_ID = "e2e_real_triggerer"
#: Revocation time on the sandbox clock; the test jumps the clock past it once it has seen the deferral.
REVOKE_SECONDS = 3600.0
#: The whole test, start-up and shutdown included, stays well under four minutes.
TEST_BUDGET_SECONDS = 200.0
#: Task states that end the test early (the task can no longer reach the state being waited for).
NOT_DEFERRED_OR_DONE = frozenset({"failed", "upstream_failed", "skipped", "up_for_retry", "removed"})

TRIGGER_ROW_QUERY = """
import json
from airflow.models.taskinstance import TaskInstance
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
from sqlalchemy import select

with create_session() as session:
    trigger = session.get(Trigger, {trigger_id})
    ti = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_id == {dag_id!r}, TaskInstance.run_id == {run_id!r}, TaskInstance.task_id == {task_id!r}
        )
    ).one()
    row = {{
        "classpath": trigger.classpath if trigger else None,
        "kwargs": trigger.kwargs if trigger else None,
        "ti_state": ti.state,
        "next_method": ti.next_method,
        "next_kwargs": ti.next_kwargs,
    }}
print(json.dumps(row, default=repr))
"""


class SandboxClock:
    """The sandbox's clock: wall time plus an offset that the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock()


@pytest.fixture
def sandbox(planted_seed, clock) -> Iterator[SandboxServer]:
    """The sandbox (127.0.0.1, free port) on the test's clock, seeded with the planted secrets."""
    server = SandboxServer(SandboxConfig(seed=planted_seed, revoke_seconds=REVOKE_SECONDS), host="127.0.0.1", port=0)
    server.state = SandboxState(planted_seed, revoke_seconds=REVOKE_SECONDS, clock=clock)
    with server:
        yield server


@pytest.fixture
def deadline() -> Deadline:
    return Deadline(TEST_BUDGET_SECONDS)


@pytest.fixture
def airflow_stack(tmp_path, sandbox, planted_credentials, deadline) -> Iterator[AirflowStack]:
    """A migrated SQLite ``AIRFLOW_HOME`` and the four components, always stopped at teardown."""
    port = free_port()
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = airflow_env(home, DAGS_FOLDER, sandbox.base_url, planted_credentials, extra=stack_settings(port))
    with running_stack(env, port, tmp_path / "components") as stack:
        yield stack


def task_instance(stack: AirflowStack) -> dict[str, Any] | None:
    response = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/{TASK_ID}")
    if response.status_code == 404:  # the run or its task instance is not created yet
        return None
    response.raise_for_status()
    return response.json()


def job_polls(sandbox: SandboxServer) -> int:
    """How many times anything has read the job from the sandbox (the request log holds no headers)."""
    path = f"/partner/issuance_jobs/{JOB_ID}"
    return sum(1 for r in sandbox.request_log() if r["method"] == "GET" and r["path"] == path and r["status"] == 200)


@pytest.mark.e2e
def test_deferrable_sensor_waits_in_a_real_triggerer_then_succeeds(
    airflow_stack, sandbox, clock, planted_secrets, deadline, tmp_path
):
    stack = airflow_stack
    timings: dict[str, float] = {}
    states: list[str] = []

    def watch(wanted: str, abort: frozenset[str]) -> Any:
        """A probe: the task instance once its state is ``wanted``; fails at once on an ``abort`` state."""

        def probe() -> dict[str, Any] | None:
            ti = task_instance(stack)
            state = ti and ti["state"]
            if state is not None and (not states or states[-1] != state):
                states.append(state)
            if state in abort:
                raise stack.fail(f"task reached {state!r} while waiting for {wanted!r}; states seen: {states}")
            return ti if state == wanted else None

        return probe

    # 1. All four components up, and the DAG parsed.
    stack.wait_for("scheduler, triggerer and dag-processor to be healthy", stack.healthy, deadline, limit=120)
    dag_path = f"/dags/{DAG_ID}"
    stack.wait_for(f"DAG {DAG_ID} to be parsed", lambda: stack.api("GET", dag_path).ok or None, deadline, limit=60)
    timings["components ready"] = deadline.elapsed

    # 2. Start revoking the job: it reads "revoking" until the test moves the sandbox clock on.
    revoke = requests.post(
        f"{sandbox.base_url}/partner/issuance_jobs/{JOB_ID}/revoke",
        json={"merchant_id": DEMO_THANX_MERCHANT_ID},
        headers=thanx_headers(DEMO_THANX_CLIENT_ID, planted_secrets["thanx access token"]),
        timeout=10,
    )
    assert revoke.status_code == 202, revoke.text
    assert revoke.json()["issuance_job"]["state"] == "revoking"

    # 3. Unpause and trigger through the REST API.
    assert stack.api_json("PATCH", dag_path, json={"is_paused": False})["is_paused"] is False
    run = {"dag_run_id": RUN_ID, "logical_date": None, "conf": {"issuance_job_id": JOB_ID}}
    assert stack.api_json("POST", f"{dag_path}/dagRuns", json=run)["dag_run_id"] == RUN_ID
    triggered = deadline.elapsed

    # 4. The task checks once on a worker, then defers; the triggerer takes the trigger and polls.
    deferred_ti = stack.wait_for("the task to be deferred", watch("deferred", NOT_DEFERRED_OR_DONE), deadline, 90)
    timings["trigger -> deferred"] = deadline.elapsed - triggered
    assert deferred_ti["trigger"]["classpath"] == TRIGGER_CLASSPATH
    polls_at_deferral = job_polls(sandbox)
    assert polls_at_deferral >= 1, "the sensor deferred without checking the job first"
    stack.wait_for(
        "the triggerer to poll the job twice while the task is deferred",
        lambda: job_polls(sandbox) >= polls_at_deferral + 2 or None,
        deadline,
        limit=45,
    )
    row = stack.db_query(
        TRIGGER_ROW_QUERY.format(trigger_id=deferred_ti["trigger"]["id"], dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID)
    )
    assert row["ti_state"] == "deferred", f"the task left the deferred state too early: {row}"
    assert row["classpath"] == TRIGGER_CLASSPATH
    assert row["kwargs"]["issuance_job_id"] == JOB_ID
    assert row["kwargs"]["merchant_id"] == DEMO_THANX_MERCHANT_ID
    assert row["kwargs"]["thanx_conn_id"] == "thanx_default"
    assert row["kwargs"]["poll_interval"] == 1.0
    assert row["next_method"] == "execute_complete"
    assert job_states(sandbox.snapshot())[JOB_ID] == "revoking"

    # 5. The revocation finishes; the trigger's next poll sees it and the task resumes on a worker.
    clock.advance(REVOKE_SECONDS)
    released = deadline.elapsed
    timings["deferred (observed) -> released"] = released - timings["trigger -> deferred"] - triggered
    final_ti = stack.wait_for("the task to succeed", watch("success", NOT_DEFERRED_OR_DONE), deadline, 90)
    timings["released -> success"] = deadline.elapsed - released
    assert "deferred" in states, states
    assert states[-1] == "success", states

    def dag_run_succeeded() -> dict[str, Any] | None:
        dag_run = stack.api_json("GET", f"{dag_path}/dagRuns/{RUN_ID}")
        if dag_run["state"] == "failed":
            raise stack.fail(f"DAG run failed: {dag_run}")
        return dag_run if dag_run["state"] == "success" else None

    dag_run = stack.wait_for("the DAG run to succeed", dag_run_succeeded, deadline, limit=30)
    assert dag_run["conf"] == {"issuance_job_id": JOB_ID}
    assert final_ti["rendered_fields"]["issuance_job_id"] == JOB_ID
    xcom = stack.api_json(
        "GET", f"{dag_path}/dagRuns/{RUN_ID}/taskInstances/{TASK_ID}/xcomEntries/return_value?deserialize=true"
    )
    assert xcom["value"]["id"] == JOB_ID
    assert xcom["value"]["state"] == "revoked"
    assert job_states(sandbox.snapshot())[JOB_ID] == "revoked"

    # 6. Stop everything (flushes the logs), then look for the secrets everywhere the run left a trace.
    exit_codes = stack.stop()
    timings["total"] = deadline.elapsed
    home = Path(stack.env["AIRFLOW_HOME"])
    task_logs = files_under(home / "logs")
    task_log_names = [Path(p).name for p in task_logs if f"dag_id={DAG_ID}" in p]
    assert "attempt=1.log" in task_log_names, f"no task log: {sorted(task_logs)}"
    # The triggerer writes what the trigger logs to a file of its own next to the task log.
    trigger_logs = [text for path, text in task_logs.items() if ".log.trigger." in Path(path).name]
    assert len(trigger_logs) == 1, f"expected one triggerer log for the task: {sorted(task_logs)}"
    assert f"Issuance job {JOB_ID}: state revoking".encode() in trigger_logs[0]
    assert f"Issuance job {JOB_ID}: state revoked".encode() in trigger_logs[0]
    sources: dict[str, str | bytes] = {
        **files_under(stack.logs_dir),
        **task_logs,
        "XCom return_value (REST)": as_text(xcom),
        "rendered template fields (REST)": as_text(final_ti["rendered_fields"]),
        "task instance while deferred (REST)": as_text(deferred_ti),
        "task instance after success (REST)": as_text(final_ti),
        "trigger kwargs and next_kwargs (metadata DB)": as_text(row),
        "DAG run (REST)": as_text(dag_run),
        **files_under(*home.glob("airflow.db*")),
    }
    leaks = find_leaks(planted_secrets, sources)
    rounded = {name: round(seconds, 1) for name, seconds in timings.items()}
    print(f"\nreal-triggerer e2e: states {states}, timings (s) {rounded}")
    print(f"exit codes {exit_codes}; scanned {len(sources)} sources, {sum(map(len, sources.values()))} bytes")
    assert not leaks, "planted secrets leaked:\n" + "\n".join(leaks)


# -------------------------------------------------------------------------------------------------
# The scan itself must be able to fail.
# -------------------------------------------------------------------------------------------------
SECRETS = {"thanx access token": "thanx-tok-SECRETSCAN-0123abcd"}


def test_scan_finds_a_secret_planted_in_a_task_log(tmp_path):
    log = tmp_path / "logs" / f"dag_id={DAG_ID}" / "run_id=r" / f"task_id={TASK_ID}" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    log.write_text('{"event": "calling", "headers": {"Authorization": "Bearer thanx-tok-SECRETSCAN-0123abcd"}}\n')
    (tmp_path / "logs" / "clean.log").write_text("Issuance job job_demo_2: state revoking, 0% done\n")

    leaks = find_leaks(SECRETS, files_under(tmp_path / "logs"))

    assert len(leaks) == 1
    assert leaks[0].startswith(f"thanx access token in {log}")
    assert "Bearer <thanx access token>" in leaks[0]
    assert SECRETS["thanx access token"] not in leaks[0]


def test_scan_finds_secrets_in_values_and_bytes_and_nothing_in_clean_ones():
    trigger_kwargs = {"thanx_conn_id": "thanx_default", "headers": ["x", "thanx-tok-SECRETSCAN-0123abcd"]}
    sources = {
        "kwargs": as_text(trigger_kwargs),
        "db": b"\x00\x01thanx-tok-SECRETSCAN-0123abcd\xff",
        "clean": as_text({"thanx_conn_id": "thanx_default", "poll_interval": 1.0}),
    }

    leaks = find_leaks(SECRETS, sources)

    assert [leak.split(":")[0] for leak in leaks] == ["thanx access token in kwargs", "thanx access token in db"]
    assert find_leaks(SECRETS, {"clean": sources["clean"]}) == []


def test_scan_refuses_secrets_too_short_to_be_distinctive():
    with pytest.raises(ValueError, match="too short"):
        find_leaks({"token": "abc"}, {"x": "abc"})
