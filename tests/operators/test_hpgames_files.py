"""Bulk operators with ids from files, a results record, resumption and the results Asset (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import RewardsError, RewardsInputError
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.utils.record import RESULTS_ASSET_ALIAS
from tests.operators.conftest import outcomes_by_id, payload, read_results
from tests.operators.test_hpgames import BULK, BY_QUERY, CONFIG, answer_bulk, containing, uuids

RECORD_KEYS = {
    "cancelled",
    "already_cancelled",
    "refused",
    "unconfirmed",
    "not_attempted",
    "results_path",
    "summary_path",
    "requested",
    "duplicates_dropped",
    "batches",
    "requests",
    "read_backs",
    "resumed_batches",
    "dry_run",
}


def bulk(**kwargs) -> HPGamesBulkCancelRewardsOperator:
    return HPGamesBulkCancelRewardsOperator(task_id="cancel", **kwargs)


def sent_batches(requests_mock, url: str = BULK, key: str = "ids") -> list[list[str]]:
    """The id lists of every request sent to ``url``, in order."""
    return [payload(request)[key] for request in requests_mock.request_history if request.url == url]


def default_root(source: str) -> Path:
    """The documented default results directory of a file read by the test task (see RecordingTaskInstance)."""
    return Path(f"{source}.results") / "teardown" / "manual__1" / "cancel"


def test_a_file_is_cancelled_in_batches_and_every_id_recorded_once(hpgames_conn, requests_mock, task_context, id_file):
    ids = uuids(25)
    source = id_file([*ids[:12], ids[3].upper(), *ids[12:]])  # one duplicate, in another case
    accepted = answer_bulk(requests_mock)
    result = bulk(reward_ids_path=source, batch_size=10).execute(task_context)
    assert accepted == [ids[:10], ids[10:20], ids[20:]]
    root = default_root(source)
    assert result == {
        "cancelled": 25,
        "already_cancelled": 0,
        "refused": 0,
        "unconfirmed": 0,
        "not_attempted": 0,
        "results_path": f"file://{root}/results.jsonl",
        "summary_path": f"file://{root}/summary.json",
        "requested": 25,
        "duplicates_dropped": 1,
        "batches": 3,
        "requests": 3,
        "read_backs": 0,
        "resumed_batches": 0,
        "dry_run": False,
    }
    lines = read_results(result["results_path"])
    assert [line["id"] for line in lines] == ids
    assert {(line["outcome"], line["field"]) for line in lines} == {("cancelled", "reward_ids")}
    assert [line["batch"] for line in lines] == [1] * 10 + [2] * 10 + [3] * 5
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["input"]["location"] == f"file://{source}"
    assert (manifest["input"]["batch_size"], manifest["input"]["unique"]) == (10, 25)
    assert json.loads((root / "summary.json").read_text())["counts"]["cancelled"] == 25
    events = task_context["outlet_events"][AssetAlias(RESULTS_ASSET_ALIAS)].asset_alias_events
    assert [(event.dest_asset_key.uri, event.extra["cancelled"]) for event in events] == [
        (f"file://{root}/results.jsonl", 25)
    ]


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("ids.csv", "player,reward_id\np1,{0}\np2,{1}\n", "reward_id"),
        ("ids.jsonl.gz", '{{"rid": "{0}"}}\n{{"rid": "{1}"}}\n', "rid"),
    ],
)
def test_csv_and_gzipped_json_lines_files_read_the_named_column(
    hpgames_conn, requests_mock, task_context, id_file, name, text, column
):
    ids = uuids(2)
    accepted = answer_bulk(requests_mock)
    result = bulk(reward_ids_path=id_file(name=name, text=text.format(*ids)), ids_column=column).execute(task_context)
    assert accepted == [ids]
    assert result["cancelled"] == 2


def test_external_ids_from_a_file_are_sent_verbatim(hpgames_conn, requests_mock, task_context, id_file):
    answer_bulk(requests_mock)
    result = bulk(external_ids_path=id_file(["Ext 1", "ext-ü"]), batch_size=1).execute(task_context)
    assert sent_batches(requests_mock, key="externalIds") == [["Ext 1"], ["ext-ü"]]
    assert {line["field"] for line in read_results(result["results_path"])} == {"external_ids"}


def test_a_bad_line_fails_naming_it_and_nothing_is_sent_or_written(hpgames_conn, requests_mock, task_context, id_file):
    ids = uuids(3)
    source = id_file([ids[0], ids[1], "not-a-uuid", ids[2]])
    answer_bulk(requests_mock)
    with pytest.raises(RewardsInputError, match=r"line 3"):
        bulk(reward_ids_path=source, batch_size=1).execute(task_context)
    assert not requests_mock.called
    assert not Path(f"{source}.results").exists()


def test_a_stopped_run_still_completes_its_record(hpgames_conn, requests_mock, task_context, id_file, sleeps):
    ids = uuids(30)
    source = id_file(ids)
    answer_bulk(requests_mock, containing(ids[10], 503, {"errorCode": 1503, "errorText": "down"}))
    with pytest.raises(RewardsError, match=r"Stopped at batch 2/3"):
        bulk(reward_ids_path=source, batch_size=10).execute(task_context)
    results = outcomes_by_id(f"file://{default_root(source)}/results.jsonl")
    assert [results[item] for item in ids] == ["cancelled"] * 10 + ["unconfirmed"] * 10 + ["not_attempted"] * 10
    pushed = task_context["ti"].pushed["summary"]
    assert (pushed["cancelled"], pushed["unconfirmed"], pushed["not_attempted"], pushed["failed_batch"]) == (
        10,
        10,
        10,
        2,
    )
    assert "rejected_ids" not in pushed  # counts and paths, never id lists


def test_a_retry_resumes_after_the_settled_batches_and_resends_the_one_in_flight(
    hpgames_conn, requests_mock, task_context, id_file, sleeps
):
    ids = uuids(30)
    source = id_file(ids)
    answer_bulk(requests_mock, containing(ids[10], 503, {"errorCode": 1503, "errorText": "down"}))
    with pytest.raises(RewardsError):
        bulk(reward_ids_path=source, batch_size=10).execute(task_context)
    requests_mock.reset_mock()
    answer_bulk(requests_mock)  # the vendor is back
    result = bulk(reward_ids_path=source, batch_size=10).execute(task_context)
    assert sent_batches(requests_mock) == [ids[10:20], ids[20:]]  # batch 1 was settled: never sent again
    assert (result["cancelled"], result["resumed_batches"], result["requests"]) == (30, 1, 2)
    assert set(outcomes_by_id(result["results_path"]).values()) == {"cancelled"}


def test_resume_false_starts_over(hpgames_conn, requests_mock, task_context, id_file):
    ids = uuids(20)
    source = id_file(ids)
    answer_bulk(requests_mock)
    bulk(reward_ids_path=source, batch_size=10).execute(task_context)
    requests_mock.reset_mock()
    answer_bulk(requests_mock)
    assert bulk(reward_ids_path=source, batch_size=10).execute(task_context)["requests"] == 0  # all settled
    result = bulk(reward_ids_path=source, batch_size=10, resume=False).execute(task_context)
    assert sent_batches(requests_mock) == [ids[:10], ids[10:]]
    assert (result["cancelled"], result["resumed_batches"]) == (20, 0)


def test_a_list_with_a_results_path_writes_a_record_and_without_one_writes_nothing(
    hpgames_conn, requests_mock, task_context, tmp_path
):
    ids = uuids(3)
    answer_bulk(requests_mock)
    result = bulk(reward_ids=ids, results_path=f"file://{tmp_path}/out").execute(task_context)
    assert result["results_path"] == f"file://{tmp_path}/out/results.jsonl"
    assert outcomes_by_id(result["results_path"]) == dict.fromkeys(ids, "cancelled")
    summary = bulk(reward_ids=ids).execute(task_context)
    assert "results_path" not in summary
    assert summary["rejected_ids"] == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_refused_ids_fail_the_task_after_the_record_is_complete(hpgames_conn, requests_mock, task_context, id_file):
    ids = uuids(4)
    source = id_file(ids)
    answer_bulk(requests_mock, containing(ids[2], 404))
    with pytest.raises(AirflowFailException, match=rf"HPGames refused 1 of 4 reward_ids: {ids[2]} \(HTTP 404 1004\)"):
        bulk(reward_ids_path=source).execute(task_context)
    lines = {line["id"]: line for line in read_results(f"file://{default_root(source)}/results.jsonl")}
    assert lines[ids[2]] | {"batch": 1} == {
        "id": ids[2],
        "field": "reward_ids",
        "outcome": "refused",
        "batch": 1,
        "status_code": 404,
        "vendor_code": "1004",
        "message": "Reward not found",
    }
    assert {lines[item]["outcome"] for item in (ids[0], ids[1], ids[3])} == {"cancelled"}
    assert task_context["ti"].pushed["summary"]["refused"] == 1


def test_dry_run_scans_lists_the_first_10_batches_and_writes_nothing(
    hpgames_conn, requests_mock, task_context, id_file, logs
):
    ids = uuids(130)
    source = id_file(ids)
    result = bulk(reward_ids_path=source, batch_size=10, dry_run=True).execute(task_context)
    assert not requests_mock.called
    assert result == {
        "requested": 130,
        "duplicates_dropped": 0,
        "batches": 13,
        "requests": 0,
        "results_path": None,
        "summary_path": None,
        "dry_run": True,
    }
    output = logs()
    assert f"batch 10/13 would cancel {ids[90]}" in output
    assert "batch 11/13" not in output
    assert "3 more batches not listed" in output
    assert not Path(f"{source}.results").exists()


def test_cancel_by_query_reads_players_from_a_file(hpgames_conn, requests_mock, task_context, id_file):
    requests_mock.post(BY_QUERY, text="")
    players = [f"player-{n}" for n in range(5)]
    source = id_file(name="players.csv", text="player_id\n" + "\n".join(players) + "\n")
    result = HPGamesCancelRewardsByQueryOperator(
        task_id="cancel", player_ids_path=source, ids_column="player_id", batch_size=2
    ).execute(task_context)
    assert sent_batches(requests_mock, BY_QUERY, "playerIds") == [players[:2], players[2:4], players[4:]]
    assert outcomes_by_id(result["results_path"]) == dict.fromkeys(players, "cancelled")
    assert result["cancelled"] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward_ids": uuids(1), "reward_ids_path": "/data/ids.txt"}, "Pass exactly one of"),
        ({}, "Pass exactly one of reward_ids or external_ids or reward_ids_path or external_ids_path"),
        ({"reward_ids": uuids(1), "ids_column": "id"}, "ids_column only applies to a file"),
        ({"reward_ids_path": "ids.txt"}, "reward_ids_path must be an absolute path"),
        ({"reward_ids_path": "/data/ids.csv"}, "set ids_column"),
        ({"reward_ids_path": "/data/ids.txt", "max_concurrency": 17}, "max_concurrency must be between 1 and 16"),
        ({"reward_ids_path": "/data/ids.txt", "resume": "yes"}, "resume must be True or False"),
        ({"reward_ids_path": "/data/ids.txt", "results_path": "out"}, "results_path must be an absolute path"),
    ],
)
def test_arguments_are_checked_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(RewardsInputError, match=message):
        bulk(**kwargs)


def test_templated_paths_are_checked_once_rendered(hpgames_conn, requests_mock, task_context, id_file):
    from airflow.sdk import DAG

    ids = uuids(2)
    accepted = answer_bulk(requests_mock)
    with DAG("paths", schedule=None):
        operator = bulk(reward_ids_path="{{ params.ids_path }}", results_path="{{ params.out }}")
    source = id_file(ids)
    operator.render_template_fields({**task_context, "params": {"ids_path": source, "out": f"{source}.out"}})
    result = operator.execute(task_context)
    assert accepted == [ids]
    assert result["results_path"] == f"file://{source}.out/results.jsonl"


def test_the_results_alias_is_added_to_the_outlets_passed():
    report = Asset("x-rewards://audit")
    operator = bulk(reward_ids=uuids(1), outlets=[report])
    assert operator.outlets == [report, AssetAlias(RESULTS_ASSET_ALIAS)]
    assert bulk(reward_ids=uuids(1)).outlets == [AssetAlias(RESULTS_ASSET_ALIAS)]


def test_object_storage_paths_are_accepted_and_rendered(hpgames_conn, requests_mock, task_context, id_file):
    from airflow.sdk import DAG, ObjectStoragePath

    ids = uuids(2)
    accepted = answer_bulk(requests_mock)
    source = id_file(ids)
    with DAG("storage_paths", schedule=None):
        operator = bulk(
            reward_ids_path=ObjectStoragePath(f"file://{source}"),
            results_path=ObjectStoragePath(f"file://{source}.{{{{ params.suffix }}}}"),
        )
    operator.render_template_fields({**task_context, "params": {"suffix": "audit"}})
    result = operator.execute(task_context)
    assert accepted == [ids]
    assert result["results_path"] == f"file://{source}.audit/results.jsonl"


@pytest.mark.parametrize("still_live", [[], ["p3"]])
def test_cancel_by_query_reads_a_failed_batch_back(
    hpgames_conn, requests_mock, task_context, id_file, sleeps, still_live
):
    """A bulkCancelByQuery that fails for good: players with no live reward left are settled."""
    from tests.operators.test_hpgames import READ_ALL

    def respond(request, context) -> str:
        context.status_code = 503 if "p2" in payload(request)["playerIds"] else 200
        return ""

    requests_mock.post(BY_QUERY, text=respond)
    requests_mock.post(READ_ALL, json=[{"playerId": p, "status": "IN_PROGRESS"} for p in still_live])
    players = ["p0", "p1", "p2", "p3", "p4"]
    operator = HPGamesCancelRewardsByQueryOperator(
        task_id="cancel", player_ids_path=id_file(players), batch_size=2, reward_configuration_id=CONFIG
    )
    if still_live:
        with pytest.raises(RewardsError, match="Stopped at batch 2/3"):
            operator.execute(task_context)
        results = task_context["ti"].pushed["summary"]["results_path"]
    else:
        results = operator.execute(task_context)["results_path"]
    expected = ["cancelled", "cancelled", "already_cancelled"]
    expected += ["unconfirmed", "not_attempted"] if still_live else ["already_cancelled", "cancelled"]
    assert [outcomes_by_id(results)[p] for p in players] == expected
    assert payload(requests_mock.request_history[-1 if still_live else -2]) == {
        "status": "IN_PROGRESS",
        "rewardConfigurationId": CONFIG,
    }


@pytest.mark.parametrize("rendered_to", [None, "", "None"])
def test_a_path_param_left_null_is_no_file_and_if_empty_applies(hpgames_conn, requests_mock, rendered_to):
    """A DAG passes ``reward_ids_path="{{ params.path }}"``; a null param renders to nothing: no file, nothing sent."""
    task = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_file", reward_ids_path="{{ params.path }}", ids_column="{{ params.column }}", if_empty="skip"
    )
    task.reward_ids_path, task.ids_column = rendered_to, None  # what rendering a null param gives
    with pytest.raises(AirflowSkipException, match="reward_ids is empty"):
        task.execute({"ti": None, "params": {}})
    assert not requests_mock.called


def test_a_literal_empty_path_is_refused_when_the_dag_is_parsed():
    with pytest.raises(RewardsInputError, match="reward_ids_path"):
        HPGamesBulkCancelRewardsOperator(task_id="cancel_file", reward_ids_path="")
