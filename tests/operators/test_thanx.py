from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
from airflow.sdk import DAG
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsError, RewardsJobStateError
from airflow_provider_rewards.hooks.thanx import summarize_job
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from tests.conftest import SECRETS, THANX_MERCHANT, THANX_TOKEN, THANX_URL, assert_sent, thanx_headers
from tests.operators.conftest import mutating

JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1"
GET_URL = f"{JOB_URL}?merchant_id={THANX_MERCHANT}"
REVOKE_URL = f"{JOB_URL}/revoke"
REVOKE_BODY = f'{{"merchant_id":"{THANX_MERCHANT}"}}'.encode()
JOB = {
    "id": "job_1",
    "campaign_id": "camp_abc123",
    "state": "completed",
    "total_count": 2,
    "processed_count": 2,
    "success_count": 2,
    "failure_count": 0,
    "progress_percent": 100,
}
TRIGGER_PATH = "airflow_provider_rewards.triggers.thanx.ThanxIssuanceJobTrigger"


def job(state: str, **fields) -> dict:
    return {**JOB, "state": state, **fields}


def reads(*states: str) -> list[dict]:
    """requests-mock answers for consecutive GETs of the job."""
    return [{"json": {"issuance_job": job(state)}} for state in states]


def revoked_answer(state: str = "revoking") -> dict:
    return {"status_code": 202, "json": {"issuance_job": job(state)}}


def revoke(**kwargs) -> ThanxRevokeIssuanceJobOperator:
    return ThanxRevokeIssuanceJobOperator(
        **{"task_id": "revoke", "issuance_job_id": "job_1", "deferrable": False, **kwargs}
    )


def result(outcome: str, state: str, merchant: str = THANX_MERCHANT) -> dict:
    return {"issuance_job_id": "job_1", "merchant_id": merchant, "outcome": outcome, "job": summarize_job(job(state))}


def calls(requests_mock) -> list[tuple[str, str]]:
    return [(r.method, r.url) for r in requests_mock.request_history]


# --- the revoke itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["completed", "failed"])
def test_revocable_job_is_read_then_revoked(thanx_conn, requests_mock, context, assert_no_secrets, state):
    requests_mock.get(JOB_URL, reads(state))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    outcome = revoke().execute(context)
    first, second = requests_mock.request_history
    assert_sent(first, "GET", GET_URL, None, thanx_headers())
    assert_sent(second, "POST", REVOKE_URL, REVOKE_BODY, thanx_headers())
    assert outcome == result("revoke_started", "revoking")
    assert_no_secrets(outcome)


