"""Fixtures for running the example DAGs with `airflow dags test` against a fresh sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rewards_sandbox.demo import Credentials, DagRunResult, airflow_env, migrate, run_dag, task_states
from rewards_sandbox.testing import running_sandbox

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """One migrated SQLite metadata database for every DAG run of the session."""
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(airflow_env(home, DAGS_FOLDER, "http://127.0.0.1:9", Credentials.demo()))
    return home


@pytest.fixture
def sandbox_settings() -> dict:
    """Extra sandbox settings; a test overrides them with ``@pytest.mark.parametrize("sandbox_settings", [...])``."""
    return {}


@pytest.fixture
def sandbox(sandbox_settings):
    """A fresh demo-seeded sandbox (quick revocations) for each test."""
    with running_sandbox(revoke_seconds=1.5, **sandbox_settings) as server:
        yield server


@pytest.fixture
def run_example(airflow_home, sandbox) -> Callable[..., DagRunResult]:
    """``run_example(dag_id, conf=None)``: one `airflow dags test` run against this test's sandbox;
    ``run_example.states(dag_id, run_id)`` reads the task states of a finished run."""
    env = airflow_env(airflow_home, DAGS_FOLDER, sandbox.base_url, Credentials.demo(), poll_interval=0.5)

    def run(dag_id: str, conf: dict | None = None) -> DagRunResult:
        return run_dag(dag_id, env, conf, timeout=300)

    run.states = lambda dag_id, run_id: task_states(dag_id, run_id, env)
    return run
