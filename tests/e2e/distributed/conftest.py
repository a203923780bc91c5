"""Fixtures of the distributed e2e test: the campaign-size sandbox and the Celery + PostgreSQL + Redis cluster."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rewards_sandbox import (
    DEMO_HPGAMES_CONFIG_ID,
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_THANX_CAMPAIGN_ID,
    DEMO_THANX_MERCHANT_ID,
    DEMO_THANX_VARIANT_ID,
    SandboxConfig,
    SandboxServer,
)
from rewards_sandbox.demo import airflow_env

from tests.e2e.distributed.cluster import Cluster
from tests.e2e.stack import AirflowStack, Deadline

REPO = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO / "dags"
#: Size of the run: Thanx jobs waited on in the triggerer, HPGames reward ids in the file, players by query.
THANX_JOBS = 20
REWARD_IDS = int(os.environ.get("E2E_DISTRIBUTED_REWARD_IDS", "100000"))
QUERY_PLAYERS = 20
QUERY_REWARDS = 1000
UNTOUCHED_REWARDS = 1000
#: Revocation time on the sandbox clock: the jobs stay "revoking" until the test moves the clock on.
REVOKE_SECONDS = 3600.0
#: Per vendor request, so that the bulk cancel lasts long enough to kill its worker in the middle.
LATENCY_MS = 40.0
#: The whole test: start-up, the run with both faults, the checks and the shutdown.
BUDGET_SECONDS = float(os.environ.get("E2E_DISTRIBUTED_BUDGET_SECONDS", "780"))
#: How the reward ids reach the DAG: "file" (hpgames_reward_ids_path), "list" (the run's conf), or "auto":
#: the file when the DAG has that param.
ID_SOURCE = os.environ.get("E2E_DISTRIBUTED_ID_SOURCE", "auto")


def job_ids(count: int = THANX_JOBS) -> list[str]:
    return [f"job_dist_{n:02d}" for n in range(1, count + 1)]


def query_player_ids(count: int = QUERY_PLAYERS) -> list[str]:
    return [f"dist-query-player-{n}" for n in range(count)]


def generated_id(entry: int, n: int) -> str:
    """Id of reward ``n`` of ``generated_rewards[entry]`` (the sandbox's documented scheme)."""
    return f"9e{entry:06d}-0000-4000-8000-{n:012d}"


def reward_ids(count: int = REWARD_IDS) -> list[str]:
    """The ids cancelled by id: every reward of ``generated_rewards[0]``."""
    return [generated_id(0, n) for n in range(count)]


def campaign_seed(
    seed: dict[str, Any], *, jobs: int, by_id: int, players: int, by_player: int, untouched: int
) -> dict[str, Any]:
    """``seed`` plus a campaign: ``jobs`` completed Thanx jobs (:func:`job_ids`), ``by_id`` rewards to cancel by
    id (:func:`reward_ids`), ``by_player`` rewards of ``players`` players (:func:`query_player_ids`) and
    ``untouched`` rewards no one targets."""
    seed["thanx"]["issuance_jobs"] += [
        {
            "id": job_id,
            "merchant_id": DEMO_THANX_MERCHANT_ID,
            "campaign_id": DEMO_THANX_CAMPAIGN_ID,
            "variant_id": DEMO_THANX_VARIANT_ID,
            "state": "completed",
            "total_count": 10,
            "created_at": "2025-06-15T10:30:00Z",
        }
        for job_id in job_ids(jobs)
    ]

    def generated(count: int, player_count: int, prefix: str) -> dict[str, Any]:
        return {
            "merchantId": DEMO_HPGAMES_MERCHANT_ID,
            "rewardConfigurationId": DEMO_HPGAMES_CONFIG_ID,
            "count": count,
            "playerCount": player_count,
            "playerIdPrefix": prefix,
        }

    seed["hpgames"]["generated_rewards"] = [
        generated(by_id, 1000, "dist-id-player-"),  # entry 0: cancelled by id
        generated(by_player, players, "dist-query-player-"),  # entry 1: cancelled by player
        generated(untouched, 10, "dist-untouched-player-"),  # entry 2: never targeted
    ]
    return seed


@pytest.fixture
def scale_seed(planted_seed) -> dict[str, Any]:
    """The demo seed (planted secrets) plus the run's targets and as many rewards no one targets."""
    return campaign_seed(
        planted_seed,
        jobs=THANX_JOBS,
        by_id=REWARD_IDS,
        players=QUERY_PLAYERS,
        by_player=QUERY_REWARDS,
        untouched=UNTOUCHED_REWARDS,
    )


@pytest.fixture
def sandbox(scale_seed) -> Iterator[SandboxServer]:
    """The sandbox on 127.0.0.1, its clock held by the test (``sandbox.clock.advance``)."""
    config = SandboxConfig(
        seed=scale_seed, revoke_seconds=REVOKE_SECONDS, latency_ms=LATENCY_MS, request_log_size=1_000_000
    )
    with SandboxServer(config, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def deadline() -> Deadline:
    return Deadline(BUDGET_SECONDS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, so a fixture's teardown knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def cluster(request, tmp_path, sandbox, planted_credentials, deadline) -> Iterator[Cluster]:
    """PostgreSQL, Redis, api-server, scheduler, dag-processor, triggerer and two Celery workers, started
    (schema migrated) but not yet waited for; always stopped, and their log tails printed on a failure."""
    env = airflow_env(
        tmp_path / "unused-home",
        DAGS_FOLDER,
        sandbox.base_url,
        planted_credentials,
        poll_interval=1.0,
        extra={"REWARDS_TEARDOWN_RETRY_DELAY": "2"},
    )
    cluster = Cluster(tmp_path / "cluster", env)
    started = False
    try:
        cluster.start(deadline)
        started = True
        yield cluster
    finally:
        call = getattr(request.node, "rep_call", None)
        if not started or call is None or call.failed:
            print(f"\n===== component log tails =====\n{cluster.stack.tails(60)}")
        codes = cluster.stop()
        print(f"\ncomponent exit codes: {codes}")


#: The small campaign of the checker's own tests: 3 batches of 500 by id, 2 jobs, 2 players.
SMALL = {"jobs": 2, "by_id": 1500, "players": 2, "by_player": 20, "untouched": 100}


@pytest.fixture
def small_sandbox() -> Iterator[SandboxServer]:
    """A sandbox (demo credentials) seeded with :data:`SMALL`; revocations finish at once."""
    from rewards_sandbox import demo_seed

    config = SandboxConfig(seed=campaign_seed(demo_seed(), **SMALL), revoke_seconds=0.0)
    with SandboxServer(config, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def logged_stack(tmp_path) -> Iterator[AirflowStack]:
    """A stack whose only component (``worker1``) printed one line and exited: its tail must show in failures."""
    stack = AirflowStack(dict(os.environ), 0, tmp_path / "components", components=())
    stack.start_process("worker1", [sys.executable, "-c", "print('worker1: task cancel_rewards_by_id_file started')"])
    stack.components[0].process.wait(timeout=30)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def postgres(tmp_path, deadline) -> Iterator[Cluster]:
    """Only the cluster's PostgreSQL (its Airflow database created, no schema), always stopped."""
    cluster = Cluster(tmp_path / "cluster", dict(os.environ))
    try:
        cluster.start_postgres()
        cluster.create_database(deadline)
        yield cluster
    finally:
        cluster.stop()
