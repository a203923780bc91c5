"""The flagship DAG end to end against the sandbox, through `airflow dags test`, every target passed with -c."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest
import rewards_sandbox as seed
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowSkipException
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, Targets, demo_params, teardown_report
from rewards_sandbox.testing import reward_statuses

from tests.dags.conftest import DAGS_FOLDER

pytestmark = pytest.mark.e2e

LIST_TASKS = ("cancel_rewards_by_id", "cancel_rewards_by_external_id", "cancel_rewards_by_player")
FILE_TASKS = ("cancel_rewards_by_id_file", "cancel_rewards_by_external_id_file", "cancel_rewards_by_player_file")
PATH_PARAMS = {
    "cancel_rewards_by_id_file": ("reward_ids_path", "hpgames_reward_ids_path"),
    "cancel_rewards_by_external_id_file": ("external_ids_path", "hpgames_external_reward_ids_path"),
    "cancel_rewards_by_player_file": ("player_ids_path", "hpgames_player_ids_path"),
}


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
    assert "no job, reward or player was given" in result.output


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
    for task_id in ("revoke_thanx_jobs", "wait_until_revoked", *LIST_TASKS[1:], *FILE_TASKS):
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


# ---------------------------------------------------------------------------------------------
# Ids from files: the path params
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flagship():
    return DagBag(dag_folder=str(DAGS_FOLDER / "rewards_campaign_teardown.py")).dags[FLAGSHIP_DAG_ID]


def rendered(dag, task_id: str, params: dict) -> object:
    """The DAG's task with its templates rendered from ``params`` (defaults first), as a run would."""
    task = copy.deepcopy(dag.task_dict[task_id])
    context = {"params": {**dag.params.dump(), **params}, "task": task}
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return task


def results_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]


def test_each_path_param_feeds_one_file_task_and_the_records_go_under_the_task_id(flagship):
    for task_id, (argument, param) in PATH_PARAMS.items():
        task = rendered(flagship, task_id, {param: "s3://exports/ids.csv", "hpgames_ids_column": "id"})
        assert (getattr(task, argument), task.ids_column) == ("s3://exports/ids.csv", "id")
        empty = rendered(flagship, task_id, {"hpgames_ids_column": "id"})
        assert getattr(empty, argument) is None  # a null path: no file, the task skips (if_empty="skip")
        with pytest.raises(AirflowSkipException):
            empty.execute({"ti": None, "params": {}})
    for task_id in (*LIST_TASKS, *FILE_TASKS):
        task = rendered(flagship, task_id, {"hpgames_results_path": "s3://exports/teardown/"})
        assert task.results_path == f"s3://exports/teardown/{task_id}"
        assert rendered(flagship, task_id, {}).results_path is None  # the operator's default location
    assert set(flagship.task_dict["teardown_report"].upstream_task_ids) >= {*LIST_TASKS, *FILE_TASKS}


def test_a_warehouse_export_is_torn_down_from_its_file_with_a_record_of_every_id(run_example, sandbox, tmp_path):
    """A CSV export (header, a column among others, one id in upper case, one repeated) through the path param."""
    ids = list(seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS)
    rows = [f"{rid.upper() if n == 0 else rid},player-x,{n}" for n, rid in enumerate([*ids, ids[1]])]
    export = tmp_path / "export.csv"
    export.write_text("reward_id,player,row\n" + "\n".join(rows) + "\n")
    records = tmp_path / "records"
    before = sandbox.snapshot()
    params = {"hpgames_reward_ids_path": str(export), "hpgames_ids_column": "reward_id"}
    result = run_example(FLAGSHIP_DAG_ID, {**params, "hpgames_results_path": str(records)})
    assert result.succeeded, result.output[-5000:]
    after = reward_statuses(sandbox.snapshot())
    assert {rid: after[rid] for rid in ids} == dict.fromkeys(ids, "CANCELLED")
    changed = {rid for rid, status in reward_statuses(before).items() if after[rid] != status}
    assert changed == set(ids)
    lines = results_lines(records / "cancel_rewards_by_id_file")
    assert sorted(line["id"] for line in lines) == sorted(ids)  # once each, the repeat dropped
    assert {line["outcome"] for line in lines} == {"cancelled"}
    states = run_example.states(FLAGSHIP_DAG_ID, result.run_id)
    assert states["cancel_rewards_by_id_file"] == ["success"]
    assert all(states[task_id] == ["skipped"] for task_id in (*LIST_TASKS, *FILE_TASKS[1:])), states


def test_player_and_external_id_files_default_their_records_next_to_the_file(run_example, sandbox, tmp_path):
    players = tmp_path / "players.txt.gz"
    players.write_bytes(gzip.compress("\n".join(seed.DEMO_HPGAMES_QUERY_PLAYER_IDS).encode() + b"\n"))
    externals = tmp_path / "external_ids.txt"
    externals.write_text("\n".join(seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS) + "\n")
    params = {
        "hpgames_player_ids_path": str(players),
        "hpgames_external_reward_ids_path": str(externals),
        "reward_configuration_id": seed.DEMO_HPGAMES_EXTERNAL_CONFIG_UUID,
    }
    result = run_example(FLAGSHIP_DAG_ID, params)
    assert result.succeeded, result.output[-5000:]
    after = reward_statuses(sandbox.snapshot())
    cancelled = {*seed.DEMO_HPGAMES_QUERY_REWARD_IDS, *seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS}
    assert {rid for rid in cancelled if after[rid] != "CANCELLED"} == set()
    run = f"{FLAGSHIP_DAG_ID}/{result.run_id}"
    player_lines = results_lines(tmp_path / f"players.txt.gz.results/{run}/cancel_rewards_by_player_file")
    assert sorted(line["id"] for line in player_lines) == sorted(seed.DEMO_HPGAMES_QUERY_PLAYER_IDS)
    external_lines = results_lines(tmp_path / f"external_ids.txt.results/{run}/cancel_rewards_by_external_id_file")
    assert sorted(line["id"] for line in external_lines) == sorted(seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS)
    assert {line["outcome"] for line in [*player_lines, *external_lines]} == {"cancelled"}


def test_the_mapped_revoke_is_capped_per_run_and_waits_take_the_default_pool(flagship):
    """The rate-budget recipe: at most 2 revokes of a run at once; no pool is named unless REWARDS_THANX_POOL is set."""
    revoke, wait = flagship.task_dict["revoke_thanx_jobs"], flagship.task_dict["wait_until_revoked"]
    assert revoke.max_active_tis_per_dagrun == 2
    assert wait.max_active_tis_per_dagrun is None  # a deferred wait counts as active: never capped
    assert (revoke.pool, wait.pool) == ("default_pool", "default_pool")
