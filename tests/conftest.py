"""Shared fixtures: connections with distinctive secrets, a frozen signing clock, recorded sleeps."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

# Airflow reads AIRFLOW_HOME at import time; keep every test run away from ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rewards-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

THANX_URL = "https://thanx.test"
THANX_CLIENT_ID = "client-id-1234"
THANX_TOKEN = "thanx-token-DO-NOT-LEAK-5f1c9a"
THANX_MERCHANT = "k2lye10h32l5wzo"

HPGAMES_URL = "https://hpgames.test"
HPGAMES_MERCHANT = "1387a6cc-3651-4473-ae52-e415caea3395"
HPGAMES_SECRET = "hpgames-secret-DO-NOT-LEAK-77e0b2"
REWARDS_URL = f"{HPGAMES_URL}/api/v1/integration/rewards"

FROZEN_MS = 1709289932725
SECRETS = (THANX_TOKEN, HPGAMES_SECRET)


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    """Define an Airflow connection through its AIRFLOW_CONN_<ID> environment variable (JSON form)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def thanx_conn(monkeypatch):
    """``thanx_default`` pointing at THANX_URL, with a default merchant and fast retries."""
    set_connection(
        monkeypatch,
        "thanx_default",
        conn_type="thanx",
        host=THANX_URL,
        login=THANX_CLIENT_ID,
        password=THANX_TOKEN,
        # No rate budget here: tests of the budget set their own connections (the limiter is per credential).
        extra={"merchant_id": THANX_MERCHANT, "max_requests_per_second": 0, "max_requests_per_window": 0},
    )
    return "thanx_default"


@pytest.fixture
def hpgames_conn(monkeypatch):
    """``hpgames_default`` pointing at HPGAMES_URL."""
    set_connection(
        monkeypatch,
        "hpgames_default",
        conn_type="hpgames",
        host=HPGAMES_URL,
        login=HPGAMES_MERCHANT,
        password=HPGAMES_SECRET,
    )
    return "hpgames_default"


@pytest.fixture
def sleeps(monkeypatch):
    """Replace the transports' sleeps with recorders; the list holds every requested delay."""
    from airflow_provider_rewards.hooks.transport import AsyncTransport, Transport

    delays: list[float] = []

    async def async_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(Transport, "sleep", staticmethod(delays.append))
    monkeypatch.setattr(AsyncTransport, "sleep", staticmethod(async_sleep))
    return delays


@pytest.fixture
def frozen_clock(monkeypatch):
    """Freeze the HPGames signing clock at FROZEN_MS; ``clock.advance(ms)`` moves it on."""
    from airflow_provider_rewards.hooks import auth

    class Clock:
        now = FROZEN_MS

        def advance(self, ms: int) -> None:
            self.now += ms

    clock = Clock()
    monkeypatch.setattr(auth, "epoch_millis", lambda: clock.now)
    return clock


@pytest.fixture
def assert_no_secrets(caplog, capfd):
    """Call with any texts (exception messages, return values); also checks every captured log record
    and everything written to stdout and stderr so far (Airflow's structlog loggers print there)."""

    def check(*texts: object) -> None:
        out, err = capfd.readouterr()
        everything = [str(text) for text in texts] + [record.getMessage() for record in caplog.records] + [out, err]
        for secret in SECRETS:
            leaks = [text for text in everything if secret in text]
            assert not leaks, f"secret leaked into: {leaks}"

    return check


