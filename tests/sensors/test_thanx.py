from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_rewards.exceptions import RewardsInputError, RewardsJobStateError
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from tests.conftest import SECRETS, THANX_MERCHANT, THANX_URL

JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1"
REVOKED = {
    "id": "job_1",
    "state": "revoked",
    "progress_percent": 100,
    "total_count": 2,
    "success_count": 2,
    "failure_count": 0,
}


def answer(state: str, progress: int = 0) -> dict:
    return {"json": {"issuance_job": {**REVOKED, "state": state, "progress_percent": progress}}}


def sensor(**overrides) -> ThanxIssuanceJobSensor:
    return ThanxIssuanceJobSensor(**{"task_id": "wait", "issuance_job_id": "job_1", "poke_interval": 0, **overrides})


def test_poke_mode_waits_until_revoked(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [answer("revoking", 10), answer("revoking", 60), answer("revoked", 100)])
    assert sensor(deferrable=False).execute(context={}) == REVOKED
    assert requests_mock.call_count == 3
    assert requests_mock.last_request.qs == {"merchant_id": [THANX_MERCHANT.lower()]}


class FirstTry:
    """The task-instance view a reschedule-mode sensor asks for: never rescheduled before."""

    def get_first_reschedule_date(self, context):
        return None


def test_reschedule_mode_releases_the_slot_between_pokes(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [answer("revoking", 10)])
    with pytest.raises(AirflowRescheduleException):
        sensor(deferrable=False, mode="reschedule", poke_interval=120).execute(context={"ti": FirstTry()})
    assert requests_mock.call_count == 1


def test_poke_fails_on_an_unexpected_state(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [answer("revoking"), answer("completed")])
    with pytest.raises(RewardsJobStateError, match="'completed', expected revoked"):
        sensor(deferrable=False).execute(context={})


def test_deferrable_mode_defers_with_the_right_trigger(thanx_conn, requests_mock, assert_no_secrets):
    requests_mock.get(JOB_URL, [answer("revoking", 30)])
    with pytest.raises(TaskDeferred) as info:
        sensor(deferrable=True, poke_interval=45, timeout=600, merchant_id="m_2").execute(context={})
    deferred = info.value
    assert isinstance(deferred.trigger, ThanxIssuanceJobTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout.total_seconds() == 600
    _, kwargs = deferred.trigger.serialize()
    assert kwargs["issuance_job_id"] == "job_1"
    assert kwargs["merchant_id"] == "m_2"
    assert kwargs["poll_interval"] == 45
    assert kwargs["target_states"] == ["revoked"]
    assert 590 < kwargs["end_time"] - time.time() <= 600
    assert_no_secrets(repr(kwargs))


def test_deferrable_mode_returns_at_once_when_already_revoked(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [answer("revoked", 100)])
    assert sensor(deferrable=True).execute(context={}) == REVOKED


def test_deferrable_mode_fails_at_once_on_an_unexpected_state(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [answer("completed", 100)])
    with pytest.raises(RewardsJobStateError):
        sensor(deferrable=True).execute(context={})


def event(status: str, message: str = "msg", job: dict | None = None) -> dict:
    return {"status": status, "issuance_job_id": "job_1", "merchant_id": THANX_MERCHANT, "job": job, "message": message}


def test_execute_complete_returns_the_job_on_success():
    assert sensor().execute_complete({}, event("success", job=REVOKED)) == REVOKED


@pytest.mark.parametrize(
    ("status", "error"),
    [("timeout", AirflowSensorTimeout), ("error", AirflowException), ("bogus", AirflowException)],
)
def test_execute_complete_raises_with_the_message(status, error):
    with pytest.raises(error, match="Issuance job job_1 is in state 'archived'"):
        sensor().execute_complete({}, event(status, "Issuance job job_1 is in state 'archived'"))


def test_soft_fail_turns_a_timeout_event_into_a_skip():
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event("timeout")}, {})


def test_timeout_event_without_soft_fail_is_a_sensor_timeout():
    with pytest.raises(AirflowSensorTimeout):
        sensor().resume_execution("execute_complete", {"event": event("timeout")}, {})


def test_static_bad_job_id_fails_when_the_dag_is_parsed():
    with pytest.raises(RewardsInputError, match="issuance_job_id"):
        sensor(issuance_job_id="..")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_states": "revoked"}, "target_states must be a list of job states such as"),
        ({"waiting_states": None}, "waiting_states must be a list of job states"),
        ({"target_states": ["revoked", ""]}, "target_states must hold job state names"),
        ({"target_states": []}, "target_states must name at least one state"),
    ],
)
def test_bad_state_lists_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(RewardsInputError, match=message):
        sensor(**kwargs)


def test_templated_job_id_is_validated_after_rendering(thanx_conn, requests_mock):
    s = sensor(issuance_job_id="{{ params.job }}", deferrable=False)
    s.issuance_job_id = " "  # what rendering produced
    with pytest.raises(RewardsInputError, match="issuance_job_id must not be empty"):
        s.execute(context={})
    assert not requests_mock.called


def test_defaults_are_polite_and_templated():
    s = ThanxIssuanceJobSensor(task_id="w", issuance_job_id="job_1")
    assert s.poke_interval == 60
    assert set(s.template_fields) == {"issuance_job_id", "merchant_id"}
    assert not any(secret in repr(vars(s)) for secret in SECRETS)


RATE_LIMITED = {"status_code": 429, "headers": {"Retry-After": "900"}}  # longer than the transport waits


def test_poke_mode_takes_a_rate_limited_poll_for_still_waiting(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [RATE_LIMITED, answer("revoking", 50), RATE_LIMITED, answer("revoked", 100)])
    assert sensor(deferrable=False).execute(context={}) == REVOKED
    assert requests_mock.call_count == 4


def test_deferrable_mode_defers_when_its_first_check_is_rate_limited(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, [RATE_LIMITED])
    with pytest.raises(TaskDeferred):
        sensor(deferrable=True).execute(context={})
    assert requests_mock.call_count == 1
