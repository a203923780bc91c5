"""The Thanx job record: both line forms, errors that name the file and line, duplicates, Assets, appending."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.job_record import (
    JobRecordEntry,
    append_job_record,
    display_location,
    parse_recorded_at,
    read_job_record,
    record_path,
)


@pytest.fixture
def record(tmp_path):
    """Call with the record's text (and a file name) to write it; returns its ``file://`` URI."""

    def write(text: str, name: str = "jobs.jsonl") -> str:
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
        return f"file://{path}"

    return write


def test_bare_ids_and_json_lines_mix_and_keep_their_line_numbers(record):
    uri = record(
        '# issued by the nightly CRM export\njob_a\n\n{"issuance_job_id": "job_b", "campaign_id": "camp_1", '
        '"merchant_id": "m1", "note": "ignored"}\n'
    )
    assert read_job_record(uri) == [
        JobRecordEntry("job_a", None, None, 2),
        JobRecordEntry("job_b", "camp_1", "m1", 4),
    ]


def test_gzip_is_read_by_suffix(record):
    uri = record('{"issuance_job_id": "job_a", "campaign_id": "camp_1"}\n', name="jobs.jsonl.gz")
    assert [entry.issuance_job_id for entry in read_job_record(uri)] == ["job_a"]


def test_a_job_recorded_twice_counts_once_and_gains_its_campaign(record):
    uri = record('job_a\n{"issuance_job_id": "job_a", "campaign_id": "camp_1"}\njob_a\n')
    assert read_job_record(uri) == [JobRecordEntry("job_a", "camp_1", None, 1)]


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("job_a\n{not json\n", 2, "not valid JSON"),
        ('job_a\n{"campaign_id": "camp_1"}\n', 2, "needs the key 'issuance_job_id'"),
        ('{"issuance_job_id": 42}\n', 1, "issuance_job_id must be a string"),
        ("job_a\n..\n", 2, "relative path"),
        ("job a\u202e\n", 1, "control, format or separator"),
        (
            '{"issuance_job_id": "job_a", "campaign_id": "c1"}\n{"issuance_job_id": "job_a", "campaign_id": "c2"}\n',
            2,
            "line 1",
        ),
    ],
)
def test_a_bad_line_is_named_with_its_file_and_number(record, text, line, says):
    uri = record(text)
    with pytest.raises(RewardsInputError) as raised:
        read_job_record(uri)
    assert f"{uri} line {line}:" in str(raised.value)
    assert says in str(raised.value)


def test_recorded_at_is_read_as_iso_with_an_offset_or_epoch_ms_and_the_latest_line_wins(record):
    uri = record(
        '{"issuance_job_id": "job_a", "campaign_id": "camp_1", "recorded_at": "2025-09-02T05:04:05+02:00"}\n'
        '{"issuance_job_id": "job_b", "campaign_id": "camp_1", "recorded_at": 1756782245000}\n'
        '{"issuance_job_id": "job_a", "recorded_at": "2025-09-03T00:00:00Z"}\njob_b\njob_c\n'
    )
    assert [(e.issuance_job_id, e.recorded_at) for e in read_job_record(uri)] == [
        ("job_a", datetime(2025, 9, 3, tzinfo=UTC)),
        ("job_b", datetime(2025, 9, 2, 3, 4, 5, tzinfo=UTC)),
        ("job_c", None),
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"2025-09-02T03:04:05"', "has no offset"),
        ('"yesterday"', "is not ISO 8601"),
        ("1756782245", r"out of range \(epoch seconds\? multiply by 1000\)"),
        ("true", "must be text or an integer, got bool"),
        ("1756782245000.5", "must be text or an integer, got float"),
    ],
)
def test_a_bad_recorded_at_names_the_line_and_the_fix(record, value, says):
    uri = record(f'job_a\n{{"issuance_job_id": "job_b", "recorded_at": {value}}}\n')
    with pytest.raises(RewardsInputError, match=says) as raised:
        read_job_record(uri)
    assert f"{uri} line 2: recorded_at" in str(raised.value)
    assert "write ISO 8601 with an offset" in str(raised.value)


def test_parse_recorded_at_gives_utc():
    assert parse_recorded_at("2025-09-02T05:04:05.250+02:00") == datetime(2025, 9, 2, 3, 4, 5, 250000, tzinfo=UTC)
    assert parse_recorded_at("2025-09-02T03:04:05Z").tzinfo is UTC
    assert parse_recorded_at(1756782245250).tzinfo is UTC


def test_a_missing_record_is_an_error_not_an_empty_one(tmp_path):
    with pytest.raises(RewardsInputError, match="does not exist; point it at the file the issuing process writes"):
        read_job_record(f"file://{tmp_path}/never-written.jsonl")


def test_non_utf8_text_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_bytes(b"job_\xff\n")
    with pytest.raises(RewardsInputError, match=r"jobs.txt: not UTF-8 text"):
        read_job_record(str(path))


def test_an_asset_is_read_through_its_uri(record):
    uri = record("job_a\n")
    assert [e.issuance_job_id for e in read_job_record(Asset(name="thanx_job_record", uri=uri))] == ["job_a"]


@pytest.mark.parametrize("value", [None, "", 42, ["file:///x"]])
def test_record_path_refuses_what_is_not_a_location(value):
    with pytest.raises(RewardsInputError, match="job_record must be a URI"):
        record_path(value)


def test_display_location_drops_the_connection_id():
    assert display_location(ObjectStoragePath("file://my_conn@/tmp/jobs.jsonl")) == "file:///tmp/jobs.jsonl"


def test_append_writes_one_json_line_per_job_stamped_when_written_that_reads_back(tmp_path):
    uri = f"file://{tmp_path}/nested/jobs.jsonl"
    start = datetime.now(UTC).replace(microsecond=0)
    append_job_record(uri, "job_a", "camp_1")
    append_job_record(uri, "job_b", "camp_1", merchant_id="m1")
    end = datetime.now(UTC)
    lines = [json.loads(line) for line in (tmp_path / "nested/jobs.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in line.items() if k != "recorded_at"} for line in lines] == [
        {"issuance_job_id": "job_a", "campaign_id": "camp_1"},
        {"issuance_job_id": "job_b", "campaign_id": "camp_1", "merchant_id": "m1"},
    ]
    assert all(line["recorded_at"].endswith("Z") for line in lines)
    entries = read_job_record(uri)
    assert [e.campaign_id for e in entries] == ["camp_1", "camp_1"]
    assert all(e.recorded_at is not None and start <= e.recorded_at <= end for e in entries)


def test_append_validates_before_writing(tmp_path):
    with pytest.raises(RewardsInputError, match="campaign_id"):
        append_job_record(f"file://{tmp_path}/jobs.jsonl", "job_a", " camp ")
    assert not (tmp_path / "jobs.jsonl").exists()
