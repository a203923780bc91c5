"""The flagship DAG end to end against the sandbox, through `airflow dags test`."""

from __future__ import annotations

import pytest
import rewards_sandbox as seed
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, Targets, demo_params, teardown_report

pytestmark = pytest.mark.e2e


def report_for(sandbox, before, params=None):
    targets = Targets.from_params(params or demo_params())
    return teardown_report(before, sandbox.snapshot(), targets, seed.DEMO_HPGAMES_MERCHANT_ID)


def test_teardown_tears_everything_down_and_nothing_else(run_example, sandbox):
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID)
    assert result.succeeded, result.output[-5000:]
    report = report_for(sandbox, before)
    assert report.clean, report.render()
    assert sorted(report.jobs_revoked) == sorted(seed.DEMO_THANX_REVOKE_JOB_IDS)
    expected = {
        *seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
        *seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
        *seed.DEMO_HPGAMES_QUERY_REWARD_IDS,
    }
    assert set(report.rewards_cancelled) == expected
    assert "[DAG TEST] running trigger in line" in result.output  # the sensor deferred; the trigger ran


def test_running_the_teardown_twice_is_safe(run_example, sandbox):
    assert run_example(FLAGSHIP_DAG_ID).succeeded
    between = sandbox.snapshot()
    second = run_example(FLAGSHIP_DAG_ID)
    assert second.succeeded, second.output[-5000:]
    assert sandbox.snapshot()["thanx"] == between["thanx"]
    assert sandbox.snapshot()["hpgames"] == between["hpgames"]


def test_dry_run_changes_nothing_and_logs_what_it_would_do(run_example, sandbox):
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID, {"dry_run": True})
    assert result.succeeded, result.output[-5000:]
    assert sandbox.snapshot()["thanx"] == before["thanx"]
    assert sandbox.snapshot()["hpgames"] == before["hpgames"]
    for job_id in seed.DEMO_THANX_REVOKE_JOB_IDS:
        assert job_id in result.output
    assert seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0] in result.output


def test_all_input_comes_from_conf(run_example, sandbox):
    params = {
        "thanx_merchant_id": seed.DEMO_THANX_MERCHANT_ID,
        "issuance_job_ids": [seed.DEMO_THANX_COMPLETED_JOB_IDS[0]],
        "hpgames_reward_ids": [seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]],
        "hpgames_external_reward_ids": [],
        "hpgames_player_ids": [],
        "reward_configuration_id": None,
        "dry_run": False,
    }
    before = sandbox.snapshot()
    result = run_example(FLAGSHIP_DAG_ID, params)
    assert result.succeeded, result.output[-5000:]
    report = report_for(sandbox, before, params)
    assert report.clean, report.render()
    assert report.jobs_revoked == [seed.DEMO_THANX_COMPLETED_JOB_IDS[0]]
    assert report.rewards_cancelled == [seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]]


def test_empty_lists_skip_their_branches(run_example, sandbox):
    params = {**demo_params(), "issuance_job_ids": [], "hpgames_external_reward_ids": [], "hpgames_player_ids": []}
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