def test_merchant_argument_overrides_the_connection_default(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("completed"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    outcome = revoke(merchant_id="m_other").execute(context)
    assert requests_mock.request_history[0].qs == {"merchant_id": ["m_other"]}
    assert requests_mock.last_request.body == b'{"merchant_id":"m_other"}'
    assert outcome["merchant_id"] == "m_other"


@pytest.mark.parametrize("state", ["revoking", "revoked"])
@pytest.mark.parametrize(
    ("policy", "raises", "outcome"),
    [
        ("succeed", None, "already_{state}"),
        ("fail", AirflowFailException, "already {state}: an earlier revoke got through, and if_already_revoked='fail'"),
        ("skip", AirflowSkipException, "already {state}: an earlier revoke got through; skipping"),
    ],
)
def test_already_revoked_job_follows_if_already_revoked(
    thanx_conn, requests_mock, context, state, policy, raises, outcome
):
    requests_mock.get(JOB_URL, reads(state))
    operator = revoke(if_already_revoked=policy)
    if raises is None:
        assert operator.execute(context) == result(outcome.format(state=state), state)
    else:
        with pytest.raises(raises, match=outcome.format(state=state)):
            operator.execute(context)
    assert calls(requests_mock) == [("GET", GET_URL)]


def test_unknown_state_fails_naming_it(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("archived"))
    with pytest.raises(RewardsJobStateError, match=r"job_1 is in state 'archived', expected one of pending.*unknown"):
        revoke().execute(context)
    assert mutating(requests_mock.request_history) == []


@pytest.mark.parametrize("state", ["pending", "processing"])
def test_issuing_job_fails_unless_told_to_wait(thanx_conn, requests_mock, context, state):
    requests_mock.get(JOB_URL, reads(state))
    with pytest.raises(RewardsJobStateError, match=f"still {state}.*pass wait_for_issuance=True to wait for it"):
        revoke().execute(context)
    assert calls(requests_mock) == [("GET", GET_URL)]


def test_issuing_job_is_waited_for_then_revoked(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("pending", "processing", "completed"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    assert revoke(wait_for_issuance=True, poll_interval=30).execute(context) == result("revoke_started", "revoking")
    assert calls(requests_mock) == [("GET", GET_URL)] * 3 + [("POST", REVOKE_URL)]
    assert sleeps == [30]


# --- retry safety -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lost",
    [
        {"exc": requests.ConnectionError("connection reset")},
        {"status_code": 503, "json": {"code": "GENERIC_ERROR"}},
        {"status_code": 429, "json": {"code": "RATE_LIMITED"}},  # the first POST landed, its retries were throttled
        {"status_code": 408, "json": {"code": "TIMEOUT"}},
    ],
    ids=["connection-dropped", "persistent-503", "last-attempt-429", "last-attempt-408"],
)
def test_revoke_whose_answer_was_lost_is_confirmed_by_a_read(thanx_conn, requests_mock, context, sleeps, lost):
    requests_mock.get(JOB_URL, reads("completed", "revoking"))
    requests_mock.post(REVOKE_URL, [lost])
    assert revoke().execute(context) == result("revoke_started", "revoking")
    assert calls(requests_mock) == [("GET", GET_URL)] + [("POST", REVOKE_URL)] * 6 + [("GET", GET_URL)]
    assert len(sleeps) == 5  # the transport's own retries, then one confirming read; no second round


def test_lost_revoke_on_a_still_revocable_job_is_sent_once_more(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("completed", "completed"))
    requests_mock.post(REVOKE_URL, [{"exc": requests.ConnectionError("reset")}] * 6 + [revoked_answer()])
    assert revoke().execute(context) == result("revoke_started", "revoking")
    assert [method for method, _ in calls(requests_mock)] == ["GET"] + ["POST"] * 6 + ["GET", "POST"]


def test_revoke_lost_twice_fails_saying_what_the_job_reads(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("completed", "completed", "completed"))
    requests_mock.post(REVOKE_URL, exc=requests.ConnectionError("reset"))
    with pytest.raises(RewardsError, match=r"Revoking issuance job job_1 failed .*no response.*now reads 'completed'"):
        revoke().execute(context)
    assert [method for method, _ in calls(requests_mock)].count("POST") == 12  # two rounds, never a third


@pytest.mark.parametrize(("now", "outcome"), [("revoking", "revoke_started"), ("revoked", "revoked")])
def test_422_on_the_revoke_of_a_job_now_revoking_is_our_revoke(thanx_conn, requests_mock, context, now, outcome):
    requests_mock.get(JOB_URL, reads("completed", now))
    requests_mock.post(REVOKE_URL, status_code=422, json={"code": "BAD_REQUEST", "message": "Job cannot be revoked"})
    assert revoke(if_already_revoked="fail").execute(context) == result(outcome, now)
    assert calls(requests_mock) == [("GET", GET_URL), ("POST", REVOKE_URL), ("GET", GET_URL)]


def test_422_on_a_job_that_still_reads_completed_fails_without_resending(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("completed", "completed"))
    requests_mock.post(REVOKE_URL, status_code=422, json={"code": "BAD_REQUEST", "message": "already revoked"})
    with pytest.raises(RewardsError, match=r"HTTP 422 .*now reads 'completed'"):
        revoke().execute(context)
    assert [method for method, _ in calls(requests_mock)] == ["GET", "POST", "GET"]


def test_other_client_errors_fail_at_once_without_a_read_back(thanx_conn, requests_mock, context, assert_no_secrets):
    requests_mock.get(JOB_URL, reads("completed"))
    body = {"code": "FORBIDDEN", "message": f"token {THANX_TOKEN} lacks scope"}
    requests_mock.post(REVOKE_URL, status_code=403, json=body)
    with pytest.raises(RewardsApiError) as info:
        revoke().execute(context)
    assert info.value.status_code == 403
    assert [method for method, _ in calls(requests_mock)] == ["GET", "POST"]
    assert_no_secrets(info.value)


def test_failed_read_back_says_the_revoke_may_have_been_applied(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, [*reads("completed"), {"status_code": 404, "json": {"code": "RESOURCE_NOT_FOUND"}}])
    requests_mock.post(REVOKE_URL, status_code=422, json={"code": "BAD_REQUEST"})
    with pytest.raises(RewardsError, match=r"reading it back failed too .*may or may not have been applied"):
        revoke().execute(context)


def test_a_revoke_refused_unsent_is_not_read_back(thanx_conn, requests_mock, context, monkeypatch):
    """The credential is paused longer than retry_after_max: the transport refuses the POST unsent (attempts 0)."""
    from airflow_provider_rewards.hooks.thanx import ThanxHook

    unsent = RewardsApiError(
        vendor="Thanx", method="POST", path="/revoke", status_code=429, vendor_message="not sent: paused", attempts=0
    )

    def refused_unsent(*args: object, **kwargs: object) -> None:
        raise unsent

    monkeypatch.setattr(ThanxHook, "revoke_issuance_job", refused_unsent)
    requests_mock.get(JOB_URL, reads("completed"))
    with pytest.raises(RewardsError, match=r"job_1 was not sent .*nothing was applied"):
        revoke().execute(context)
    assert calls(requests_mock) == [("GET", GET_URL)]  # the first read only: no read-back of a revoke never sent


# --- waiting for completion (poll mode) -------------------------------------------------------------------------


def test_wait_for_completion_polls_until_revoked(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("completed", "revoking", "revoked"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    assert revoke(wait_for_completion=True, poll_interval=45).execute(context) == result("revoked", "revoked")
    assert sleeps == [45]


def test_rapid_polling_is_allowed_but_warned_about(thanx_conn, requests_mock, context, sleeps, logs):
    requests_mock.get(JOB_URL, reads("completed", "revoking", "revoked"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    assert revoke(wait_for_completion=True, poll_interval=0.5).execute(context)["outcome"] == "revoked"
    assert sleeps == [0.5]
    assert "poll_interval=0.5s polls rapidly; Thanx asks partners not to" in logs()


def test_job_already_revoking_is_waited_for(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("revoking", "revoking", "revoked"))
    assert revoke(wait_for_completion=True, poll_interval=45).execute(context) == result("already_revoked", "revoked")
    assert mutating(requests_mock.request_history) == []


def test_wait_timeout_fails_the_wait(thanx_conn, requests_mock, context, sleeps):
    requests_mock.get(JOB_URL, reads("completed", "revoking", "revoking"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    with pytest.raises(
        RewardsError, match=r"job_1 still revoking after 100s \(waiting for revoked\); wait_timeout is 100s"
    ):
        revoke(wait_for_completion=True, poll_interval=60, wait_timeout=100).execute(context)
    assert sleeps[0] == 60
    assert sum(sleeps) == pytest.approx(100, abs=1)  # the last sleep ends at the deadline, where the last poll is


# --- deferrable mode --------------------------------------------------------------------------------------------


def deferral(operator: ThanxRevokeIssuanceJobOperator, context) -> tuple[TaskDeferred, float, float]:
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context)
    return info.value, before, time.time()


def test_deferrable_wait_for_completion_defers_to_the_trigger(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("completed"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    operator = revoke(deferrable=True, wait_for_completion=True, poll_interval=90, wait_timeout=3600)
    deferred, before, after = deferral(operator, context)
    assert isinstance(deferred.trigger, ThanxIssuanceJobTrigger)
    assert (deferred.method_name, deferred.kwargs) == ("execute_complete", {"outcome": "revoke_started"})
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == TRIGGER_PATH
    assert before + 3600 <= kwargs.pop("end_time") <= after + 3600
    assert kwargs == {
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "thanx_conn_id": "thanx_default",
        "target_states": ["revoked"],
        "waiting_states": ["revoking"],
        "poll_interval": 90.0,
        "max_consecutive_failures": 10,
    }
    assert timedelta(seconds=3600) < deferred.timeout <= timedelta(seconds=3600 + 90 + 60)
    assert not any(secret in repr(deferred.trigger.serialize()) for secret in SECRETS)
    assert import_string(classpath)(**deferred.trigger.serialize()[1]).serialize() == deferred.trigger.serialize()


def test_deferrable_wait_for_issuance_defers_then_revokes_on_resume(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("processing"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    operator = revoke(deferrable=True, wait_for_issuance=True)
    deferred, _, _ = deferral(operator, context)
    _, kwargs = deferred.trigger.serialize()
    assert deferred.method_name == "execute_after_issuance"
    assert (kwargs["target_states"], kwargs["waiting_states"]) == (["completed", "failed"], ["pending", "processing"])
    assert deferred.kwargs == {"deadline": kwargs["end_time"]}
    assert mutating(requests_mock.request_history) == []
    event = {
        "status": "success",
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "job": summarize_job(job("completed")),
        "message": "Issuance job job_1 is completed",
    }
    resumed = revoke(deferrable=True, wait_for_issuance=True)  # a fresh instance, as after a real deferral
    assert resumed.execute_after_issuance(context, event=event, **deferred.kwargs) == result(
        "revoke_started", "revoking"
    )
    assert calls(requests_mock)[-1] == ("POST", REVOKE_URL)


def test_resumed_issuance_wait_defers_again_for_completion_with_the_same_deadline(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("pending"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    first, _, _ = deferral(revoke(deferrable=True, wait_for_issuance=True, wait_for_completion=True), context)
    deadline = first.trigger.serialize()[1]["end_time"]
    event = {"status": "success", "issuance_job_id": "job_1", "merchant_id": THANX_MERCHANT, "job": None, "message": ""}
    resumed = revoke(deferrable=True, wait_for_issuance=True, wait_for_completion=True)
    with pytest.raises(TaskDeferred) as second:
        resumed.execute_after_issuance(context, event=event, **first.kwargs)
    assert (second.value.method_name, second.value.kwargs) == ("execute_complete", {"outcome": "revoke_started"})
    assert second.value.trigger.serialize()[1]["end_time"] == deadline
    assert second.value.trigger.serialize()[1]["target_states"] == ["revoked"]


def test_deferrable_returns_at_once_when_the_job_already_reads_revoked(thanx_conn, requests_mock, context):
    requests_mock.get(JOB_URL, reads("revoked"))
    operator = revoke(deferrable=True, wait_for_completion=True)
    assert operator.execute(context) == result("already_revoked", "revoked")


def test_deferrable_without_a_wait_warns_and_does_not_defer(thanx_conn, requests_mock, context, logs):
    requests_mock.get(JOB_URL, reads("completed"))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    assert revoke(deferrable=True).execute(context)["outcome"] == "revoke_started"
    assert "deferrable=True has no effect without wait_for_issuance or wait_for_completion" in logs()


@pytest.mark.parametrize(("kwargs", "outcome"), [({}, "revoked"), ({"outcome": "already_revoking"}, "already_revoked")])
def test_execute_complete_returns_the_summary_on_success(context, kwargs, outcome):
    event = {
        "status": "success",
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "job": summarize_job(job("revoked")),
        "message": "Issuance job job_1 is revoked",
    }
    assert revoke().execute_complete(context, event=event, **kwargs) == result(outcome, "revoked")


@pytest.mark.parametrize(
    ("status", "message"),
    [("error", "Issuance job job_1 is in state 'completed', expected revoked"), ("timeout", "still revoking")],
)
def test_execute_complete_raises_on_error_and_timeout(context, status, message):
    event = {
        "status": status,
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "job": None,
        "message": message,
    }
    with pytest.raises(
        RewardsError, match=f"Waiting for issuance job job_1 to finish revoking ended with {status}: {message}"
    ):
        revoke().execute_complete(context, event=event)


# --- dry run and templates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "kwargs", "logged"),
    [
        ("completed", {}, "Dry run: would revoke the job (issuance job job_1"),
        ("failed", {"wait_for_completion": True}, "would revoke the job, then wait until it reads revoked"),
        ("processing", {"wait_for_issuance": True}, "would wait for the job to finish issuing, then revoke it"),
        ("revoking", {}, "would send nothing, the job is already being revoked"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, "true", "True"])
def test_dry_run_reads_but_never_revokes(thanx_conn, requests_mock, context, logs, state, kwargs, logged, dry_run):
    requests_mock.get(JOB_URL, reads(state))
    requests_mock.post(REVOKE_URL, **revoked_answer())
    assert revoke(dry_run=dry_run, deferrable=True, **kwargs).execute(context) == result("dry_run", state)
    assert calls(requests_mock) == [("GET", GET_URL)]
    assert logged in logs()


def test_job_merchant_and_dry_run_render_from_jinja(thanx_conn, requests_mock, context):
    requests_mock.get(f"{THANX_URL}/partner/issuance_jobs/job_7", reads("completed"))
    requests_mock.post(f"{THANX_URL}/partner/issuance_jobs/job_7/revoke", **revoked_answer())
    with DAG("jinja_job", schedule=None):
        operator = revoke(
            issuance_job_id="{{ params.job }}", merchant_id="{{ params.merchant }}", dry_run="{{ params.dry }}"
        )
    operator.render_template_fields({**context, "params": {"job": "job_7", "merchant": "m_7", "dry": False}})
    outcome = operator.execute(context)
    assert requests_mock.last_request.body == b'{"merchant_id":"m_7"}'
    assert (outcome["issuance_job_id"], outcome["merchant_id"], outcome["outcome"]) == (
        "job_7",
        "m_7",
        "revoke_started",
    )
