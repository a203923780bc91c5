"""Helpers for tests, benchmarks and demos that talk to a sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rewards_sandbox.config import SandboxConfig
from rewards_sandbox.seed import (
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_HPGAMES_SECRET,
    DEMO_THANX_ACCESS_TOKEN,
    DEMO_THANX_CLIENT_ID,
    DEMO_THANX_MERCHANT_ID,
)
from rewards_sandbox.server import SandboxServer
from rewards_sandbox.signing import sign_hpgames_body
from rewards_sandbox.thanx_api import ACCEPT_VERSION

HPGAMES_REWARDS_PATH = "/api/v1/integration/rewards"


@contextmanager
def running_sandbox(config: SandboxConfig | None = None, **overrides: Any) -> Iterator[SandboxServer]:
    """Start a sandbox on 127.0.0.1 and a free port; always stop it on exit."""
    server = SandboxServer(config, **{**overrides, "host": "127.0.0.1", "port": 0})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def thanx_headers(
    client_id: str = DEMO_THANX_CLIENT_ID,
    access_token: str = DEMO_THANX_ACCESS_TOKEN,
    *,
    accept_version: str = ACCEPT_VERSION,
) -> dict[str, str]:
    """The headers every Thanx partner request carries."""
    return {
        "Authorization": f"Bearer {access_token}",
        "X-ClientId": client_id,
        "Accept-Version": accept_version,
        "Content-Type": "application/json",
        "User-Agent": "rewards-sandbox-tests/1.0.0",
    }


def hpgames_body(
    fields: Mapping[str, Any] | None = None,
    *,
    merchant_id: str = DEMO_HPGAMES_MERCHANT_ID,
    secret: str = DEMO_HPGAMES_SECRET,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A signed HPGames body: ``fields`` plus merchantId, timestamp (default now) and hash."""
    body = {**(fields or {}), "merchantId": merchant_id}
    return sign_hpgames_body(body, secret=secret, timestamp=timestamp)


def job_states(snapshot: Mapping[str, Any], merchant_id: str = DEMO_THANX_MERCHANT_ID) -> dict[str, str]:
    """``{job id: state}`` of one Thanx merchant in a ``/_sandbox/state`` snapshot."""
    jobs = snapshot["thanx"]["merchants"][merchant_id]["issuance_jobs"]
    return {job_id: job["state"] for job_id, job in jobs.items()}


def reward_statuses(snapshot: Mapping[str, Any], merchant_id: str = DEMO_HPGAMES_MERCHANT_ID) -> dict:
    """``{reward id: status}`` of one HPGames merchant in a ``/_sandbox/state`` snapshot."""
    rewards = snapshot["hpgames"]["merchants"][merchant_id]["rewards"]
    return {reward_id: reward["status"] for reward_id, reward in rewards.items()}
