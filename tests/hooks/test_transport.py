from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_rewards.exceptions import RewardsApiError
from airflow_provider_rewards.hooks.auth import hpgames_signature
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.hooks.transport import (
    AsyncTransport,
    Transport,
    TransportSettings,
    is_rate_limited,
    parse_retry_after,
    vendor_error,
)
from tests.conftest import (
    HPGAMES_SECRET,
    REWARDS_URL,
    THANX_CLIENT_ID,
    THANX_MERCHANT,
    THANX_TOKEN,
    THANX_URL,
    FakeClock,
    set_connection,
)

SCOPES_URL = f"{THANX_URL}/partner/scopes"
SCOPES = {"json": {"scopes": ["rewards.issue"]}, "status_code": 200}
R1 = "6d181739-a4c4-4932-a3de-0a980bfee707"


def test_retried_hpgames_request_is_re_signed_with_a_newer_timestamp(hpgames_conn, frozen_clock, requests_mock, sleeps):
    def advance_clock(request, context):
        frozen_clock.advance(1234)  # time passes while the server fails
        return ""

    requests_mock.post(f"{REWARDS_URL}/cancel", [{"status_code": 503, "text": advance_clock}, {"status_code": 200}])
    HPGamesHook().cancel_reward(reward_id=R1)
    first, second = (json.loads(r.body) for r in requests_mock.request_history)
    assert second["timestamp"] == first["timestamp"] + 1234
    for body in (first, second):
        assert body["hash"] == hpgames_signature(HPGAMES_SECRET, body["merchantId"], body["timestamp"])
        assert body["id"] == R1
    assert len(sleeps) == 1


def test_429_honours_retry_after(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, [{"status_code": 429, "headers": {"Retry-After": "2"}}, SCOPES])
    assert ThanxHook().get_scopes() == ["rewards.issue"]
    assert sleeps == [2.0]


def test_500_500_200_succeeds_with_exponential_backoff(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, [{"status_code": 500}, {"status_code": 500}, SCOPES])
    assert ThanxHook().get_scopes() == ["rewards.issue"]
    assert requests_mock.call_count == 3
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0


def test_network_errors_are_retried(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, [{"exc": requests.ConnectionError("reset")}, {"exc": requests.ReadTimeout}, SCOPES])
    assert ThanxHook().get_scopes() == ["rewards.issue"]
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (401, {"code": "AUTHENTICATION_GENERIC", "message": "Invalid token"}, "AUTHENTICATION_GENERIC: Invalid token"),
        (403, {"error": {"code": "FORBIDDEN", "message": "Missing scope"}}, "FORBIDDEN: Missing scope"),
        (404, {"errors": [{"code": "RESOURCE_NOT_FOUND", "message": "No job"}]}, "RESOURCE_NOT_FOUND: No job"),
        (422, {"code": "BAD_REQUEST", "message": "Job is revoked"}, "BAD_REQUEST: Job is revoked"),
        (400, {"errorCode": 1003, "errorText": "ids must be UUIDs"}, "1003: ids must be UUIDs"),
    ],
)
def test_other_4xx_fail_at_once_naming_status_and_vendor_message(
    thanx_conn, requests_mock, sleeps, status, body, detail
):
    requests_mock.get(SCOPES_URL, status_code=status, json=body)
    with pytest.raises(RewardsApiError) as info:
        ThanxHook().get_scopes()
    assert str(info.value) == f"Thanx API GET /partner/scopes failed: HTTP {status} ({detail})"
    assert requests_mock.call_count == 1
    assert not sleeps


def test_raw_text_error_body_is_kept_and_truncated(thanx_conn, requests_mock):
    requests_mock.get(SCOPES_URL, status_code=418, text="x" * 2000)
    with pytest.raises(RewardsApiError) as info:
        ThanxHook().get_scopes()
    assert info.value.vendor_code is None
    assert info.value.vendor_message == "x" * 500 + "... (truncated)"


def test_retries_are_bounded(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, status_code=503, text="unavailable")
    with pytest.raises(RewardsApiError, match=r"failed after 3 attempts: HTTP 503 \(unavailable\)"):
        ThanxHook(max_retries=2).get_scopes()
    assert requests_mock.call_count == 3
    assert len(sleeps) == 2


def test_zero_retries_disables_retrying(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, exc=requests.ConnectionError("refused"))
    with pytest.raises(RewardsApiError, match=r"failed: no response \(ConnectionError: refused\)"):
        ThanxHook(max_retries=0).get_scopes()
    assert not sleeps


