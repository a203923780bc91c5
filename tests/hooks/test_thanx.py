from __future__ import annotations

import logging
import time

import httpx
import pytest
import requests

from airflow_provider_rewards.exceptions import (
    RewardsApiError,
    RewardsConnectionConfigError,
    RewardsInputError,
    RewardsJobStateError,
)
from airflow_provider_rewards.hooks.rate_limit import RateBudget, credential_key, reset_sync_limiters
from airflow_provider_rewards.hooks.thanx import THANX_PRODUCTION_URL, JobVerdict, ThanxHook, observe_job, summarize_job
from tests.conftest import (
    THANX_CLIENT_ID,
    THANX_MERCHANT,
    THANX_TOKEN,
    THANX_URL,
    assert_sent,
    set_connection,
    thanx_headers,
)

JOB = {"id": "job_1", "state": "completed", "total_count": 2, "progress_percent": 100}
JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1"


def test_get_issuance_job_sends_documented_request(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, json={"issuance_job": JOB})
    assert ThanxHook().get_issuance_job("job_1") == JOB
    assert_sent(requests_mock.last_request, "GET", f"{JOB_URL}?merchant_id={THANX_MERCHANT}", None, thanx_headers())


def test_revoke_issuance_job_posts_the_merchant(thanx_conn, requests_mock):
    revoking = {**JOB, "state": "revoking"}
    requests_mock.post(f"{JOB_URL}/revoke", status_code=202, json={"issuance_job": revoking})
    assert ThanxHook().revoke_issuance_job("job_1", merchant_id="m_other") == revoking
    assert_sent(requests_mock.last_request, "POST", f"{JOB_URL}/revoke", b'{"merchant_id":"m_other"}', thanx_headers())


def test_get_scopes(thanx_conn, requests_mock):
    requests_mock.get(f"{THANX_URL}/partner/scopes", json={"scopes": ["rewards.issue", "subscribers.write"]})
    assert ThanxHook().get_scopes() == ["rewards.issue", "subscribers.write"]
    assert_sent(requests_mock.last_request, "GET", f"{THANX_URL}/partner/scopes", None, thanx_headers())


@pytest.mark.parametrize(
    ("job_id", "escaped"),
    [("a/b", "a%2Fb"), ("../x", "..%2Fx"), ("j?x=1", "j%3Fx%3D1"), ("j#f", "j%23f"), ("%2F", "%252F"), ("é", "%C3%A9")],
)
def test_job_ids_stay_one_escaped_path_segment(thanx_conn, requests_mock, job_id, escaped):
    url = f"{THANX_URL}/partner/issuance_jobs/{escaped}/revoke"
    requests_mock.post(url, status_code=202, json={"issuance_job": JOB})
    ThanxHook().revoke_issuance_job(job_id)
    assert requests_mock.last_request.url == url


@pytest.mark.parametrize("job_id", ["", " ", "..", ".", "a\nb", 7, None, "x" * 300])
def test_bad_job_ids_fail_before_any_request(thanx_conn, requests_mock, job_id):
    with pytest.raises(RewardsInputError, match="issuance_job_id"):
        ThanxHook().get_issuance_job(job_id)
    assert not requests_mock.called


def test_merchant_is_required_when_the_connection_has_none(monkeypatch, requests_mock):
    set_connection(monkeypatch, "thanx_nomerchant", conn_type="thanx", login="c", password=THANX_TOKEN)
    with pytest.raises(RewardsInputError, match=r"merchant_id is required.*thanx_nomerchant"):
        ThanxHook("thanx_nomerchant").revoke_issuance_job("job_1")
    assert not requests_mock.called


def test_empty_host_defaults_to_production(monkeypatch):
    set_connection(monkeypatch, "thanx_prod", conn_type="thanx", login="c", password=THANX_TOKEN)
    assert ThanxHook("thanx_prod").config.base_url == THANX_PRODUCTION_URL


