"""The flagship's report task when tasks before it failed (regressions of the chaos-run finding).

It used to run with ``trigger_rule="none_failed"``: after any failed task it was ``upstream_failed`` and the
failed run never said what was left. It now runs ``all_done``, names what is left, and still fails the run when
a task failed even though nothing targeted is left (an id HPGames refused must not become a success).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, demo_params

from airflow_provider_rewards.exceptions import RewardsError
from tests.chaos.harness import DAGS_FOLDER
from tests.conftest import REWARDS_URL, THANX_URL

LIVE_REWARD = {
    "id": "5e1f0000-0000-4000-8000-000000000101",
    "externalId": "x",
    "playerId": "p-9",
    "status": "IN_PROGRESS",
}


class TaskInstance:
    """What the report uses of ``ti``: its ids and ``get_ti_count`` (answering ``failed``)."""

    dag_id = FLAGSHIP_DAG_ID
    run_id = "manual__1"

    def __init__(self, failed: int) -> None:
        self.failed = failed
        self.asked: list[dict[str, Any]] = []

    def get_ti_count(self, dag_id: str, **filters: Any) -> int:
        self.asked.append({"dag_id": dag_id, **filters})
        return self.failed

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return None  # no cancel summary recorded


def run_report(dag: Any, params: dict[str, Any], ti: TaskInstance) -> dict[str, Any]:
    """The DAG's own report task, its templates rendered from ``params`` as a run would, executed."""
    task = copy.deepcopy(dag.task_dict["teardown_report"])
    context: Any = {"params": params, "ti": ti}
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return task.execute(context)


@pytest.fixture(scope="module")
def dag():
    return DagBag(dag_folder=str(DAGS_FOLDER / "rewards_campaign_teardown.py")).dags[FLAGSHIP_DAG_ID]


@pytest.fixture
def params() -> dict[str, Any]:
    return {
        **demo_params(),
        "issuance_job_ids": ["job_a"],
        "hpgames_reward_ids": [LIVE_REWARD["id"]],
        "hpgames_external_reward_ids": [],
        "hpgames_player_ids": [],
        "reward_configuration_id": None,
    }


@pytest.fixture
def api(thanx_conn, hpgames_conn, requests_mock):
    def answer(job_state: str, live: list[dict[str, Any]]) -> None:
        requests_mock.get(f"{THANX_URL}/partner/issuance_jobs/job_a", json={"issuance_job": {"state": job_state}})
        requests_mock.post(f"{REWARDS_URL}/readAll", json=live)

    return answer


def test_the_report_runs_after_failed_tasks(dag):
    assert dag.task_dict["teardown_report"].trigger_rule == "all_done"
    assert dag.task_dict["teardown_report"].upstream_task_ids == {
        "wait_until_revoked",
        "cancel_rewards_by_id",
        "cancel_rewards_by_external_id",
        "cancel_rewards_by_player",
        "cancel_rewards_by_id_file",
        "cancel_rewards_by_external_id_file",
        "cancel_rewards_by_player_file",
    }


def test_after_failed_tasks_it_names_what_is_left(dag, params, api):
    api("completed", [LIVE_REWARD])
    ti = TaskInstance(failed=2)
    with pytest.raises(AirflowFailException) as failure:
        run_report(dag, params, ti)
    message = str(failure.value)
    assert message.startswith("Teardown incomplete: ")
    assert "'jobs_not_revoked': {'job_a': 'completed'}" in message
    assert LIVE_REWARD["id"] in message
    assert "2 task instance(s) of this run failed" in message
    assert ti.asked == [{"dag_id": FLAGSHIP_DAG_ID, "run_ids": ["manual__1"], "states": ["failed"]}]


def test_nothing_left_but_a_failed_task_is_still_a_failure(dag, params, api):
    api("revoked", [])
    with pytest.raises(AirflowFailException, match="Nothing targeted is left to tear down, but 1 task instance"):
        run_report(dag, params, TaskInstance(failed=1))


def test_a_dry_run_after_a_failed_task_lists_then_fails(dag, params, api):
    api("completed", [LIVE_REWARD])
    with pytest.raises(AirflowFailException, match="The dry run listed what is left, but 1 task instance"):
        run_report(dag, {**params, "dry_run": True}, TaskInstance(failed=1))


def test_nothing_failed_and_nothing_left_is_a_success(dag, params, api):
    api("revoked", [])
    report = run_report(dag, params, TaskInstance(failed=0))
    assert report == {
        "dry_run": False,
        "jobs_not_revoked": {},
        "rewards_still_live": [],
        "unverifiable": {},
        "reads": {"requests": 1, "items_read": 0},
    }


def test_a_job_it_cannot_read_is_named_and_the_task_may_retry(dag, params, api, requests_mock):
    api("revoked", [])
    requests_mock.get(f"{THANX_URL}/partner/issuance_jobs/job_a", status_code=404, json={"code": "NOT_FOUND"})
    with pytest.raises(RewardsError) as failure:
        run_report(dag, params, TaskInstance(failed=1))
    assert not isinstance(failure.value, AirflowFailException)  # a read that failed may work on the next try
    message = str(failure.value)
    assert message.startswith("Teardown incomplete: ")
    assert "'not_verified': {'thanx job job_a': 'Thanx API GET /partner/issuance_jobs/job_a failed: HTTP 404" in message
    assert "could not read back 1. 1 task instance(s) of this run failed" in message


def test_rewards_it_cannot_read_are_named_as_not_verified(dag, params, api, requests_mock):
    api("revoked", [])
    requests_mock.post(f"{REWARDS_URL}/readAll", status_code=401, json={"errorCode": 1001, "errorText": "bad hash"})
    with pytest.raises(RewardsError, match=r"'not_verified': \{'hpgames rewards': 'HPGames API POST .*HTTP 401"):
        run_report(dag, params, TaskInstance(failed=0))


def test_without_hpgames_targets_it_does_not_read_hpgames(dag, params, api, requests_mock):
    api("revoked", [])
    report = run_report(dag, {**params, "hpgames_reward_ids": []}, TaskInstance(failed=0))
    assert report == {
        "dry_run": False,
        "jobs_not_revoked": {},
        "rewards_still_live": [],
        "unverifiable": {},
        "reads": {"requests": 0, "items_read": 0},
    }
    assert [request.path for request in requests_mock.request_history] == ["/partner/issuance_jobs/job_a"]
