"""Ids streamed from files (and lists) for the bulk operators: formats, line-numbered errors, exact dedupe."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import re
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils import id_source
from airflow_provider_rewards.utils.id_source import (
    FileIdSource,
    ListIdSource,
    as_storage_path,
    display_location,
)
from airflow_provider_rewards.utils.validation import ValidatedIds, prepare_id_list
from tests.conftest import make_uuids


def read_all(source, batch_size: int = 1000) -> list[str]:
    return [value for _, batch in source.batches(batch_size) for value in batch]


def as_lines(values: list[str], newline: str = "\n") -> str:
    return "".join(f"{value}{newline}" for value in values)


@pytest.fixture
def small_chunks(monkeypatch):
    """Read files in 64-byte blocks, so lines and records cross block boundaries."""
    monkeypatch.setattr(id_source, "CHUNK_BYTES", 64)


# -- formats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ids.txt", "ids.txt.gz", "ids"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_lines_file_gives_lowercased_uuids_skipping_empty_lines(ids_file, uuids, name, newline):
    text = "\ufeff" + newline + as_lines([uuids[0].upper(), *uuids[1:4]], newline) + newline + uuids[4]
    source = FileIdSource(ids_file(name, text), "reward_ids", uuid=True)

    scan = source.scan()

    assert (scan.lines, scan.unique, scan.duplicates_dropped) == (5, 5, 0)
    assert read_all(source) == uuids[:5]


def test_fingerprint_is_the_sha256_of_the_raw_file(ids_file, uuids, tmp_path):
    location = ids_file("ids.txt.gz", as_lines(uuids))

    scan = FileIdSource(location, "reward_ids", uuid=True).scan()

    assert scan.fingerprint == hashlib.sha256((tmp_path / "ids.txt.gz").read_bytes()).hexdigest()
    assert scan.location == location


@pytest.mark.parametrize("name", ["export.csv", "export.csv.gz"])
def test_csv_reads_the_named_column(ids_file, name):
    text = 'player,external_id,note\np1,ext-1,"a, quoted ""note"""\n\np2,ext 2,"two\nlines"\np3,ext-1,x\n'
    source = FileIdSource(ids_file(name, text), "external_ids", uuid=False, ids_column="external_id")

    scan = source.scan()

    assert (scan.lines, scan.unique, scan.duplicates_dropped) == (3, 2, 1)
    assert read_all(source) == ["ext-1", "ext 2"]


@pytest.mark.parametrize("name", ["ids.jsonl", "ids.ndjson.gz"])
def test_json_lines_read_the_named_key(ids_file, uuids, name):
    rows = [json.dumps({"rewardId": value, "n": index}) for index, value in enumerate(uuids[:3])]
    text = rows[0] + "\n  \n" + rows[1] + "\r\n" + rows[2] + "\n"
    source = FileIdSource(ids_file(name, text), "reward_ids", uuid=True, ids_column="rewardId")

    assert source.scan().unique == 3
    assert read_all(source) == uuids[:3]


def test_id_format_overrides_the_suffix(ids_file):
    location = ids_file("export.txt", "id\nA-1\n")

    assert read_all_after_scan(FileIdSource(location, "external_ids", uuid=False)) == ["id", "A-1"]
    source = FileIdSource(location, "external_ids", uuid=False, ids_column="id", id_format="csv")
    assert read_all_after_scan(source) == ["A-1"]


def read_all_after_scan(source) -> list[str]:
    source.scan()
    return read_all(source)


def test_non_ascii_ids_take_the_checked_path_and_are_kept_as_given(ids_file):
    source = FileIdSource(ids_file("ids.txt", "joueur-é\nid-全角\nplain\n"), "external_ids", uuid=False)

    assert read_all_after_scan(source) == ["joueur-é", "id-全角", "plain"]


@pytest.mark.parametrize("uuid", [True, False])
def test_the_fast_path_gives_what_the_line_by_line_rules_give(ids_file, monkeypatch, uuid):
    values = make_uuids(300) if uuid else [f"ext-{i} x" for i in range(300)]
    values = [value.upper() if i % 7 == 0 else value for i, value in enumerate(values)]
    location = ids_file("ids.txt", as_lines(values[:150]) + "\n\n" + as_lines(values[150:], "\r\n"))

    fast = read_all_after_scan(FileIdSource(location, "external_ids", uuid=uuid))
    monkeypatch.setattr(FileIdSource, "_fast_lines", lambda self, chunk: None)
    slow = read_all_after_scan(FileIdSource(location, "external_ids", uuid=uuid))

    assert fast == slow
    assert len(fast) == 300


