from __future__ import annotations

import http.server
import json
import threading
import time
import types

import httpcore
import httpx
import pytest
from airflow.sdk.module_loading import import_string

from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from tests.conftest import SECRETS, THANX_MERCHANT, THANX_URL, set_connection
from tests.triggers.conftest import UNLIMITED

JOB_URL = f"{THANX_URL}/partner/issuance_jobs/job_1?merchant_id={THANX_MERCHANT}"
CLASSPATH = "airflow_provider_rewards.triggers.thanx.ThanxIssuanceJobTrigger"


def job(state: str, progress: int = 0) -> httpx.Response:
    return httpx.Response(200, json={"issuance_job": {"id": "job_1", "state": state, "progress_percent": progress}})


@pytest.fixture
def answers(monkeypatch):
    """Queue the responses the trigger's HTTP client gets; returns (queue, requests seen)."""
    queue: list[httpx.Response] = []
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]  # the last answer repeats

    client = staticmethod(lambda budget: httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    monkeypatch.setattr(ThanxIssuanceJobTrigger, "_client", client)
    return queue, seen


@pytest.fixture
def one_request_per_poll(monkeypatch):
    """``thanx_default`` with transport retries off, so every failed request is a failed poll."""
    set_connection(
        monkeypatch,
        "thanx_default",
        conn_type="thanx",
        host=THANX_URL,
        login="c",
        password=SECRETS[0],
        extra={"max_retries": 0, **UNLIMITED},
    )


def trigger(**overrides) -> ThanxIssuanceJobTrigger:
    return ThanxIssuanceJobTrigger(
        **{"issuance_job_id": "job_1", "merchant_id": THANX_MERCHANT, "poll_interval": 0, **overrides}
    )


async def only_event(t: ThanxIssuanceJobTrigger) -> dict:
    events = [event async for event in t.run()]
    assert len(events) == 1
    return events[0].payload


def test_serialize_round_trips_through_the_classpath():
    original = trigger(end_time=1_800_000_000.5, target_states=("completed", "failed"))
    classpath, kwargs = original.serialize()
    assert classpath == CLASSPATH
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs == {
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "thanx_conn_id": "thanx_default",
        "target_states": ["completed", "failed"],
        "waiting_states": ["revoking"],
        "poll_interval": 0.0,
        "end_time": 1_800_000_000.5,
        "max_consecutive_failures": 10,
    }


def test_serialized_kwargs_hold_no_credential(thanx_conn):
    _, kwargs = trigger().serialize()
    assert not any(secret in repr(kwargs) for secret in SECRETS)


async def test_revoking_then_revoked_is_success_and_logs_progress(thanx_conn, answers, capfd):
    answers[0].extend([job("revoking", 0), job("revoking", 50), job("revoked", 100)])
    event = await only_event(trigger())
    assert event == {
        "status": "success",
        "issuance_job_id": "job_1",
        "merchant_id": THANX_MERCHANT,
        "job": {
            "id": "job_1",
            "state": "revoked",
            "progress_percent": 100,
            "total_count": None,
            "success_count": None,
            "failure_count": None,
        },
        "message": "Issuance job job_1 is revoked",
    }
    assert [str(r.url) for r in answers[1]] == [JOB_URL] * 3
    out = capfd.readouterr().out
    assert "state revoking, 0% done" in out
    assert "state revoking, 50% done" in out
    assert "state revoked, 100% done" in out


async def test_503_twice_then_revoked_is_success(thanx_conn, answers, sleeps):
    answers[0].extend([httpx.Response(503), httpx.Response(503), job("revoked", 100)])
    assert (await only_event(trigger()))["status"] == "success"
    assert len(answers[1]) == 3
    assert len(sleeps) == 2  # the transport backed off twice


async def test_404_is_an_error_at_once(thanx_conn, answers, sleeps):
    answers[0].append(httpx.Response(404, json={"code": "RESOURCE_NOT_FOUND", "message": "No such job"}))
    event = await only_event(trigger())
    assert event["status"] == "error"
    assert "HTTP 404 (RESOURCE_NOT_FOUND: No such job)" in event["message"]
    assert len(answers[1]) == 1
    assert not sleeps


async def test_403_is_an_error_at_once(thanx_conn, answers):
    answers[0].append(httpx.Response(403, json={"code": "FORBIDDEN", "message": "Not your merchant"}))
    event = await only_event(trigger())
    assert (event["status"], len(answers[1])) == ("error", 1)
    assert "HTTP 403" in event["message"]


@pytest.mark.parametrize("state", ["archived", "completed", "pending"])
async def test_an_unexpected_state_is_an_error_naming_it(thanx_conn, answers, state):
    answers[0].extend([job("revoking", 10), job(state)])
    event = await only_event(trigger())
    assert event["status"] == "error"
    assert event["message"] == f"Issuance job job_1 is in state '{state}', expected revoked (or revoking on the way)"
    assert event["job"]["state"] == state


async def test_deadline_gives_a_timeout_event(thanx_conn, answers):
    answers[0].append(job("revoking", 5))
    event = await only_event(trigger(poll_interval=0.01, end_time=time.time() + 0.05))
    assert event["status"] == "timeout"
    assert event["message"] == "Issuance job job_1 was still revoking at the deadline"
    assert len(answers[1]) >= 2


async def test_consecutive_failure_budget_ends_the_wait(one_request_per_poll, answers, sleeps):
    answers[0].extend([httpx.Response(503), job("revoking"), httpx.Response(502), httpx.Response(500)])
    event = await only_event(trigger(max_consecutive_failures=3))
    assert event["status"] == "error"
    assert event["message"].endswith("HTTP 500 (3 failed polls in a row)")
    assert len(answers[1]) == 5  # the success in between reset the count


async def test_a_poll_rate_limited_beyond_the_retries_is_not_a_failure(one_request_per_poll, answers, sleeps):
    throttled = [httpx.Response(429, headers={"Retry-After": "0.01"}) for _ in range(3)]  # each pauses 10 ms
    answers[0].extend([*throttled, job("revoked", 100)])
    event = await only_event(trigger(max_consecutive_failures=1))
    assert (event["status"], event["job"]["state"]) == ("success", "revoked")
    assert len(answers[1]) == 4


async def test_failed_polls_back_off_exponentially(one_request_per_poll, monkeypatch, answers):
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(ThanxIssuanceJobTrigger, "sleep", staticmethod(record))
    answers[0].extend(
        [
            job("revoking"),
            httpx.Response(503),
            httpx.Response(503),
            httpx.Response(503),
            job("revoking"),
            job("revoked"),
        ]
    )
    assert (await only_event(trigger(poll_interval=60))).get("status") == "success"
    assert waits == [60, 120, 240, 480, 60]


async def test_waits_for_issuance_when_asked(thanx_conn, answers):
    answers[0].extend([job("pending"), job("processing", 40), job("failed", 100)])
    t = trigger(target_states=("completed", "failed"), waiting_states=("pending", "processing"))
    event = await only_event(t)
    assert (event["status"], event["job"]["state"]) == ("success", "failed")


async def test_a_missing_connection_is_an_error_event(answers):
    event = await only_event(trigger(thanx_conn_id="does_not_exist"))
    assert event["status"] == "error"
    assert "does_not_exist" in event["message"]


class _CountingJobServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP/1.1 server answering job_1 as ``revoking`` twice, then ``revoked``; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.answers = ["revoking", "revoking", "revoked"]
        super().__init__(("127.0.0.1", 0), _CountingHandler)


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _CountingJobServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        state = self.server.answers.pop(0)
        body = json.dumps({"issuance_job": {"id": "job_1", "state": state, "progress_percent": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_one_connection_serves_every_poll_however_long_the_interval(monkeypatch):
    """A 60 s poll interval outlives httpx's 5 s default keep-alive; the trigger's client must not."""
    server = _CountingJobServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        set_connection(monkeypatch, "thanx_default", conn_type="thanx", host=url, login="c", password=SECRETS[0])
        clock = [time.monotonic()]
        monkeypatch.setattr(httpcore._async.http11, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))

        async def sleep(seconds: float) -> None:  # the sleep between polls moves httpcore's clock, not ours
            clock[0] += seconds

        monkeypatch.setattr(ThanxIssuanceJobTrigger, "sleep", staticmethod(sleep))
        event = await only_event(trigger(poll_interval=60))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert event["status"] == "success"
    assert clock[0] - time.monotonic() > 110  # two 60 s sleeps really passed on httpcore's clock
    assert server.connections == 1