def test_retry_after_longer_than_allowed_fails_at_once(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, status_code=429, headers={"Retry-After": "3600"})
    with pytest.raises(RewardsApiError, match="Retry-After 3600s exceeds retry_after_max"):
        ThanxHook().get_scopes()
    assert requests_mock.call_count == 1
    assert not sleeps


def test_secrets_never_reach_exceptions_or_logs(
    thanx_conn, hpgames_conn, requests_mock, sleeps, caplog, assert_no_secrets
):
    caplog.set_level(logging.DEBUG)
    token_echo, secret_echo = f"token {THANX_TOKEN}", f"secret {HPGAMES_SECRET}"
    requests_mock.get(
        SCOPES_URL, [{"status_code": 500, "text": token_echo}, {"status_code": 401, "json": {"message": token_echo}}]
    )
    requests_mock.post(
        f"{REWARDS_URL}/cancel",
        [
            {"exc": requests.ConnectionError(secret_echo)},
            {"status_code": 503, "text": secret_echo},
            {"status_code": 400, "text": secret_echo},
        ],
    )
    errors = []
    for call in (lambda: ThanxHook().get_scopes(), lambda: HPGamesHook().cancel_reward(external_id="e")):
        with pytest.raises(RewardsApiError) as info:
            call()
        errors += [info.value, repr(info.value)]
    assert any("retry 1 of 5" in r.getMessage() for r in caplog.records)
    assert "HTTP 401 (token ***)" in str(errors[0])
    assert "HTTP 400 (secret ***)" in str(errors[2])
    assert_no_secrets(*errors)


def test_retry_log_names_the_request_and_attempt(thanx_conn, requests_mock, sleeps, caplog):
    requests_mock.get(SCOPES_URL, [{"status_code": 503}, SCOPES])
    with caplog.at_level(logging.WARNING):
        ThanxHook().get_scopes()
    assert "Thanx API GET /partner/scopes: HTTP 503; retry 1 of 5 in" in caplog.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"code":"BAD_REQUEST","message":"m"}', ("BAD_REQUEST", "m")),
        ('{"error":{"code":"C","message":"m"}}', ("C", "m")),
        ('{"errors":[{"code":"C","message":"m"}]}', ("C", "m")),
        ('{"errorCode":1002,"errorText":"stale"}', ("1002", "stale")),
        ('{"unexpected":true}', (None, '{"unexpected":true}')),
        ("plain text", (None, "plain text")),
        ("", (None, None)),
    ],
)
def test_vendor_error_shapes(body, expected):
    assert vendor_error(body) == expected


def test_retry_after_parsing():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


def test_backoff_grows_exponentially_and_is_capped():
    settings = TransportSettings(retry_backoff=1, retry_backoff_max=10)
    for retry, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 4: (4, 8), 5: (5, 10), 9: (5, 10)}.items():
        assert all(low <= settings.backoff_delay(retry) <= high for _ in range(50)), retry