def test_legacy_prefixed_extra_field_is_read(monkeypatch):
    set_connection(
        monkeypatch,
        "thanx_legacy",
        conn_type="thanx",
        login="c",
        password=THANX_TOKEN,
        extra={"extra__thanx__merchant_id": "m_legacy"},
    )
    assert ThanxHook("thanx_legacy").resolve_merchant_id() == "m_legacy"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"login": "", "password": THANX_TOKEN}, "login (Client ID)"),
        ({"login": "c", "password": ""}, "password (Access Token)"),
        ({"login": "c", "password": THANX_TOKEN, "host": "ftp://x"}, "host (API base URL)"),
        ({"login": "c", "password": THANX_TOKEN, "extra": {"read_timeout": "soon"}}, "extra.read_timeout"),
        ({"login": "c", "password": THANX_TOKEN, "extra": {"max_retries": -1}}, "extra.max_retries"),
        ({"login": "c", "password": THANX_TOKEN, "extra": {"max_requests_per_second": "fast"}}, "extra.max_requests"),
        ({"login": "c", "password": THANX_TOKEN, "extra": {"triggerer_count": 0}}, "extra.triggerer_count"),
    ],
)
def test_bad_connection_fields_name_the_connection_and_field(monkeypatch, assert_no_secrets, fields, named):
    set_connection(monkeypatch, "thanx_bad", conn_type="thanx", **fields)
    with pytest.raises(RewardsConnectionConfigError) as info:
        ThanxHook("thanx_bad").get_scopes()
    assert "'thanx_bad'" in str(info.value)
    assert named in str(info.value)
    assert_no_secrets(info.value)


def test_connection_extra_and_hook_arguments_set_the_transport(monkeypatch):
    set_connection(
        monkeypatch,
        "thanx_tuned",
        conn_type="thanx",
        login="c",
        password=THANX_TOKEN,
        extra={"read_timeout": "12.5", "max_retries": 2},
    )
    settings = ThanxHook("thanx_tuned", max_retries=7).config.settings
    assert (settings.read_timeout, settings.max_retries, settings.connect_timeout) == (12.5, 7, 10.0)


def test_unknown_hook_argument_is_refused():
    with pytest.raises(RewardsInputError, match="retries_max"):
        ThanxHook(retries_max=3)


def test_connection_test_reports_the_revoke_scope(thanx_conn, requests_mock):
    requests_mock.get(f"{THANX_URL}/partner/scopes", json={"scopes": ["rewards.issue"]})
    assert ThanxHook().test_connection() == (True, f"Connected to {THANX_URL}; scope rewards.issue is granted")
    requests_mock.get(f"{THANX_URL}/partner/scopes", json={"scopes": ["subscribers.write"]})
    ok, message = ThanxHook().test_connection()
    assert not ok
    assert "lacks scope rewards.issue, needed to revoke issuance jobs (granted: subscribers.write)" in message
    assert "HTTP 200" not in message


def test_connection_test_reports_an_auth_failure_without_the_token(thanx_conn, requests_mock, assert_no_secrets):
    requests_mock.get(
        f"{THANX_URL}/partner/scopes",
        status_code=401,
        json={"code": "AUTHENTICATION_GENERIC", "message": f"bad token {THANX_TOKEN}"},
    )
    ok, message = ThanxHook().test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert "AUTHENTICATION_GENERIC: bad token ***" in message
    assert_no_secrets(message)


def test_non_json_success_body_is_an_api_error(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, text="<html>maintenance</html>")
    with pytest.raises(RewardsApiError, match="response is not JSON"):
        ThanxHook().get_issuance_job("job_1")


def test_success_body_without_a_job_is_an_api_error(thanx_conn, requests_mock):
    requests_mock.get(JOB_URL, json={"something": "else"})
    with pytest.raises(RewardsApiError, match="no issuance_job object"):
        ThanxHook().get_issuance_job("job_1")


def test_hook_reuses_one_session(thanx_conn):
    hook = ThanxHook()
    assert isinstance(hook.get_conn(), requests.Session)
    assert hook.get_conn() is hook.get_conn()


# --- async path (trigger) -------------------------------------------------------------------------------------


