"""RewardsBaseHook: the HTTP session is closed when a hook is done, and every task closes its hook."""

from __future__ import annotations

import pytest

from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.hooks.transport import Transport
from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor
from tests.conftest import REWARDS_URL, THANX_URL, set_connection
from tests.operators.conftest import TaskInstanceStub

JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1"
REVOKED_JOB = {"json": {"issuance_job": {"id": "job_1", "state": "revoked", "progress_percent": 100}}}
REWARD_ID = "6d181739-a4c4-4932-a3de-0a980bfee707"


@pytest.fixture
def closed(monkeypatch) -> list[Transport]:
    """Every transport closed during the test, in order."""
    closed_transports: list[Transport] = []
    close = Transport.close

    def record(transport: Transport) -> None:
        closed_transports.append(transport)
        close(transport)

    monkeypatch.setattr(Transport, "close", record)
    return closed_transports


def test_close_closes_the_session_and_a_later_request_opens_a_new_one(thanx_conn, closed, monkeypatch):
    hook = ThanxHook()
    transport, session = hook.transport, hook.get_conn()
    sessions_closed: list[bool] = []
    monkeypatch.setattr(session, "close", lambda: sessions_closed.append(True))
    hook.close()
    assert closed == [transport]
    assert sessions_closed == [True]
    assert hook.get_conn() is not session


def test_close_without_any_request_closes_nothing(hpgames_conn, closed):
    HPGamesHook().close()
    assert closed == []


def test_leaving_a_with_block_closes_the_session_even_on_error(hpgames_conn, closed):
    def fail_inside(hook: HPGamesHook) -> None:
        with hook:
            hook.transport  # noqa: B018  # opens the session
            raise RuntimeError("task failed")

    hook = HPGamesHook()
    with pytest.raises(RuntimeError):
        fail_inside(hook)
    assert len(closed) == 1
    assert "transport" not in hook.__dict__


def thanx_revoke(requests_mock):
    requests_mock.get(JOB_URL, **REVOKED_JOB)
    return ThanxRevokeIssuanceJobOperator(task_id="revoke", issuance_job_id="job_1", deferrable=False)


def thanx_sensor(requests_mock):
    requests_mock.get(JOB_URL, **REVOKED_JOB)
    return ThanxIssuanceJobSensor(task_id="wait", issuance_job_id="job_1", deferrable=False, poke_interval=0)


def hpgames_bulk(requests_mock):
    requests_mock.post(f"{REWARDS_URL}/bulkCancel", text="")
    return HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=[REWARD_ID])


def hpgames_bulk_failing(requests_mock):
    requests_mock.post(f"{REWARDS_URL}/bulkCancel", status_code=401, json={"errorCode": 1001})
    return HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=[REWARD_ID])


@pytest.fixture
def context() -> dict:
    return {"ti": TaskInstanceStub(), "params": {}}


@pytest.mark.parametrize("make", [thanx_revoke, thanx_sensor, hpgames_bulk, hpgames_bulk_failing])
def test_every_task_closes_its_session_after_execute(thanx_conn, hpgames_conn, requests_mock, closed, context, make):
    task = make(requests_mock)
    try:
        task.execute(context)
    except Exception:  # the failing variant: the session must be closed all the same
        assert make is hpgames_bulk_failing
    assert requests_mock.call_count == 1
    assert len(closed) == 1


def test_only_thanx_hooks_pace_their_requests(monkeypatch, hpgames_conn):
    set_connection(monkeypatch, "thanx_paced", conn_type="thanx", host=THANX_URL, login="c", password="t")
    assert ThanxHook("thanx_paced").transport.limiter is not None  # the default budget: 4/s, 1,800 per 900 s
    assert HPGamesHook().transport.limiter is None  # HPGames documents no rate limit