class RecordingBody(io.BytesIO):
    """A response body that records whether anything read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, *args: object, **kwargs: object) -> bytes:
        self.reads += 1
        return super().read(*args, **kwargs)


def test_streamed_success_is_returned_unread_even_with_an_error_code(thanx_conn, requests_mock):
    body = RecordingBody(b'{"errorCode": 1005}')
    requests_mock.get(SCOPES_URL, body=body, status_code=200)
    response = ThanxHook().transport.request("GET", "/partner/scopes", stream=True)
    assert body.reads == 0
    assert response.raw.read() == b'{"errorCode": 1005}'
    response.close()


def test_streamed_errors_are_read_retried_and_mapped_as_without_streaming(thanx_conn, requests_mock, sleeps):
    retried = RecordingBody(b"busy")
    requests_mock.get(
        SCOPES_URL,
        [
            {"status_code": 503, "body": retried},
            {"status_code": 404, "json": {"code": "RESOURCE_NOT_FOUND", "message": "No job"}},
        ],
    )
    with pytest.raises(RewardsApiError, match=r"HTTP 404 \(RESOURCE_NOT_FOUND: No job\)"):
        ThanxHook().transport.request("GET", "/partner/scopes", stream=True)
    assert retried.reads > 0
    assert requests_mock.call_count == 2
    assert len(sleeps) == 1
    assert all(r.stream for r in requests_mock.request_history)


def test_streamed_request_sends_the_resolved_verify(thanx_conn, requests_mock, monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    requests_mock.get(SCOPES_URL, **SCOPES)
    ThanxHook().transport.request("GET", "/partner/scopes", stream=True).close()
    assert requests_mock.last_request.verify == str(bundle)


def test_throttle_count_counts_every_429_retried_or_not(thanx_conn, requests_mock, sleeps):
    requests_mock.get(SCOPES_URL, [{"status_code": 429}, {"status_code": 503}, {"status_code": 429}, SCOPES])
    hook = ThanxHook(max_retries=1)
    with pytest.raises(RewardsApiError):
        hook.get_scopes()
    assert hook.transport.throttle_count == 1
    hook.get_scopes()  # a new request: 429, then its one retry succeeds
    assert hook.transport.throttle_count == 2


def test_async_throttle_count_counts_every_429(sleeps):
    answers = iter([httpx.Response(429), httpx.Response(429), httpx.Response(200, json={})])
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers)))
    transport = AsyncTransport("Thanx", THANX_URL, None, TransportSettings(), client)
    assert asyncio.run(transport.request_json("GET", "/partner/scopes")) == {}
    assert transport.throttle_count == 2
    assert len(sleeps) == 2


PACED = {"merchant_id": THANX_MERCHANT, "max_requests_per_second": 100, "max_requests_per_window": 0}


def paced_hook(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, clock: FakeClock, client_id: str = THANX_CLIENT_ID, **extra: Any
) -> ThanxHook:
    """A hook on connection ``conn_id`` (THANX_URL, ``client_id``, a budget) whose process limiter runs on ``clock``."""
    set_connection(
        monkeypatch,
        conn_id,
        conn_type="thanx",
        host=THANX_URL,
        login=client_id,
        password=THANX_TOKEN,
        extra={**PACED, **extra},
    )
    hook = ThanxHook(conn_id)
    limiter = hook.transport.limiter
    assert limiter is not None
    limiter.clock, limiter.sleep = clock, clock.sleep
    return hook


def serve(requests_mock: Any, clock: FakeClock, answers: dict[str, list[dict[str, Any]]]) -> dict[str, list[float]]:
    """Answer GETs of each path under THANX_URL in turn; the returned lists fill with the clock at each send."""
    sent: dict[str, list[float]] = {path: [] for path in answers}

    def recorder(path: str, before: Callable[[], None]) -> Callable[..., str]:
        def answer(request: Any, context: Any) -> str:
            sent[path].append(clock())
            before()
            return "{}"

        return answer

    for path, responses in answers.items():
        served = []
        for response in responses:
            fields = {key: value for key, value in response.items() if key != "before"}
            served.append({**fields, "text": recorder(path, response.get("before", lambda: None))})
        requests_mock.get(f"{THANX_URL}{path}", served)
    return sent


OK: dict[str, Any] = {"status_code": 200}


@pytest.mark.parametrize(
    ("headers", "least", "most"),
    [({"Retry-After": "2"}, 2.0, 2.0), ({}, 2.0, 4.0)],  # without Retry-After: the backoff, 2-4 s at retry_backoff 4
    ids=["retry-after", "backoff"],
)
def test_a_429_pauses_every_hook_of_the_credential_and_no_other(monkeypatch, requests_mock, headers, least, most):
    clock = FakeClock()
    throttled = paced_hook(monkeypatch, "thanx_a", clock, max_retries=0, retry_backoff=4)
    same_credential = paced_hook(monkeypatch, "thanx_b", clock)
    other_credential = paced_hook(monkeypatch, "thanx_c", clock, client_id="another-client")
    assert same_credential.transport.limiter is throttled.transport.limiter is not other_credential.transport.limiter
    sent = serve(requests_mock, clock, {"/a": [{"status_code": 429, "headers": headers}], "/b": [OK], "/c": [OK]})
    with pytest.raises(RewardsApiError, match=r"GET /a failed: HTTP 429"):
        throttled.transport.request("GET", "/a")
    other_credential.transport.request("GET", "/c")
    same_credential.transport.request("GET", "/b")
    assert sent["/a"] == sent["/c"] == [100.0]  # the other credential was not held back
    assert least <= sent["/b"][0] - 100.0 <= most  # the same credential, on another connection id, was


def test_a_429_holds_back_another_thread_of_the_credential_until_the_pause_ends(monkeypatch, requests_mock, sleeps):
    clock = FakeClock()
    throttled = paced_hook(monkeypatch, "thanx_a", clock, max_requests_per_second=1)
    other_thread = paced_hook(monkeypatch, "thanx_b", clock, max_requests_per_second=1)
    limiter = throttled.transport.limiter
    a_in_flight, b_waiting, paused = threading.Event(), threading.Event(), threading.Event()
    penalize = limiter.penalize
    monkeypatch.setattr(limiter, "penalize", lambda seconds: (penalize(seconds), paused.set()))

    def sleep(seconds: float) -> None:
        if not b_waiting.is_set():  # the first to sleep: the other thread, waiting for its 1 s slot
            b_waiting.set()
            paused.wait(5)  # while the 429 is on its way
        clock.sleep(seconds)

    limiter.sleep = sleep

    def until_the_other_thread_waits() -> None:
        a_in_flight.set()
        b_waiting.wait(5)

    sent = serve(
        requests_mock,
        clock,
        {"/a": [{"status_code": 429, "headers": {"Retry-After": "5"}, "before": until_the_other_thread_waits}, OK]},
    )
    requests_mock.get(f"{THANX_URL}/b", text=lambda request, context: str(clock()))
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(throttled.transport.request_json, "GET", "/a")
        assert a_in_flight.wait(5)
        second = pool.submit(other_thread.transport.request_json, "GET", "/b")
        assert first.result(timeout=10) == {}
        b_sent_at = second.result(timeout=10)
    assert sent["/a"][0] == 100.0
    assert b_sent_at >= 105.0  # its slot was at 101, but the 429 at 100 paused the credential until 105
    assert sent["/a"][1] >= 105.0
    assert sleeps == [5.0]  # the throttled request's own retry waited its Retry-After once


def test_the_throttled_request_waits_its_retry_after_once(monkeypatch, requests_mock):
    clock = FakeClock()
    hook = paced_hook(monkeypatch, "thanx_a", clock)
    monkeypatch.setattr(Transport, "sleep", staticmethod(clock.sleep))
    sent = serve(requests_mock, clock, {"/a": [{"status_code": 429, "headers": {"Retry-After": "2"}}, OK]})
    hook.transport.request("GET", "/a")
    assert sent["/a"] == [100.0, 102.0]  # its retry sleep covered the pause: no second wait in the limiter


def test_a_pause_longer_than_retry_after_max_fails_other_calls_unsent(monkeypatch, requests_mock):
    clock = FakeClock()
    throttled = paced_hook(monkeypatch, "thanx_a", clock)
    impatient = paced_hook(monkeypatch, "thanx_b", clock)
    patient = paced_hook(monkeypatch, "thanx_c", clock, retry_after_max=7200)
    sent = serve(requests_mock, clock, {"/a": [{"status_code": 429, "headers": {"Retry-After": "3600"}}], "/b": [OK]})
    with pytest.raises(RewardsApiError, match="Retry-After 3600s exceeds retry_after_max"):
        throttled.transport.request("GET", "/a")
    with pytest.raises(RewardsApiError) as info:
        impatient.transport.request("GET", "/b")
    assert str(info.value) == (
        "Thanx API GET /b failed: HTTP 429 (not sent: the credential is paused for another 3600.0s after a 429, "
        "longer than retry_after_max (300s))"
    )
    assert is_rate_limited(info.value)
    assert (sent["/b"], clock.now) == ([], 100.0)  # refused at once, nothing sent
    patient.transport.request("GET", "/b")
    assert sent["/b"] == [3700.0]


def test_without_a_budget_a_429_pauses_nobody_else(thanx_conn, requests_mock, sleeps):
    requests_mock.get(f"{THANX_URL}/a", status_code=429, headers={"Retry-After": "2"})
    requests_mock.get(f"{THANX_URL}/b", status_code=200)
    throttled, other = ThanxHook(max_retries=0), ThanxHook()
    assert throttled.transport.limiter is other.transport.limiter is None
    with pytest.raises(RewardsApiError, match="HTTP 429"):
        throttled.transport.request("GET", "/a")
    started = time.monotonic()
    other.transport.request("GET", "/b")
    assert time.monotonic() - started < 1.0  # not the 2 s pause a budget would impose
    assert (requests_mock.call_count, sleeps) == (2, [])
