"""Operator test helpers: a task-instance stub, the task context, and request-history readers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_rewards.hooks.auth import hpgames_signature
from tests.conftest import HPGAMES_MERCHANT, HPGAMES_SECRET, REWARDS_URL

MUTATING_HPGAMES_ACTIONS = ("cancel", "bulkCancel", "bulkCancelByQuery")


class TaskInstanceStub:
    """What the operators use of ``context["ti"]``: ``xcom_push`` (recorded) and ``xcom_pull`` (canned)."""

    def __init__(self, xcoms: dict[str, Any] | None = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.xcoms = xcoms or {}
        self.pulls: list[tuple[Any, str]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        self.pulls.append((task_ids, key))
        return self.xcoms[task_ids]


@pytest.fixture
def ti() -> TaskInstanceStub:
    return TaskInstanceStub()


@pytest.fixture
def context(ti) -> dict[str, Any]:
    return {"ti": ti, "params": {}}


@pytest.fixture
def logs(capfd):
    """Call to get everything logged so far (Airflow's structlog loggers write to stdout)."""

    def read() -> str:
        out, err = capfd.readouterr()
        return out + err

    return read


def payload(request) -> dict[str, Any]:
    """An HPGames request body without its signature fields, after checking the signature is valid."""
    body = json.loads(request.body)
    assert body.pop("merchantId") == HPGAMES_MERCHANT
    timestamp = body.pop("timestamp")
    assert body.pop("hash") == hpgames_signature(HPGAMES_SECRET, HPGAMES_MERCHANT, timestamp)
    return body


def mutating(history) -> list:
    """Requests that could change something: Thanx POSTs and the HPGames cancel endpoints."""
    hpgames = tuple(f"{REWARDS_URL}/{action}" for action in MUTATING_HPGAMES_ACTIONS)
    return [r for r in history if r.method == "POST" and (r.url in hpgames or not r.url.startswith(REWARDS_URL))]
