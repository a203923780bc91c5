"""The smaller example DAGs end to end against the sandbox: targets only through conf."""

from __future__ import annotations

import pytest
import rewards_sandbox as seed
from rewards_sandbox.testing import job_states, reward_statuses

pytestmark = pytest.mark.e2e

THANX_CONF = {"issuance_job_ids": ["job_demo_1", "job_demo_2"]}  # merchant_id: the connection's
HPGAMES_CONF = {
    "external_ids": [seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS[0]],
    "player_id": "player-001",
    "query_player_ids": list(seed.DEMO_HPGAMES_QUERY_PLAYER_IDS),
    "external_reward_configuration_id": seed.DEMO_HPGAMES_QUERY_EXTERNAL_CONFIG_ID,
}


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {key: after[key] for key in after if before.get(key) != after[key]}


@pytest.mark.parametrize("dag_id", ["example_thanx_revoke", "example_hpgames_cancel"])
def test_without_conf_an_example_changes_nothing(run_example, sandbox, dag_id):
    before = sandbox.snapshot()
    result = run_example(dag_id)
    assert result.succeeded, result.output[-5000:]
    assert sandbox.snapshot()["thanx"] == before["thanx"]
    assert sandbox.snapshot()["hpgames"] == before["hpgames"]


def test_example_thanx_revoke_waits_for_both_jobs(run_example, sandbox):
    before = job_states(sandbox.snapshot())
    result = run_example("example_thanx_revoke", THANX_CONF)
    assert result.succeeded, result.output[-5000:]
    assert changed(before, job_states(sandbox.snapshot())) == {"job_demo_1": "revoked", "job_demo_2": "revoked"}
    assert "[DAG TEST] running trigger in line" in result.output


def test_example_hpgames_cancel_cancels_exactly_its_targets(run_example, sandbox):
    before_snapshot = sandbox.snapshot()
    before = reward_statuses(before_snapshot)
    player_001_live = {
        rid
        for rid, reward in before_snapshot["hpgames"]["merchants"][seed.DEMO_HPGAMES_MERCHANT_ID]["rewards"].items()
        if reward["playerId"] == "player-001" and reward["status"] == "IN_PROGRESS"
    }
    by_external = seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS[0]
    result = run_example("example_hpgames_cancel", HPGAMES_CONF)
    assert result.succeeded, result.output[-5000:]
    cancelled = changed(before, reward_statuses(sandbox.snapshot()))
    assert set(cancelled.values()) == {"CANCELLED"}
    assert set(cancelled) == {by_external, *player_001_live, *seed.DEMO_HPGAMES_QUERY_REWARD_IDS}
