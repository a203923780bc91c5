"""The smaller example DAGs end to end against the sandbox."""

from __future__ import annotations

import pytest
import rewards_sandbox as seed
from rewards_sandbox.testing import job_states, reward_statuses

pytestmark = pytest.mark.e2e


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {key: after[key] for key in after if before.get(key) != after[key]}


def test_example_thanx_revoke_waits_for_both_jobs(run_example, sandbox):
    before = job_states(sandbox.snapshot())
    result = run_example("example_thanx_revoke")
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
    result = run_example("example_hpgames_cancel")
    assert result.succeeded, result.output[-5000:]
    cancelled = changed(before, reward_statuses(sandbox.snapshot()))
    assert set(cancelled.values()) == {"CANCELLED"}
    assert set(cancelled) == {by_external, *player_001_live, *seed.DEMO_HPGAMES_QUERY_REWARD_IDS}