def test_records_crossing_block_boundaries_are_read_whole(ids_file, small_chunks):
    values = [f"external-id-{i:04d}" for i in range(50)]
    csv_text = "external_id\n" + "".join(f'"{value}"\n' for value in values)

    source = FileIdSource(ids_file("a.csv.gz", csv_text), "external_ids", uuid=False, ids_column="external_id")

    assert read_all_after_scan(source) == values


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("ids.txt", "{u}\n{u}\nabc\n", ["line 3", "must be a UUID like", "'abc'", "fix or remove the line"]),
        ("ids.txt", "{u}\n\n {u}\n", ["line 3", "must be a UUID like"]),
        ("ids.txt", "{u}\ngggggggg-gggg-4ggg-8ggg-gggggggggggg\n", ["line 2", "must be a UUID like"]),
        ("ids.txt.gz", "{u}\r\n{u}x\r\n", ["line 2", "must be a UUID"]),
        ("ids.csv", "reward_id\n{u}\n\n12\n", ["line 4", "'12'"]),
        ("ids.csv", "a,reward_id\n1,{u}\n2,{u},3\n", ["line 3", "3 fields, the header has 2"]),
        ("ids.csv", 'a,reward_id\n1,{u}\n2,"{u}"x\n', ["line 3", "not valid CSV"]),
        ("ids.csv", "a,b\n1,{u}\n", ["line 1", "no column 'reward_id'; its columns are 'a', 'b'"]),
        ("ids.csv", "reward_id,reward_id\n{u},{u}\n", ["line 1", "2 columns named 'reward_id'"]),
        ("ids.jsonl", '{{"reward_id": "{u}"}}\n{{"reward_id": \n', ["line 2", "not valid JSON"]),
        ("ids.jsonl", '{{"reward_id": "{u}"}}\n["{u}"]\n', ["line 2", "a JSON list, not an object"]),
        ("ids.jsonl", '{{"reward_id": "{u}"}}\n{{"rewardId": "{u}"}}\n', ["line 2", "its keys are 'rewardId'"]),
        ("ids.jsonl", '\n{{"reward_id": 42}}\n', ["line 2", "must be a UUID string, got int"]),
    ],
    ids=[
        "not-a-uuid",
        "leading-space",
        "not-hex",
        "gzip-crlf",
        "csv-bad-id",
        "csv-wide-row",
        "csv-bad-quote",
        "csv-no-column",
        "csv-two-columns",
        "jsonl-bad-json",
        "jsonl-not-object",
        "jsonl-no-key",
        "jsonl-number",
    ],
)
def test_a_bad_line_is_refused_naming_the_file_and_line(ids_file, uuids, name, content, expected):
    location = ids_file(name, content.format(u=uuids[0]))
    column = None if name.startswith("ids.txt") else "reward_id"
    source = FileIdSource(location, "reward_ids", uuid=True, ids_column=column)

    with pytest.raises(RewardsInputError) as info:
        source.scan()

    message = str(info.value)
    assert message.startswith(f"reward_ids_path {location} line ")
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("bad\tid", "contains control"),
        ("trailing ", "has leading or trailing whitespace: 'trailing '; remove it"),
        (" leading", "has leading or trailing whitespace"),
        ("x" * 257, "is 257 characters long; the limit is 256"),
    ],
)
def test_opaque_ids_follow_the_list_rules(ids_file, line, problem):
    source = FileIdSource(ids_file("ids.txt", f"ok\n{line}\nok-2\n"), "external_ids", uuid=False)

    with pytest.raises(RewardsInputError, match=rf"^external_ids_path \S+ line 2 {re.escape(problem)}"):
        source.scan()


def test_line_numbers_count_across_blocks(ids_file, uuids, small_chunks):
    location = ids_file("ids.txt", as_lines(uuids[:5]) + "\n" + as_lines(uuids[5:9]) + "nope\n")

    with pytest.raises(RewardsInputError, match=r"line 11 must be a UUID"):
        FileIdSource(location, "reward_ids", uuid=True).scan()


