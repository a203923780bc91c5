"""The flagship's report task on its own: it fails naming every job and reward still live."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, demo_params

from tests.conftest import REWARDS_URL, THANX_URL
from tests.dags.conftest import DAGS_FOLDER

JOBS = f"{THANX_URL}/partner/issuance_jobs"


@pytest.fixture(scope="module")
def report():
    dag = DagBag(dag_folder=str(DAGS_FOLDER / "rewards_campaign_teardown.py")).dags[FLAGSHIP_DAG_ID]
    return dag.task_dict["teardown_report"].python_callable


@pytest.fixture
def params():
    return {
        **demo_params(),
        "issuance_job_ids": ["job_a", "job_b"],
        "hpgames_reward_ids": ["5E1F0000-0000-4000-8000-000000000101"],
        "hpgames_external_reward_ids": ["ext-1"],
        "hpgames_player_ids": ["p-1"],
        "reward_configuration_id": None,
    }


def answer_jobs(requests_mock, **states):
    for job_id, state in states.items():
        requests_mock.get(f"{JOBS}/{job_id}", json={"issuance_job": {"id": job_id, "state": state}})


LIVE = [
    {"id": "5e1f0000-0000-4000-8000-000000000101", "externalId": "gen-1", "playerId": "p-9", "status": "IN_PROGRESS"},
    {"id": "5e1f0000-0000-4000-8000-000000000999", "externalId": "ext-1", "playerId": "p-9", "status": "IN_PROGRESS"},
    {"id": "5e1f0000-0000-4000-8000-000000000777", "externalId": "x", "playerId": "p-1", "status": "IN_PROGRESS"},
    {"id": "5e1f0000-0000-4000-8000-000000000555", "externalId": "y", "playerId": "p-2", "status": "IN_PROGRESS"},
]


def test_report_fails_naming_what_is_left(report, params, thanx_conn, hpgames_conn, requests_mock):
    answer_jobs(requests_mock, job_a="revoked", job_b="revoking")
    requests_mock.post(f"{REWARDS_URL}/readAll", json=LIVE)
    with pytest.raises(AirflowFailException) as info:
        report(params)
    message = str(info.value)
    assert "'jobs_not_revoked': {'job_b': 'revoking'}" in message
    assert "5E1F0000-0000-4000-8000-000000000101" in message  # targeted by id, still live
    assert "ext-1" in message  # targeted by external id, still live
    assert "5e1f0000-0000-4000-8000-000000000777 (player p-1)" in message  # the player's live reward
    assert "000000000555" not in message  # another player's reward is not ours to report


def test_report_passes_when_everything_is_torn_down(report, params, thanx_conn, hpgames_conn, requests_mock):
    answer_jobs(requests_mock, job_a="revoked", job_b="revoked")
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[LIVE[3]])
    assert report(params) == {"dry_run": False, "jobs_not_revoked": {}, "rewards_still_live": []}


def test_dry_run_report_lists_instead_of_failing(report, params, thanx_conn, hpgames_conn, requests_mock):
    answer_jobs(requests_mock, job_a="completed", job_b="completed")
    requests_mock.post(f"{REWARDS_URL}/readAll", json=LIVE)
    result = report({**params, "dry_run": True})
    assert result["jobs_not_revoked"] == {"job_a": "completed", "job_b": "completed"}
    assert len(result["rewards_still_live"]) == 3