def thanx_headers() -> dict[str, str]:
    """Every header the Thanx Partner API requires, with the test connection's credentials."""
    from airflow_provider_rewards.hooks.auth import USER_AGENT

    return {
        "Authorization": f"Bearer {THANX_TOKEN}",
        "X-ClientId": THANX_CLIENT_ID,
        "Accept-Version": "v4.0",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def assert_sent(request, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> None:
    """Assert one recorded requests-mock request: method, full URL (path and query), headers, exact body."""
    assert request.method == method
    assert request.url == url
    for name, value in (headers or {}).items():
        assert request.headers.get(name) == value, name
    assert request.body == body


@pytest.fixture
def planted_secrets() -> dict[str, str]:
    """Distinctive per-test values of both secrets, for end-to-end runs that then scan for leaks."""
    return {
        "thanx access token": f"thanx-tok-SECRETSCAN-{secrets.token_hex(6)}",
        "hpgames secret": f"hpgames-sec-SECRETSCAN-{secrets.token_hex(6)}",
    }


@pytest.fixture
def planted_credentials(planted_secrets) -> Any:
    """The sandbox's demo credentials with the two secrets replaced by ``planted_secrets``."""
    from rewards_sandbox.demo import Credentials

    demo = Credentials.demo()
    return Credentials(
        thanx_client_id=demo.thanx_client_id,
        thanx_access_token=planted_secrets["thanx access token"],
        thanx_merchant_id=demo.thanx_merchant_id,
        hpgames_merchant_id=demo.hpgames_merchant_id,
        hpgames_secret=planted_secrets["hpgames secret"],
    )


@pytest.fixture
def planted_seed(planted_credentials) -> dict[str, Any]:
    """The sandbox's demo seed accepting only the planted credentials (demo token and secret replaced)."""
    from rewards_sandbox import demo_seed

    seed = demo_seed()
    thanx = [c for c in seed["thanx"]["credentials"] if c["client_id"] == planted_credentials.thanx_client_id]
    hpgames = [m for m in seed["hpgames"]["merchants"] if m["id"] == planted_credentials.hpgames_merchant_id]
    assert len(thanx) == len(hpgames) == 1, "the demo seed no longer has the demo credentials"
    thanx[0]["access_token"] = planted_credentials.thanx_access_token
    hpgames[0]["secret"] = planted_credentials.hpgames_secret
    return seed


@pytest.fixture(scope="session")
def migrated_airflow_home(tmp_path_factory) -> Path:
    """An AIRFLOW_HOME with a migrated SQLite metadata database, made once per session to copy from."""
    from tests.chaos.harness import template_home

    return template_home(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def fresh_airflow_home(migrated_airflow_home, tmp_path) -> Path:
    """A new AIRFLOW_HOME holding a copy of the migrated database and nothing else."""
    from tests.chaos.harness import fresh_home

    return fresh_home(migrated_airflow_home, tmp_path / "airflow-home")


# -- ids streamed from files and the per-reward record (issue #14; owner: helper "sources") ----------------


def make_uuids(count: int, seed: int = 14) -> list[str]:
    """``count`` distinct, reproducible lowercase UUID strings."""
    import random
    import uuid

    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


@pytest.fixture
def uuids() -> list[str]:
    """Twelve distinct lowercase UUIDs."""
    return make_uuids(12)


@pytest.fixture
def ids_file(tmp_path) -> Any:
    """Write an ids file under tmp_path: ``ids_file(name, text_or_bytes)`` -> its ``file://`` URI (``.gz`` gzips it)."""
    import gzip

    def write(name: str, content: str | bytes) -> str:
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = tmp_path / name
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return f"file://{path}"

    return write


@pytest.fixture(autouse=True)
def _fresh_rate_limiters() -> None:
    """Every test starts with no per-process Thanx limiter (they are per credential, shared across hooks)."""
    from airflow_provider_rewards.hooks.rate_limit import reset_sync_limiters

    reset_sync_limiters()


# -- results.jsonl readers, shared by the operator and record tests (owner: helper "tidy") -----------------


def read_results(location: str | Path) -> list[dict[str, Any]]:
    """The lines of a results.jsonl, given as its path or its display location (``file:///.../results.jsonl``)."""
    text = Path(str(location).removeprefix("file://")).read_text()
    return [json.loads(line) for line in text.splitlines()]


def outcomes_by_id(location: str | Path) -> dict[str, str]:
    """``{id: outcome}`` of a results.jsonl (see :func:`read_results`), asserting every id appears once."""
    lines = read_results(location)
    found = {line["id"]: line["outcome"] for line in lines}
    assert len(found) == len(lines), "an id appears twice in the results"
    return found


class FakeClock:
    """A fake monotonic clock for limiters (and every thread of a test): it moves only when something sleeps."""

    def __init__(self) -> None:
        self.now, self._lock = 100.0, threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