def test_an_undecodable_byte_names_its_line_and_column(ids_file):
    location = ids_file("ids.txt", b"ok-1\nok-2\nbad-\xff\n")

    with pytest.raises(RewardsInputError, match=r"line 3: byte 0xff at column 5 is not UTF-8 text; save the file"):
        FileIdSource(location, "external_ids", uuid=False).scan()


def test_a_file_that_is_not_gzip_is_refused(ids_file, tmp_path):
    (tmp_path / "ids.txt.gz").write_text("plain text\n")

    with pytest.raises(RewardsInputError, match=r"ids.txt.gz is not a readable gzip file"):
        FileIdSource(f"file://{tmp_path}/ids.txt.gz", "external_ids", uuid=False).scan()


def test_an_overlong_line_is_refused(ids_file, monkeypatch, small_chunks):
    monkeypatch.setattr(id_source, "MAX_LINE_BYTES", 100)

    with pytest.raises(RewardsInputError, match=r"line 2: the line is longer than 100 bytes"):
        FileIdSource(ids_file("ids.txt", "a\n" + "x" * 300), "external_ids", uuid=False).scan()


def test_a_missing_file_is_named(tmp_path):
    source = FileIdSource(f"{tmp_path}/nope.csv", "player_ids", uuid=False, ids_column="player")

    with pytest.raises(RewardsInputError, match=rf"player_ids_path file://{tmp_path}/nope.csv: no such file"):
        source.scan()


@pytest.mark.parametrize(("name", "content"), [("ids.txt", ""), ("ids.txt.gz", "\n\n"), ("ids.csv", "reward_id\n")])
def test_a_file_without_ids_scans_as_empty(ids_file, name, content):
    column = "reward_id" if name.endswith(".csv") else None
    source = FileIdSource(ids_file(name, content), "reward_ids", uuid=True, ids_column=column)

    assert source.scan().unique == 0
    assert list(source.batches(10)) == []


@pytest.mark.parametrize(
    ("name", "column", "match"),
    [
        ("ids.csv", None, "is a csv file: set ids_column to the CSV header name"),
        ("ids.jsonl.gz", None, "is a jsonl file: set ids_column to the JSON key"),
        ("ids.txt", "reward_id", "ids_column is only for CSV and JSON Lines files"),
    ],
)
def test_ids_column_is_required_exactly_for_csv_and_json_lines(tmp_path, name, column, match):
    with pytest.raises(RewardsInputError, match=match):
        FileIdSource(f"{tmp_path}/{name}", "reward_ids", uuid=True, ids_column=column)


# -- duplicates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bloom_bits", [64, 1 << 12, id_source.BLOOM_BITS])
def test_duplicates_are_dropped_exactly_whatever_the_filter_size(ids_file, bloom_bits):
    rng = random.Random(bloom_bits)
    distinct = make_uuids(3000, seed=1)
    values = [rng.choice(distinct[: i + 1]) if rng.random() < 0.2 else distinct[i] for i in range(3000)]
    source = FileIdSource(ids_file("ids.txt", as_lines(values)), "reward_ids", uuid=True, bloom_bits=bloom_bits)
    expected = list(dict.fromkeys(values))

    scan = source.scan()

    assert read_all(source, 7) == expected
    assert (scan.unique, scan.duplicates_dropped) == (len(expected), len(values) - len(expected))
    if bloom_bits == 64:  # a one-word filter: nearly every id is a false-positive candidate
        assert source.candidates > 2 * scan.duplicates_dropped


def test_uuids_differing_only_in_case_are_duplicates(ids_file, uuids):
    source = FileIdSource(ids_file("ids.txt", as_lines([uuids[0], uuids[0].upper()])), "reward_ids", uuid=True)

    assert source.scan().duplicates_dropped == 1
    assert read_all(source) == [uuids[0]]


@pytest.mark.parametrize("bloom_bits", [0, 100, True])
def test_the_filter_size_must_be_a_power_of_two(tmp_path, bloom_bits):
    with pytest.raises(RewardsInputError, match="bloom_bits must be a power of two"):
        FileIdSource(f"{tmp_path}/ids.txt", "reward_ids", uuid=True, bloom_bits=bloom_bits)


