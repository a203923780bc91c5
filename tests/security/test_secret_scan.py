"""No credential leaks from a teardown: the flagship DAG under ``airflow dags test``, scanned everywhere.

The run uses distinctive per-run credentials (the sandbox is seeded with them: the demo seed with its Thanx
access token and HPGames secret replaced), then looks for them in the run's stdout and stderr, every file under
``$AIRFLOW_HOME/logs``, every XCom value, the rendered template fields, the trigger rows and ``next_kwargs``, and
the SQLite database file's bytes (see ``scan.py``). ``dags test`` runs tasks in-process and masks nothing, so a
secret that any code path logs would show up in plain text.

The same scan must fail on a planted leak: a DAG of leaky test doubles (``leaky.py``) goes through the same
steps, and the scan has to report each place it leaked to.

The real deployment (api-server, scheduler, LocalExecutor workers, a real triggerer) is scanned the same way by
``tests/e2e/test_real_triggerer.py::test_deferrable_sensor_waits_in_a_real_triggerer_then_succeeds``: component
stdout/stderr, task and triggerer log files, XCom, rendered fields, the trigger row read while the task is
deferred, ``next_kwargs``, REST answers and the database file.

Unit checks at the end: what the sensor and the operator hand to the trigger (serialized kwargs, next kwargs),
and errors built from vendor answers that echo a credential.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import TaskDeferred
from rewards_sandbox import (
    DEMO_HPGAMES_MERCHANT_ID,
)
from rewards_sandbox.demo import (
    FLAGSHIP_DAG_ID,
    Credentials,
    DagRunResult,
    Targets,
    demo_params,
    run_dag,
    teardown_report,
)
from rewards_sandbox.testing import running_sandbox

from airflow_provider_rewards.exceptions import RewardsApiError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor
from tests.chaos.harness import DAGS_FOLDER, teardown_env
from tests.conftest import HPGAMES_SECRET, REWARDS_URL, THANX_TOKEN, THANX_URL
from tests.e2e.secret_scan import as_text, find_leaks
from tests.security.scan import OUTPUT, RunSources, leak_kinds, run_sources

LEAKY_DAGS_FOLDER = Path(__file__).parent / "dags"
LEAKY_DAG_ID = "rewards_leaky_double"
UNIT_SECRETS = {"thanx access token": THANX_TOKEN, "hpgames secret": HPGAMES_SECRET}


def scanned_run(home: Path, credentials: Credentials, seed: dict, dag_id: str, dags_folder: Path):
    """One ``dags test`` run against a sandbox that accepts only the planted credentials; what it left behind."""
    # Revokes last 6 s: longer than the revoke tasks take (at most 2 at once per run), so every wait defers and a
    # trigger row exists to be scanned.
    with running_sandbox(seed=seed, revoke_seconds=6.0) as sandbox:
        env = teardown_env(home, sandbox.base_url, credentials, dags_folder=dags_folder)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the checkout's DAG folders
        before = sandbox.snapshot()
        conf = demo_params() if dag_id == FLAGSHIP_DAG_ID else None  # the flagship has no targets of its own
        result = run_dag(dag_id, env, conf, timeout=300)
        after = sandbox.snapshot()
    return result, run_sources(home, result.output), before, after


def assert_no_leaks(planted_secrets: dict[str, str], found: RunSources) -> None:
    leaks = find_leaks(planted_secrets, found.sources)
    assert not leaks, f"{len(leaks)} leak(s) of planted secrets:\n" + "\n".join(leaks)


def tail(result: DagRunResult) -> str:
    return "\n".join(result.output.splitlines()[-60:])


@pytest.mark.e2e
def test_the_flagship_teardown_leaks_no_credential_anywhere(
    fresh_airflow_home, planted_secrets, planted_credentials, planted_seed
):
    result, found, before, after = scanned_run(
        fresh_airflow_home, planted_credentials, planted_seed, FLAGSHIP_DAG_ID, DAGS_FOLDER
    )

    # The run used the planted credentials (the sandbox accepts no others) and did the whole teardown.
    assert result.succeeded, tail(result)
    report = teardown_report(before, after, Targets.from_params(demo_params()), DEMO_HPGAMES_MERCHANT_ID)
    assert report.clean, report.render()
    # The scan read something in every place: 13 task instances' XComs and rendered fields, the trigger row.
    assert found.counts["XCom"] >= 13, found.counts
    assert found.counts["rendered template fields"] >= 13, found.counts
    assert found.counts["trigger"] >= 1, found.counts
    assert found.counts["database file bytes"] >= 1, found.counts
    assert "[DAG TEST] running trigger in line" in result.output  # the task log went to stdout
    print(f"\nsecret scan: {dict(found.counts)}, {sum(map(len, found.sources.values()))} bytes")
    assert_no_leaks(planted_secrets, found)


@pytest.mark.e2e
def test_the_scan_reports_every_leak_of_a_leaky_test_double(
    fresh_airflow_home, planted_secrets, planted_credentials, planted_seed
):
    result, found, _, _ = scanned_run(
        fresh_airflow_home, planted_credentials, planted_seed, LEAKY_DAG_ID, LEAKY_DAGS_FOLDER
    )
    assert result.succeeded, tail(result)  # the doubles work; they only leak

    with pytest.raises(AssertionError, match="leak") as failure:
        assert_no_leaks(planted_secrets, found)

    leaks = find_leaks(planted_secrets, found.sources)
    token = [leak for leak in leaks if leak.startswith("thanx access token")]
    secret = [leak for leak in leaks if leak.startswith("hpgames secret")]
    assert {OUTPUT, "XCom", "trigger", "database file bytes"} <= leak_kinds(token), leaks
    assert "LEAK: calling Thanx with Authorization: Bearer <thanx access token>" in str(failure.value)
    assert {"rendered template fields", "database file bytes"} <= leak_kinds(secret), leaks
    assert all(value not in str(failure.value) for value in planted_secrets.values())  # the report never repeats them


# -------------------------------------------------------------------------------------------------
# Unit checks: trigger kwargs and errors
# -------------------------------------------------------------------------------------------------
JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1"


def job(state: str) -> dict:
    return {"issuance_job": {"id": "job_1", "state": state, "progress_percent": 0}}


def deferral_text(deferred: TaskDeferred) -> str:
    classpath, kwargs = deferred.trigger.serialize()
    return as_text({"classpath": classpath, "kwargs": kwargs, "next_kwargs": deferred.kwargs})


def test_the_sensor_defers_with_ids_only(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, json=job("revoking"))
    sensor = ThanxIssuanceJobSensor(task_id="wait", issuance_job_id="job_1", deferrable=True, poke_interval=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert find_leaks(UNIT_SECRETS, {"sensor trigger": deferral_text(deferred.value)}) == []
    _, kwargs = deferred.value.trigger.serialize()
    assert set(kwargs) == {
        "issuance_job_id",
        "merchant_id",
        "thanx_conn_id",
        "target_states",
        "waiting_states",
        "poll_interval",
        "end_time",
        "max_consecutive_failures",
    }


@pytest.mark.parametrize(
    ("first_state", "wait"), [("completed", {"wait_for_completion": True}), ("pending", {"wait_for_issuance": True})]
)
def test_the_operator_defers_with_ids_only(thanx_conn, requests_mock, first_state, wait):
    requests_mock.get(JOB_URL, json=job(first_state))
    requests_mock.post(f"{JOB_URL}/revoke", status_code=202, json=job("revoking"))
    operator = ThanxRevokeIssuanceJobOperator(
        task_id="revoke", issuance_job_id="job_1", deferrable=True, poll_interval=5, **wait
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    assert find_leaks(UNIT_SECRETS, {"operator trigger": deferral_text(deferred.value)}) == []
    assert deferred.value.trigger.serialize()[1]["thanx_conn_id"] == "thanx_default"


def test_a_vendor_answer_that_echoes_the_credential_is_scrubbed(thanx_conn, hpgames_conn, requests_mock):
    requests_mock.get(JOB_URL, status_code=401, json={"code": "UNAUTHORIZED", "message": f"bad token {THANX_TOKEN}"})
    requests_mock.post(f"{REWARDS_URL}/readAll", status_code=401, text=f"hash mismatch for key {HPGAMES_SECRET}")
    with pytest.raises(RewardsApiError) as thanx_error:
        ThanxHook().get_issuance_job("job_1")
    with pytest.raises(RewardsApiError) as hpgames_error:
        HPGamesHook().read_rewards()
    texts = {
        "Thanx error": f"{thanx_error.value} {thanx_error.value.vendor_message}",
        "HPGames error": f"{hpgames_error.value} {hpgames_error.value.vendor_message}",
        "reprs": f"{ThanxHook().config!r} {HPGamesHook().config!r} {ThanxHook().transport.auth!r}",
    }
    assert find_leaks(UNIT_SECRETS, texts) == []
    assert "bad token ***" in texts["Thanx error"]
