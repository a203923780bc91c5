"""Operator test helpers: a task-instance stub, the task context, and request-history readers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_rewards.hooks.auth import hpgames_signature
from tests.conftest import HPGAMES_MERCHANT, HPGAMES_SECRET, REWARDS_URL

# Re-exported: the operator tests import the results readers from here.
from tests.conftest import outcomes_by_id as outcomes_by_id
from tests.conftest import read_results as read_results

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


# --- bulk runs with a results record (issue 14, helper "engine") ----------------------------------------------


class RecordingTaskInstance(TaskInstanceStub):
    """The task-instance stub with the identity a results record's default path and manifest name."""

    dag_id, run_id, task_id, map_index, try_number = "teardown", "manual__1", "cancel", -1, 1


@pytest.fixture
def task_context() -> dict[str, Any]:
    """A task context with a task identity and the ``outlet_events`` accessor a real task gets."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = RecordingTaskInstance()
    return {"ti": ti, "params": {}, "outlet_events": OutletEventAccessors()}


@pytest.fixture
def id_file(tmp_path):
    """Call with ids (or raw text) to write an id file under tmp_path; returns its path as a string."""
    import gzip

    def write(ids: list[str] | None = None, name: str = "ids.txt", text: str | None = None) -> str:
        path = tmp_path / name
        content = ("\n".join(ids or []) + "\n") if text is None else text
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(content.encode()))
        else:
            path.write_text(content)
        return str(path)

    return write


@pytest.fixture
def hpgames_sandbox(monkeypatch):
    """A sandbox holding 40 generated IN_PROGRESS rewards besides the demo seed, bodies logged, with
    ``hpgames_default`` pointing at it. Yields ``(server, reward ids)``; the server is stopped after the test."""
    import rewards_sandbox as seed
    from rewards_sandbox.seed import parse_seed
    from rewards_sandbox.testing import running_sandbox

    data = seed.demo_seed()
    data["hpgames"]["generated_rewards"] = [
        {"merchantId": seed.DEMO_HPGAMES_MERCHANT_ID, "rewardConfigurationId": seed.DEMO_HPGAMES_CONFIG_ID, "count": 40}
    ]
    generated = parse_seed(data).generated_rewards[0]
    with running_sandbox(seed=data, log_bodies=True) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HPGAMES_DEFAULT",
            json.dumps(
                {
                    "conn_type": "hpgames",
                    "host": server.base_url,
                    "login": seed.DEMO_HPGAMES_MERCHANT_ID,
                    "password": seed.DEMO_HPGAMES_SECRET,
                }
            ),
        )
        yield server, [generated.reward_id(n) for n in range(40)]


def sandbox_calls(server, action: str) -> list[dict[str, Any]]:
    """The logged HPGames requests of one action (``bulkCancel``, ``readAll``), oldest first."""
    return [entry for entry in server.request_log() if str(entry.get("path", "")).endswith(f"/rewards/{action}")]