def mock_client(*responses: httpx.Response | Exception, seen: list[httpx.Request]) -> httpx.AsyncClient:
    """An AsyncClient answering each request with the next response (or raising the next exception)."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_async_get_issuance_job_sends_the_same_headers(thanx_conn):
    seen: list[httpx.Request] = []
    async with mock_client(httpx.Response(200, json={"issuance_job": JOB}), seen=seen) as client:
        assert await ThanxHook().aget_issuance_job("job_1", client=client) == JOB
    (request,) = seen
    assert (request.method, str(request.url)) == ("GET", f"{JOB_URL}?merchant_id={THANX_MERCHANT}")
    assert {name: request.headers[name] for name in thanx_headers()} == thanx_headers()


async def test_async_retries_transient_failures(thanx_conn, sleeps):
    seen: list[httpx.Request] = []
    answers = (
        httpx.ConnectError("refused"),
        httpx.Response(503, text="busy"),
        httpx.Response(429, headers={"Retry-After": "0.3"}),
        httpx.Response(200, json={"issuance_job": JOB}),
    )
    async with mock_client(*answers, seen=seen) as client:
        assert await ThanxHook().aget_issuance_job("job_1", client=client) == JOB
    assert len(seen) == 4
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0
    assert sleeps[2] == 0.3


async def test_async_permanent_failure_raises_at_once(thanx_conn, sleeps, assert_no_secrets):
    seen: list[httpx.Request] = []
    body = {"code": "RESOURCE_NOT_FOUND", "message": "Issuance job not found"}
    async with mock_client(httpx.Response(404, json=body), seen=seen) as client:
        with pytest.raises(RewardsApiError) as info:
            await ThanxHook().aget_issuance_job("job_1", client=client)
    assert len(seen) == 1
    assert not sleeps
    assert info.value.status_code == 404
    assert str(info.value) == (
        "Thanx API GET /partner/issuance_jobs/job_1 failed: HTTP 404 (RESOURCE_NOT_FOUND: Issuance job not found)"
    )
    assert_no_secrets(info.value)


def test_config_repr_hides_the_token(thanx_conn):
    config = ThanxHook().config
    assert THANX_TOKEN not in repr(config)
    assert THANX_CLIENT_ID in repr(config)


# --- waiting on a job (blocking) --------------------------------------------------------------------------------


def job_in(state: str, progress: int = 0) -> dict:
    return {"json": {"issuance_job": {**JOB, "state": state, "progress_percent": progress}}}


def test_wait_for_job_state_polls_until_revoked(thanx_conn, requests_mock, sleeps):
    requests_mock.get(JOB_URL, [job_in("revoking", 0), job_in("revoking", 50), job_in("revoked", 100)])
    job = ThanxHook().wait_for_job_state("job_1", poll_interval=15)
    assert job["state"] == "revoked"
    assert sleeps == [15, 15]


def test_wait_for_job_state_refuses_an_unexpected_state(thanx_conn, requests_mock, sleeps):
    requests_mock.get(JOB_URL, [job_in("revoking"), job_in("completed")])
    with pytest.raises(RewardsJobStateError, match=r"job_1 is in state 'completed', expected revoked \(or revoking"):
        ThanxHook().wait_for_job_state("job_1", poll_interval=1)


def test_wait_for_job_state_times_out(thanx_conn, requests_mock, sleeps):
    requests_mock.get(JOB_URL, [job_in("processing")] * 5)
    with pytest.raises(TimeoutError, match="job_1 still processing after 30s"):
        ThanxHook().wait_for_job_state(
            "job_1",
            target_states=("completed", "failed"),
            waiting_states=("pending", "processing"),
            poll_interval=20,
            timeout=30,
        )
    assert sleeps == [20, 10]  # polls at 0, 20 and 30 s: the last one at the deadline, not one poll early
    assert requests_mock.call_count == 3


def test_summarize_job_keeps_only_small_fields():
    job = {**JOB, "summary": {"failures": [{"identifier_index": 1}] * 1000}, "campaign_id": "c"}
    assert summarize_job(job) == {
        "id": "job_1",
        "state": "completed",
        "progress_percent": 100,
        "total_count": 2,
        "success_count": None,
        "failure_count": None,
    }


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        ("revoked", JobVerdict.DONE),
        ("revoking", JobVerdict.WAITING),
        ("completed", JobVerdict.UNEXPECTED),
        (None, "unexpected"),
    ],
)
def test_observe_job_judges_a_read_for_a_wait(state, verdict):
    seen = observe_job("job_1", {**JOB, "state": state}, ("revoked",), ("revoking",), log=logging.getLogger("t"))
    assert seen.verdict is JobVerdict(verdict)
    assert seen.summary == summarize_job({**JOB, "state": state})
    if verdict == JobVerdict.UNEXPECTED:
        assert seen.message == f"Issuance job job_1 is in state {state!r}, expected revoked (or revoking on the way)"
        assert str(seen.error()) == seen.message


def test_observe_job_logs_a_state_only_when_it_changed(caplog):
    log = logging.getLogger("observe")
    with caplog.at_level(logging.INFO, logger="observe"):
        first = observe_job(
            "job_1", {**JOB, "state": "revoking", "progress_percent": 10}, ("revoked",), ("revoking",), log=log
        )
        same = observe_job(
            "job_1",
            {**JOB, "state": "revoking", "progress_percent": 10},
            ("revoked",),
            ("revoking",),
            log=log,
            previous=first,
        )
        observe_job(
            "job_1",
            {**JOB, "state": "revoking", "progress_percent": 50},
            ("revoked",),
            ("revoking",),
            log=log,
            previous=same,
        )
    assert caplog.messages == [
        "Issuance job job_1: state revoking, 10% done",
        "Issuance job job_1: state revoking, 50% done",
    ]


def budget_conn(monkeypatch, conn_id: str, **budget: object) -> str:
    set_connection(
        monkeypatch,
        conn_id,
        conn_type="thanx",
        host=THANX_URL,
        login=THANX_CLIENT_ID,
        password=THANX_TOKEN,
        extra=budget,
    )
    return conn_id


def test_the_budget_and_credential_key_come_from_the_connection(monkeypatch):
    budget_conn(monkeypatch, "thanx_budget", max_requests_per_second="2.5", window_seconds=60, triggerer_count=2)
    config = ThanxHook("thanx_budget").config
    assert config.budget == RateBudget(2.5, 1800, 60.0, 2)
    assert config.credential_key == credential_key(THANX_URL, THANX_CLIENT_ID)
    assert THANX_TOKEN not in repr(config)


def test_sync_hooks_of_one_credential_share_one_limiter_and_are_spaced_by_it(monkeypatch, requests_mock):
    reset_sync_limiters()
    budget_conn(monkeypatch, "thanx_a", max_requests_per_second=10, max_requests_per_window=0)
    budget_conn(monkeypatch, "thanx_b", max_requests_per_second=10, max_requests_per_window=0)  # same credential
    requests_mock.get(f"{THANX_URL}/partner/scopes", json={"scopes": []})
    first, second = ThanxHook("thanx_a"), ThanxHook("thanx_b")
    assert first.transport.limiter is second.transport.limiter is not None
    started = time.monotonic()
    for hook in (first, second, first, second):
        hook.get_scopes()
    assert time.monotonic() - started >= 3 * 0.1 - 0.01  # 10/s: 100 ms between grants, across both hooks
    assert requests_mock.call_count == 4


def test_a_connection_without_limits_gets_no_sync_limiter(monkeypatch):
    budget_conn(monkeypatch, "thanx_free", max_requests_per_second=0, max_requests_per_window=0)
    assert ThanxHook("thanx_free").transport.limiter is None


def test_a_rate_limited_poll_of_a_blocking_wait_is_a_delayed_poll(thanx_conn, requests_mock, sleeps):
    requests_mock.get(JOB_URL, [{"status_code": 429}, {"json": {"issuance_job": {**JOB, "state": "revoked"}}}])
    job = ThanxHook(max_retries=0).wait_for_job_state("job_1", poll_interval=5)
    assert job["state"] == "revoked"
    assert sleeps == [5]
