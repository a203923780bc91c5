"""The flagship DAG end to end against the sandbox, through `airflow dags test`, every target passed with -c."""

from __future__ import annotations

import pytest
import rewards_sandbox as seed
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, Targets, demo_params, teardown_report

pytestmark = pytest.mark.e2e


def report_for(sandbox, before, params):
    targets = Targets.from_params({"thanx_merchant_id": seed.DEMO_THANX_MERCHANT_ID, **params})
    return teardown_report(before, sandbox.snapshot(), targets, seed.DEMO_HPGAMES_MERCHANT_ID)


def live_rewards_of(snapshot, players) -> set[str]:
    rewards = snapshot["hpgames"]["merchants"][seed.DEMO_HPGAMES_MERCHANT_ID]["rewards"]
    return {rid for rid, r in rewards.items() if r["playerId"] in players and r["status"] == "IN_PROGRESS"}


def test_without_conf_the_teardown_does_nothing_says_so_and_succeeds(run_example, sandbox):
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID)
    assert result.succeeded, result.output[-5000:]
    assert sandbox.snapshot()["thanx"] == before["thanx"]
    assert sandbox.snapshot()["hpgames"] == before["hpgames"]
    assert "Nothing to tear down: no job, reward or player was given" in result.output


def test_teardown_tears_everything_down_and_nothing_else(run_example, sandbox):
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID, demo_params())
    assert result.succeeded, result.output[-5000:]
    report = report_for(sandbox, before, demo_params())
    assert report.clean, report.render()
    assert sorted(report.jobs_revoked) == sorted(seed.DEMO_THANX_REVOKE_JOB_IDS)
    expected = {
        *seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
        *seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
        *seed.DEMO_HPGAMES_QUERY_REWARD_IDS,
    }
    assert set(report.rewards_cancelled) == expected
    assert "[DAG TEST] running trigger in line" in result.output  # the sensor deferred; the trigger ran
    # readAll shows no externalId: the report says it cannot see them, and accepts the cancel task's record
    assert "5 external id(s) cannot be read back" in result.output


def test_players_without_a_filter_lose_every_live_reward(run_example, sandbox):
    """Targets only through -c and no filter: every live reward of the listed players is cancelled."""
    players = list(seed.DEMO_HPGAMES_QUERY_PLAYER_IDS)
    params = {"hpgames_player_ids": players}
    before = sandbox.snapshot()
    targeted = live_rewards_of(before, players)
    assert len(targeted) > len(seed.DEMO_HPGAMES_QUERY_REWARD_IDS)  # more than the demo's filter would take
    result = run_example(FLAGSHIP_DAG_ID, params)
    assert result.succeeded, result.output[-5000:]
    assert live_rewards_of(sandbox.snapshot(), players) == set()
    report = report_for(sandbox, before, params)
    assert report.clean, report.render()
    assert set(report.rewards_cancelled) == targeted


@pytest.mark.parametrize("sandbox_settings", [{"error_200_actions": ("bulkCancelByQuery",)}])
def test_a_cancel_answered_200_with_error_code_fails_naming_what_is_left(run_example, sandbox):
    players = list(seed.DEMO_HPGAMES_QUERY_PLAYER_IDS)
    before = sandbox.snapshot()
    left = live_rewards_of(before, players)
    result = run_example(FLAGSHIP_DAG_ID, {"hpgames_player_ids": players})
    assert not result.succeeded
    assert live_rewards_of(sandbox.snapshot(), players) == left  # the sandbox changed nothing
    assert "Teardown incomplete" in result.output
    for reward_id in left:
        assert reward_id in result.output


def test_running_the_teardown_twice_is_safe(run_example, sandbox):
    assert run_example(FLAGSHIP_DAG_ID, demo_params()).succeeded
    between = sandbox.snapshot()
    second = run_example(FLAGSHIP_DAG_ID, demo_params())
    assert second.succeeded, second.output[-5000:]
    assert sandbox.snapshot()["thanx"] == between["thanx"]
    assert sandbox.snapshot()["hpgames"] == between["hpgames"]


def test_dry_run_changes_nothing_and_logs_what_it_would_do(run_example, sandbox):
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID, {**demo_params(), "dry_run": True})
    assert result.succeeded, result.output[-5000:]
    assert sandbox.snapshot()["thanx"] == before["thanx"]
    assert sandbox.snapshot()["hpgames"] == before["hpgames"]
    for job_id in seed.DEMO_THANX_REVOKE_JOB_IDS:
        assert job_id in result.output
    assert seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0] in result.output


def test_empty_lists_skip_their_branches(run_example, sandbox):
    params = {"hpgames_reward_ids": list(seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS)}
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID, params)
    assert result.succeeded, result.output[-5000:]
    states = run_example.states(FLAGSHIP_DAG_ID, result.run_id)
    for task_id in (
        "revoke_thanx_jobs",
        "wait_until_revoked",
        "cancel_rewards_by_external_id",
        "cancel_rewards_by_player",
    ):
        assert states[task_id] == ["skipped"], (task_id, states)
    assert states["cancel_rewards_by_id"] == ["success"]
    assert states["teardown_report"] == ["success"]
    report = report_for(sandbox, before, params)
    assert report.clean, report.render()
    assert (report.jobs_revoked, len(report.rewards_cancelled)) == ([], 5)


@pytest.mark.parametrize("sandbox_settings", [{"read_all_external_id": True}])
def test_external_ids_are_verified_when_read_all_shows_them(run_example, sandbox):
    """A vendor whose readAll items carry externalId lets the report verify those targets, not just accept them."""
    result = run_example(
        FLAGSHIP_DAG_ID, {"hpgames_external_reward_ids": list(seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS)}
    )
    assert result.succeeded, result.output[-5000:]
    assert "cannot be read back" not in result.output
    assert "Teardown complete" in result.output
