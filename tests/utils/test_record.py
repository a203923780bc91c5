"""The per-reward record: checkpoint parts, resumption, and a complete results file even after a failure."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.id_source import FileIdSource, ListIdSource, SourceScan
from airflow_provider_rewards.utils.record import (
    RESULTS_ASSET_ALIAS,
    IdOutcome,
    Outcome,
    ResultsRecord,
    UniformOutcomes,
    _line_key,
    default_results_path,
    input_manifest,
    result_line,
)
from airflow_provider_rewards.utils.validation import prepare_id_list
from tests.conftest import make_uuids, outcomes_by_id, read_results

BATCH = 4
RESULTS = "results.jsonl"
IDS = make_uuids(10)  # batches of 4: [0:4], [4:8], [8:10]


def batches_of(ids: list[str] = IDS, size: int = BATCH) -> list[tuple[int, list[str]]]:
    return list(ListIdSource(prepare_id_list(ids, "reward_ids", uuid=True)).batches(size))


def manifest_for(ids: list[str] = IDS, size: int = BATCH, **changes: object) -> dict:
    scan = ListIdSource(prepare_id_list(ids, "reward_ids", uuid=True)).scan()
    return {"operator": "Test", "input": {**input_manifest(scan, field="reward_ids", batch_size=size), **changes}}


def cancelled(ids: list[str]) -> list[IdOutcome]:
    return [IdOutcome(value, Outcome.CANCELLED) for value in ids]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def record(root) -> ResultsRecord:
    """A started record (no earlier checkpoint) of IDS in batches of BATCH."""
    started = ResultsRecord(f"file://{root}", field="reward_ids")
    assert started.start(manifest_for(), resume=True) == {}
    return started


def test_a_full_run_records_every_id_once_in_batch_order(record, root):
    refused = IdOutcome(IDS[5], Outcome.REFUSED, 422, "E_STATE", 'not "active"\nanymore')
    record.settle_batch(1, cancelled(IDS[0:4]))
    record.settle_batch(2, [*cancelled([IDS[4], IDS[6]]), refused, IdOutcome(IDS[7], Outcome.ALREADY_CANCELLED)])
    record.settle_batch(3, cancelled(IDS[8:10]))

    location = record.finish(batches_of(), {"requests": 3})

    assert location == f"file://{root}/results.jsonl"
    rows = read_results(root / RESULTS)
    assert [row["id"] for row in rows] == IDS
    assert rows[5] == {
        "id": IDS[5],
        "field": "reward_ids",
        "outcome": "refused",
        "batch": 2,
        "status_code": 422,
        "vendor_code": "E_STATE",
        "message": 'not "active"\nanymore',
    }
    assert [row["batch"] for row in rows] == [1] * 4 + [2] * 4 + [3] * 2
    assert record.counts() == Counter({Outcome.CANCELLED: 8, Outcome.REFUSED: 1, Outcome.ALREADY_CANCELLED: 1})
    summary = json.loads((root / "summary.json").read_text())
    assert summary["counts"] == {
        "cancelled": 8,
        "already_cancelled": 1,
        "refused": 1,
        "unconfirmed": 0,
        "not_attempted": 0,
    }
    assert (summary["ids"], summary["batches"], summary["summary"]) == (10, 3, {"requests": 3})
    assert summary["started_at"].endswith("+00:00")
    assert summary["finished_at"] >= summary["started_at"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["operator"] == "Test"
    assert manifest["input"]["batch_size"] == BATCH
    assert manifest["started_at"] == summary["started_at"]


def test_finish_after_a_failure_gives_every_id_exactly_one_outcome(record, root):
    record.settle_batch(1, cancelled(IDS[0:4]))
    record.note_open_batch(2, [IdOutcome(IDS[4], Outcome.CANCELLED), IdOutcome(IDS[5], Outcome.UNCONFIRMED)])

    record.finish(batches_of(), {"error": "BatchRunFailed"})

    assert outcomes_by_id(root / RESULTS) == {
        **dict.fromkeys(IDS[0:4], "cancelled"),
        IDS[4]: "cancelled",
        IDS[5]: "unconfirmed",
        **dict.fromkeys(IDS[6:10], "not_attempted"),
    }
    assert read_results(root / RESULTS)[6]["message"] == "the run stopped before this id was settled"
    assert read_results(root / RESULTS)[8]["message"] is None
    assert record.counts()[Outcome.NOT_ATTEMPTED] == 4


def test_a_resumed_run_skips_settled_batches_and_keeps_their_outcomes(record, root):
    record.settle_batch(1, [*cancelled(IDS[0:3]), IdOutcome(IDS[3], Outcome.REFUSED, 404, "E_NF", "gone")])
    record.note_open_batch(2, cancelled(IDS[4:6]))  # not a checkpoint: sent again on resume
    record.finish(batches_of(), {})

    retry = ResultsRecord(f"file://{root}", field="reward_ids")
    settled = retry.start(manifest_for(), resume=True)

    assert settled == {1: Counter({Outcome.CANCELLED: 3, Outcome.REFUSED: 1})}
    retry.settle_batch(2, cancelled(IDS[4:8]))
    retry.settle_batch(3, cancelled(IDS[8:10]))
    retry.finish(batches_of(), {})
    assert outcomes_by_id(root / RESULTS) == {**dict.fromkeys(IDS, "cancelled"), IDS[3]: "refused"}
    assert read_results(root / RESULTS)[3]["message"] == "gone"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["resumed"] is True
    assert manifest["settled_batches_at_start"] == 1
    assert manifest["first_started_at"] < manifest["started_at"]


@pytest.mark.parametrize(
    "changes",
    [{"fingerprint": "0" * 64}, {"batch_size": 500}, {"field": "external_ids"}],
    ids=["other-file", "other-batch-size", "other-field"],
)
def test_a_checkpoint_of_another_input_is_refused_and_kept(record, root, changes):
    record.settle_batch(1, cancelled(IDS[0:4]))
    key = next(iter(changes))

    with pytest.raises(RewardsInputError) as info:
        ResultsRecord(f"file://{root}", field="reward_ids").start(manifest_for(**changes), resume=True)

    message = str(info.value)
    assert message.startswith(f"results_path file://{root} holds the record of a different input ({key} ")
    assert "pass a new results_path for this input, or resume=False" in message
    assert (root / "checkpoint" / "batch-00000001.jsonl").exists()


def test_resume_false_discards_the_old_record(record, root):
    record.settle_batch(1, cancelled(IDS[0:4]))
    record.finish(batches_of(), {})

    fresh = ResultsRecord(f"file://{root}", field="reward_ids")

    assert fresh.start(manifest_for(fingerprint="1" * 64), resume=False) == {}
    assert list((root / "checkpoint").iterdir()) == []
    assert not (root / "results.jsonl").exists()
    assert not (root / "summary.json").exists()


def test_parts_are_written_atomically_and_a_left_over_tmp_is_ignored(record, root):
    record.settle_batch(1, cancelled(IDS[0:4]))
    part = root / "checkpoint" / "batch-00000001.jsonl"
    header, *lines = part.read_text().splitlines()
    assert json.loads(header)["counts"] == {"cancelled": 4}
    assert len(lines) == 4
    (root / "checkpoint" / "batch-00000002.jsonl.tmp").write_text('{"batch": 2, "counts": {"cancelled": 4}}\n{"id')
    (root / "checkpoint" / "batch-00000003.jsonl").write_text("not json\n")

    settled = ResultsRecord(f"file://{root}", field="reward_ids").start(manifest_for(), resume=True)

    assert list(settled) == [1]
    assert sorted(path.name for path in (root / "checkpoint").iterdir() if path.name.endswith(".tmp")) == [
        "batch-00000002.jsonl.tmp"
    ]


def test_a_part_is_visible_only_once_fully_written(record, root, monkeypatch):
    """A local part is written with plain file I/O: the failing step is os.replace, the rename that publishes it."""
    import airflow_provider_rewards.utils.record as record_module

    def fail_replace(source, target):
        raise OSError("disk vanished")

    monkeypatch.setattr(record_module.os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk vanished"):
        record.settle_batch(1, UniformOutcomes(IDS[0:4], Outcome.CANCELLED))

    assert [path.name for path in (root / "checkpoint").iterdir()] == ["batch-00000001.jsonl.tmp"]
    assert len((root / "checkpoint" / "batch-00000001.jsonl.tmp").read_text().splitlines()) == 5  # complete


def test_a_batch_accepted_whole_is_recorded_as_its_outcome_objects_would_be(record, root, tmp_path):
    """UniformOutcomes (no object per id) writes the same part bytes and counts as the list of IdOutcome."""
    other = ResultsRecord(f"file://{tmp_path / 'other'}", field="reward_ids")
    other.start(manifest_for(), resume=True)
    record.settle_batch(1, UniformOutcomes(IDS[0:4], Outcome.CANCELLED))
    other.settle_batch(1, cancelled(IDS[0:4]))

    def body(where: Path) -> list[str]:
        return (where / "checkpoint" / "batch-00000001.jsonl").read_text().splitlines()

    ours, theirs = body(root), body(tmp_path / "other")
    assert ours[1:] == theirs[1:]
    assert len(ours) == 5
    assert json.loads(ours[0])["counts"] == json.loads(theirs[0])["counts"] == {"cancelled": 4}
    uniform = UniformOutcomes(IDS[0:4], Outcome.CANCELLED)
    assert uniform == cancelled(IDS[0:4])
    assert list(uniform) == cancelled(IDS[0:4])
    assert uniform[1] == IdOutcome(IDS[1], Outcome.CANCELLED)
    assert uniform.counts() == {Outcome.CANCELLED: 4}


def test_finish_without_a_successful_start_leaves_the_directory_alone(record, root):
    record.settle_batch(1, cancelled(IDS[0:4]))
    record.finish(batches_of(), {})
    before = (root / "results.jsonl").read_bytes()
    refused = ResultsRecord(f"file://{root}", field="reward_ids")
    with pytest.raises(RewardsInputError):
        refused.start(manifest_for(batch_size=2), resume=True)

    refused.finish(batches_of(size=2), {})

    assert (root / "results.jsonl").read_bytes() == before


def test_parts_without_a_manifest_cannot_be_resumed(root):
    (root / "checkpoint").mkdir(parents=True)
    (root / "checkpoint" / "batch-00000001.jsonl").write_text('{"batch": 1, "counts": {}}\n')

    with pytest.raises(RewardsInputError, match=r"has checkpoint parts but no manifest.json"):
        ResultsRecord(str(root), field="reward_ids").start(manifest_for(), resume=True)


def test_a_manifest_without_the_resume_keys_is_a_programming_error(root):
    with pytest.raises(ValueError, match=r'manifest\["input"\] must be a mapping with the keys fingerprint'):
        ResultsRecord(str(root), field="reward_ids").start({"input": {"field": "reward_ids"}}, resume=True)


def test_a_record_of_a_file_source_end_to_end(ids_file, tmp_path):
    values = make_uuids(7)
    source = FileIdSource(
        ids_file("ids.csv.gz", "reward_id\n" + "\n".join(values + values[:2])),
        "reward_ids",
        uuid=True,
        ids_column="reward_id",
    )
    scan = source.scan()
    record = ResultsRecord(tmp_path / "out", field="reward_ids")
    record.start({"input": input_manifest(scan, field="reward_ids", batch_size=3)}, resume=True)
    for number, batch in source.batches(3):
        if number < 3:
            record.settle_batch(number, cancelled(batch))

    record.finish(source.batches(3), {})

    assert outcomes_by_id(tmp_path / "out" / RESULTS) == {
        **dict.fromkeys(values[:6], "cancelled"),
        values[6]: "not_attempted",
    }


@pytest.mark.parametrize(
    "value", ['quote"d', 'a, "field": "x', "back\\slash", "ünï", "tab"], ids=["quote", "delim", "bs", "uni", "plain"]
)
def test_result_lines_are_ascii_json_and_their_key_is_found(value):
    line = result_line(
        IdOutcome(value, Outcome.REFUSED, 409, None, "d\u00e9j\u00e0\u2028vu"), field="external_ids", batch=7
    )

    assert line.isascii()
    assert line.endswith("}\n")
    assert line.count("\n") == 1
    assert json.loads(line) == {
        "id": value,
        "field": "external_ids",
        "outcome": "refused",
        "batch": 7,
        "status_code": 409,
        "vendor_code": None,
        "message": "d\u00e9j\u00e0\u2028vu",
    }
    assert _line_key(line[:-1]) == (json.dumps(value), "refused")


def test_the_results_asset_carries_no_connection_id():
    record = ResultsRecord("s3://aws_prod@bucket/teardown/run-1", field="reward_ids")

    asset = record.results_asset()

    assert asset.uri == asset.name == "s3://bucket/teardown/run-1/results.jsonl"
    assert record.location == "s3://bucket/teardown/run-1"
    assert RESULTS_ASSET_ALIAS == "airflow-provider-rewards-results"


def test_the_default_location_sits_beside_the_source():
    path = default_results_path(
        "s3://aws_prod@exports/2026/ids.csv.gz",
        dag_id="teardown",
        run_id="manual__2026-12-02T10:00:00+00:00",
        task_id="cancel",
        map_index=3,
    )

    assert (
        str(path) == "s3://aws_prod@exports/2026/ids.csv.gz.results/teardown/manual__2026-12-02T10:00:00+00:00/cancel-3"
    )
    unmapped = default_results_path("/data/ids.txt", dag_id="d", run_id="a/b c", task_id="t")
    assert str(unmapped) == "file:///data/ids.txt.results/d/a_b_c/t"


def test_source_scans_feed_the_manifest_input():
    scan = SourceScan(location="file:///x", lines=5, unique=4, duplicates_dropped=1, fingerprint="ab")

    assert input_manifest(scan, field="player_ids", batch_size=100, argument="player_ids_path") == {
        "field": "player_ids",
        "location": "file:///x",
        "fingerprint": "ab",
        "batch_size": 100,
        "lines": 5,
        "unique": 4,
        "duplicates_dropped": 1,
        "argument": "player_ids_path",
    }