# -- batches ---------------------------------------------------------------------------------------------


def test_batches_are_numbered_deterministic_and_validated_ids(ids_file):
    values = make_uuids(23)
    location = ids_file("ids.txt", as_lines(values + values[:4]))
    first, second = (FileIdSource(location, "reward_ids", uuid=True) for _ in range(2))
    first.scan()
    second.scan()

    batches = list(first.batches(10))

    assert [(number, len(ids)) for number, ids in batches] == [(1, 10), (2, 10), (3, 3)]
    assert batches == list(second.batches(10)) == list(first.batches(10))
    assert all(isinstance(ids, ValidatedIds) for _, ids in batches)


def test_batches_need_a_scan_first(ids_file, uuids):
    with pytest.raises(RuntimeError, match=r"needs scan\(\) first"):
        next(FileIdSource(ids_file("ids.txt", uuids[0]), "reward_ids", uuid=True).batches(5))


def test_a_file_changed_after_the_scan_fails_the_pass(ids_file, uuids, tmp_path):
    location = ids_file("ids.txt", as_lines(uuids[:6]))
    source = FileIdSource(location, "reward_ids", uuid=True)
    source.scan()
    (tmp_path / "ids.txt").write_text(as_lines(uuids[6:]))

    with pytest.raises(RewardsInputError, match="changed while it was being read"):
        list(source.batches(2))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_is_checked(batch_size, uuids):
    source = ListIdSource(prepare_id_list(uuids, "reward_ids", uuid=True))

    with pytest.raises(RewardsInputError, match="batch_size must be a whole number"):
        next(source.batches(batch_size))


def test_a_list_source_wraps_the_validated_list(uuids):
    source = ListIdSource(prepare_id_list([*uuids[:5], uuids[0].upper()], "reward_ids", uuid=True))

    scan = source.scan()

    assert (scan.location, scan.lines, scan.unique, scan.duplicates_dropped) == (None, 6, 5, 1)
    assert scan.fingerprint == hashlib.sha256("\n".join(uuids[:5]).encode()).hexdigest()
    assert list(source.batches(2)) == [(1, uuids[0:2]), (2, uuids[2:4]), (3, uuids[4:5])]
    assert source.field == "reward_ids"


# -- locations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/data/ids.csv", "file:///data/ids.csv"),
        ("file:///data/ids.csv", "file:///data/ids.csv"),
        (Path("/data/ids.csv"), "file:///data/ids.csv"),
        ("s3://aws_prod@bucket/exports/ids.csv", "s3://bucket/exports/ids.csv"),
        (ObjectStoragePath("s3://bucket/k.csv", conn_id="aws_prod"), "s3://bucket/k.csv"),
    ],
)
def test_locations_are_shown_without_the_connection_id(value, expected):
    path = as_storage_path(value, "reward_ids_path")

    assert display_location(path) == expected
    assert "aws_prod" not in display_location(path)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("ids.csv", "must be an absolute path or a URI"),
        ("file://data/ids.csv", "names a host; write three slashes for a local file: file:///data/ids.csv"),
        (" /data/ids.csv", "without surrounding whitespace"),
        (42, "must be a URI string"),
    ],
)
def test_unusable_locations_are_refused_naming_the_field(value, match):
    with pytest.raises(RewardsInputError, match=rf"^reward_ids_path .*{match}"):
        as_storage_path(value, "reward_ids_path")


def test_an_unknown_scheme_is_refused_naming_the_field():
    with pytest.raises(RewardsInputError, match=r"^reward_ids_path 'nosuchfs://bucket/ids.txt' cannot be used"):
        as_storage_path("nosuchfs://conn@bucket/ids.txt", "reward_ids_path")


def test_a_scheme_without_filesystem_names_the_provider_to_install():
    if importlib.util.find_spec("airflow.providers.amazon") is not None:
        pytest.skip("the amazon provider serves s3:// here")
    source = FileIdSource("s3://aws_prod@bucket/ids.txt", "reward_ids", uuid=True)

    with pytest.raises(RewardsInputError) as info:
        source.scan()

    assert "reward_ids_path s3://bucket/ids.txt: no filesystem is installed for s3://" in str(info.value)
    assert "aws_prod" not in str(info.value)
