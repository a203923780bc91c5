"""The operators inside a real DAG run (``dag.test()``): mapping, XCom and Jinja inputs, deferral with the trigger.

``dag.test()`` runs every task in this process through Airflow's in-process execution API, so
requests-mock answers the operators' HTTP calls, and a deferred task's trigger is serialized,
re-imported and run inline (its httpx client is given a mock transport). It needs a migrated
metadata database: the throwaway ``AIRFLOW_HOME`` that ``tests/conftest.py`` creates.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from airflow_provider_rewards.hooks.thanx import summarize_job
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from tests.conftest import REWARDS_URL, THANX_URL
from tests.operators.conftest import payload

# Airflow's in-process execution API imports starlette's TestClient, which warns about httpx.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

DAG_ID = "rewards_operators_dag_test"
REWARD_A = "6d181739-a4c4-4932-a3de-0a980bfee707"
REWARD_B = "0b6f3c1e-8a44-4d7e-9a51-2f0c7d1e9b10"
DAG_FILE = f'''
from airflow.sdk import DAG, task

from airflow_provider_rewards.operators import HPGamesBulkCancelRewardsOperator, ThanxRevokeIssuanceJobOperator

with DAG("{DAG_ID}", schedule=None, params={{"merchant": "m_1", "dry": "false"}}):

    @task
    def reward_ids():
        return ["{REWARD_A}", "{REWARD_B}", "{REWARD_A.upper()}"]

    HPGamesBulkCancelRewardsOperator(
        task_id="cancel", reward_ids=reward_ids(), batch_size=1, dry_run="{{{{ params.dry }}}}"
    )
    ThanxRevokeIssuanceJobOperator.partial(
        task_id="revoke", merchant_id="{{{{ params.merchant }}}}", deferrable=False
    ).expand(issuance_job_id=["job_a", "job_b", "job_c"])
    ThanxRevokeIssuanceJobOperator(
        task_id="revoke_and_wait", issuance_job_id="job_d", merchant_id="m_1", deferrable=True,
        wait_for_completion=True, poll_interval=1,
    )
'''


@pytest.fixture(scope="module")
def metadata_db() -> None:
    """Migrate the throwaway metadata database once for this module."""
    from airflow import settings

    home = os.environ.get("AIRFLOW_HOME", "")
    if not Path(home).name.startswith("rewards-airflow-home-") or home not in str(settings.SQL_ALCHEMY_CONN):
        pytest.skip("dag.test() needs the throwaway AIRFLOW_HOME of tests/conftest.py; refusing to migrate another DB")
    from airflow.utils.db import upgradedb

    upgradedb()


def thanx_job(job_id: str, state: str) -> dict:
    return {"issuance_job": {"id": job_id, "state": state, "progress_percent": 100, "total_count": 1}}


@pytest.fixture
def dag_file(metadata_db):
    """The DAG file, in the dags folder that ``dag.test()`` syncs from (the throwaway home's), removed afterwards."""
    from airflow import settings

    path = Path(settings.DAGS_FOLDER) / "rewards_operators_dag.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DAG_FILE)
    yield path
    path.unlink()


@pytest.fixture
def run_dag(dag_file, thanx_conn, hpgames_conn, requests_mock, monkeypatch):
    """Run ``dag.test()`` with every vendor call mocked; return the finished DagRun and the trigger's reads."""
    from airflow.dag_processing.dagbag import DagBag

    for job_id in ("job_a", "job_b", "job_c", "job_d"):
        requests_mock.get(f"{THANX_URL}/partner/issuance_jobs/{job_id}", json=thanx_job(job_id, "completed"))
        requests_mock.post(
            f"{THANX_URL}/partner/issuance_jobs/{job_id}/revoke", status_code=202, json=thanx_job(job_id, "revoking")
        )
    requests_mock.post(f"{REWARDS_URL}/bulkCancel", text="")
    trigger_reads: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        trigger_reads.append(str(request.url))
        return httpx.Response(200, json=thanx_job("job_d", "revoked"))

    monkeypatch.setattr(
        ThanxIssuanceJobTrigger,
        "_client",
        staticmethod(lambda budget: httpx.AsyncClient(transport=httpx.MockTransport(answer))),
    )
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors
    return bag.get_dag(DAG_ID).test(logical_date=None), trigger_reads


def xcoms(run) -> dict[tuple[str, int], object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=DAG_ID, key="return_value")).all()
        return {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows}


def test_mapped_templated_xcom_fed_and_deferred_tasks_all_run(run_dag, requests_mock):
    run, trigger_reads = run_dag
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states == {
        ("reward_ids", -1): "success",
        ("cancel", -1): "success",
        ("revoke", 0): "success",
        ("revoke", 1): "success",
        ("revoke", 2): "success",
        ("revoke_and_wait", -1): "success",
    }
    results = xcoms(run)
    for index, job_id in enumerate(("job_a", "job_b", "job_c")):
        assert results[("revoke", index)] == {
            "issuance_job_id": job_id,
            "merchant_id": "m_1",
            "outcome": "revoke_started",
            "job": summarize_job(thanx_job(job_id, "revoking")["issuance_job"]),
        }
    revoke_bodies = {
        r.url: r.body for r in requests_mock.request_history if r.method == "POST" and r.url.startswith(THANX_URL)
    }
    assert revoke_bodies == {
        f"{THANX_URL}/partner/issuance_jobs/{job_id}/revoke": b'{"merchant_id":"m_1"}'
        for job_id in ("job_a", "job_b", "job_c", "job_d")
    }
    # the upstream XCom list, deduplicated, one id per batch
    cancels = [payload(r) for r in requests_mock.request_history if r.url == f"{REWARDS_URL}/bulkCancel"]
    assert cancels == [{"ids": [REWARD_A]}, {"ids": [REWARD_B]}]
    assert results[("cancel", -1)]["duplicates_dropped"] == 1
    # the deferred task: the trigger polled through httpx, then execute_complete returned the summary
    assert trigger_reads == [f"{THANX_URL}/partner/issuance_jobs/job_d?merchant_id=m_1"]
    assert results[("revoke_and_wait", -1)]["outcome"] == "revoked"
    assert results[("revoke_and_wait", -1)]["job"]["state"] == "revoked"
