"""Trigger fixtures: the root ``thanx_default`` without a rate budget, and a rate-limited sandbox."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from rewards_sandbox import DEMO_THANX_ACCESS_TOKEN, DEMO_THANX_CLIENT_ID, DEMO_THANX_MERCHANT_ID, SandboxServer
from rewards_sandbox.testing import running_sandbox

from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from tests.conftest import set_connection

UNLIMITED = {"max_requests_per_second": 0, "max_requests_per_window": 0}


@pytest.fixture
def thanx_conn(thanx_conn, monkeypatch):
    """The root ``thanx_default`` with its budget off: these tests are about polling, not spacing."""
    variable = f"AIRFLOW_CONN_{thanx_conn.upper()}"
    fields = json.loads(os.environ[variable])
    monkeypatch.setenv(variable, json.dumps({**fields, "extra": {**fields["extra"], **UNLIMITED}}))
    return thanx_conn


def job_ids(count: int) -> list[str]:
    return [f"job_{index:04d}" for index in range(count)]


def revoking_seed(count: int) -> dict[str, Any]:
    """The demo Thanx credential and merchant with ``count`` jobs that start revoking at load time."""
    return {
        "thanx": {
            "merchants": [{"id": DEMO_THANX_MERCHANT_ID, "name": "Pizza Company", "handle": "pizzacompany"}],
            "credentials": [
                {
                    "client_id": DEMO_THANX_CLIENT_ID,
                    "access_token": DEMO_THANX_ACCESS_TOKEN,
                    "merchant_ids": [DEMO_THANX_MERCHANT_ID],
                    "scopes": ["rewards.issue"],
                }
            ],
            "campaigns": [{"id": "camp_1", "merchant_id": DEMO_THANX_MERCHANT_ID, "variant_ids": ["var_1"]}],
            "issuance_jobs": [
                {"id": job, "merchant_id": DEMO_THANX_MERCHANT_ID, "campaign_id": "camp_1", "variant_id": "var_1"}
                | {"state": "revoking", "revoked_from": "completed"}
                for job in job_ids(count)
            ],
        }
    }


@dataclass
class BudgetRig:
    """A running sandbox holding revoking jobs, and ``thanx_default`` pointing at it with a budget."""

    server: SandboxServer
    jobs: list[str]

    def vendor_log(self) -> list[dict[str, Any]]:
        """The sandbox's log of job reads, with ``at`` (epoch seconds) and ``job`` added."""
        entries = [e for e in self.server.request_log() if e["path"].startswith("/partner/issuance_jobs/")]
        for entry in entries:
            entry["at"] = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            entry["job"] = entry["path"].rsplit("/", 1)[-1]
        return entries

    async def wait_all(self, **trigger_arguments: Any) -> list[dict[str, Any]]:
        """Run one trigger per job in this event loop (as the triggerer does); every trigger's events."""

        async def one(job: str) -> list[dict[str, Any]]:
            trigger = ThanxIssuanceJobTrigger(job, DEMO_THANX_MERCHANT_ID, **trigger_arguments)
            return [event.payload async for event in trigger.run()]

        return await asyncio.gather(*(one(job) for job in self.jobs))


@pytest.fixture
def budget_rig(monkeypatch) -> Iterator[Callable[..., BudgetRig]]:
    """``start(jobs, budget={extra}, **sandbox settings)``: a sandbox of revoking jobs (2 s revoke by default)
    and ``thanx_default`` on it with that budget; stopped after the test."""
    with ExitStack() as stack:

        def start(jobs: int, budget: Mapping[str, Any], **settings: Any) -> BudgetRig:
            settings.setdefault("revoke_seconds", 2.0)
            server = stack.enter_context(running_sandbox(seed=revoking_seed(jobs), **settings))
            set_connection(
                monkeypatch,
                "thanx_default",
                conn_type="thanx",
                host=server.base_url,
                login=DEMO_THANX_CLIENT_ID,
                password=DEMO_THANX_ACCESS_TOKEN,
                extra={"merchant_id": DEMO_THANX_MERCHANT_ID, "retry_backoff": 0.2, **budget},
            )
            server.reset()  # the revokes start now
            return BudgetRig(server, job_ids(jobs))

        yield start
