"""Server behaviour: fault injection, inspection endpoints, request log, concurrency and the CLI."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from rewards_sandbox import (
    DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
    DEMO_HPGAMES_SECRET,
    DEMO_THANX_ACCESS_TOKEN,
    DEMO_THANX_CLIENT_ID,
    DEMO_THANX_MERCHANT_ID,
    DEMO_THANX_REVOKE_JOB_IDS,
    HpgErrorCode,
    SandboxConfig,
    SandboxServer,
    running_sandbox,
)
from rewards_sandbox.testing import hpgames_body, job_states, reward_statuses, thanx_headers

import airflow_provider_rewards
from tests.sandbox.helpers import SandboxClient

JOB = DEMO_THANX_REVOKE_JOB_IDS[0]
REWARD = DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]
HPG_FAULT_CODES = {
    "429": HpgErrorCode.RATE_LIMITED,
    "500": HpgErrorCode.INTERNAL_ERROR,
    "503": HpgErrorCode.SERVICE_UNAVAILABLE,
}


def test_drop_applies_the_change_then_closes_the_connection(client, sandbox):
    sandbox.set_faults(1.0, seed=7, kinds=["drop"])
    with pytest.raises(requests.ConnectionError):
        client.revoke(JOB)
    with pytest.raises(requests.ConnectionError):
        client.hpg("cancel", {"id": REWARD})
    assert client.job_states()[JOB] == "revoking"
    assert client.reward_statuses()[REWARD] == "CANCELLED"
    log = sandbox.request_log()
    assert [(e["status"], e["fault"]) for e in log] == [(202, "drop"), (200, "drop")]


@pytest.mark.parametrize("kind", ["429", "500", "503"])
def test_error_faults_change_nothing(client, sandbox, kind):
    sandbox.set_faults(1.0, kinds=[kind])
    thanx = client.revoke(JOB)
    hpgames = client.hpg("cancel", {"id": REWARD})
    assert thanx.status_code == hpgames.status_code == int(kind)
    assert thanx.json()["code"] == ("TOO_MANY_REQUESTS" if kind == "429" else "GENERIC_ERROR")
    assert hpgames.json()["errorCode"] == HPG_FAULT_CODES[kind]
    assert ("Retry-After" in thanx.headers) is (kind == "429")
    sandbox.set_faults(0.0)
    assert client.job_states()[JOB] == "completed"
    assert client.reward_statuses()[REWARD] == "IN_PROGRESS"


def test_retry_after_is_configurable_and_faults_skip_inspection():
    with running_sandbox(fault_rate=1.0, fault_kinds=("429",), retry_after_s=3) as server:
        client = SandboxClient(server)
        response = client.thanx("GET", "/partner/scopes")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert client.snapshot()["faults"]["rate"] == 1.0  # /_sandbox/* never faults


def test_fault_sequence_is_reproducible_and_settable_over_http(client, sandbox):
    def run() -> list[int]:
        set_faults = client.session.post(
            f"{client.url}/_sandbox/faults",
            json={"rate": 0.5, "seed": 42, "kinds": ["500", "503"]},
            timeout=10,
        )
        assert set_faults.json() == {
            "rate": 0.5,
            "seed": 42,
            "kinds": ["500", "503"],
            "retry_after_s": 1,
            "rate_limit": None,
            "retry_after_override": None,
            "already_cancelled": "ok",
            "error_200_actions": [],
        }
        return [client.thanx("GET", "/partner/scopes").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500, 503}
    bad = client.session.post(f"{client.url}/_sandbox/faults", json={"rate": 2}, timeout=10)
    assert bad.status_code == 400


def test_request_log_holds_no_secrets(client, sandbox):
    client.get_job(JOB)
    client.hpg("readAll")
    response = client.session.get(f"{client.url}/_sandbox/requests", timeout=10)
    entries = response.json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", f"/partner/issuance_jobs/{JOB}", 200),
        ("POST", "/api/v1/integration/rewards/readAll", 200),
    ]
    assert set(entries[0]) == {"time", "method", "path", "status", "fault", "duration_ms"}
    text = response.text
    for secret in (DEMO_THANX_ACCESS_TOKEN, DEMO_THANX_CLIENT_ID, DEMO_HPGAMES_SECRET, "merchant_id", "hash"):
        assert secret not in text
    assert client.session.delete(f"{client.url}/_sandbox/requests", timeout=10).status_code == 200
    assert sandbox.request_log() == []


def test_reset_restores_the_seed(client):
    before = client.snapshot()
    assert client.revoke(JOB).status_code == 202
    client.hpg("cancel", {"id": REWARD})
    assert client.job_states() != job_states(before)
    assert client.reward_statuses() != reward_statuses(before)
    assert client.session.post(f"{client.url}/_sandbox/reset", timeout=10).json() == {"reset": True}
    assert client.snapshot()["thanx"] == before["thanx"]
    assert client.reward_statuses() == reward_statuses(before)


def test_serves_500_concurrent_requests(client, sandbox):
    def one(index: int) -> int:
        if index % 2:
            body = hpgames_body({"playerId": "player-001"})
            url = f"{client.url}/api/v1/integration/rewards/readAll"
            return requests.post(url, json=body, timeout=30).status_code
        response = requests.get(
            f"{client.url}/partner/issuance_jobs/{JOB}",
            params={"merchant_id": DEMO_THANX_MERCHANT_ID},
            headers=thanx_headers(),
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=150) as pool:
        statuses = list(pool.map(one, range(500)))
    assert statuses == [200] * 500
    assert len(sandbox.request_log()) == 500


def test_stop_closes_idle_keep_alive_connections():
    server = SandboxServer(SandboxConfig(port=0))
    server.start()
    client = SandboxClient(server)
    assert client.thanx("GET", "/partner/scopes").status_code == 200  # leaves a pooled connection
    server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        client.thanx("GET", "/partner/scopes")
    server.stop()  # idempotent


def test_config_validation():
    with pytest.raises(ValueError, match="fault rate"):
        SandboxConfig(fault_rate=1.5)
    with pytest.raises(ValueError, match="fault kinds"):
        SandboxConfig(fault_kinds=("418",))
    with pytest.raises(ValueError, match="either seed or seed_file"):
        SandboxConfig(seed={}, seed_file="x.json")


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def test_cli_smoke():
    root = str(Path(airflow_provider_rewards.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "rewards_sandbox", "--port", "0", "--revoke-seconds", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        printed = {}
        while "ready" not in printed:
            line = lines.get(timeout=20)
            assert line is not None, "the CLI exited before it was ready"
            key, _, value = line.partition("=")
            printed[key] = value
        assert printed["base_url"].startswith("http://127.0.0.1:")
        assert printed["thanx_client_id"] == DEMO_THANX_CLIENT_ID
        headers = thanx_headers(printed["thanx_client_id"], printed["thanx_access_token"])
        response = requests.get(f"{printed['base_url']}/partner/scopes", headers=headers, timeout=10)
        assert response.json() == {"scopes": ["rewards.issue"]}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    remaining = []
    while (line := lines.get(timeout=5)) is not None:
        remaining.append(line)
    assert remaining == ["stopped=1"]
