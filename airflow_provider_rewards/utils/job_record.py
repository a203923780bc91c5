"""The record of Thanx issuance jobs kept at issuance: Thanx lists no jobs, so the issuer writes their ids down.

Format (one entry per line, UTF-8, ``.gz`` read as gzip; blank lines and lines starting with ``#`` skipped):

- a bare job id: ``job_xyz789`` (its campaign is then read from the job, ``GET /partner/issuance_jobs/:id``);
- or a JSON object (JSON Lines): ``{"issuance_job_id": "job_xyz789", "campaign_id": "camp_abc123"}``, with an
  optional ``"merchant_id"`` and an optional ``"recorded_at"``: when the line was written to the record (not
  when the job was issued), ISO 8601 with an offset (``"2025-09-02T03:04:05Z"``) or epoch milliseconds
  (``1756782245000``). Other keys are ignored, so the issuer may keep its own fields there.

``recorded_at`` lets the nightly teardown revoke a job recorded after its campaign's window already ran (a
late export, a back-fill): such a job is selected by the run whose window holds its ``recorded_at``. A line
without it is selected only when its campaign ends in a run's window (see
:func:`~airflow_provider_rewards.operators.campaigns.ended_campaign_jobs`).

Both forms may be mixed. A job recorded twice with the same campaign counts once (with the latest
``recorded_at`` of its lines); with two different campaigns it is an error naming both lines. Every error
names the file and the line and says how to fix it, and the whole file is read (and checked) before anything
is sent. :func:`append_job_record` writes one
entry the way an issuing task should (one line per job, appended, with ``recorded_at``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.id_source import as_storage_path, display_location, local_path
from airflow_provider_rewards.utils.validation import require_id, require_path_id

JOB_ID_KEY = "issuance_job_id"
CAMPAIGN_ID_KEY = "campaign_id"
MERCHANT_ID_KEY = "merchant_id"
RECORDED_AT_KEY = "recorded_at"
#: Epoch milliseconds accepted for ``recorded_at``: 1973-03-03 to 5138; below it is epoch seconds written by mistake.
EPOCH_MS_RANGE = (10**11, 10**14)


@dataclass(frozen=True)
class JobRecordEntry:
    """One recorded job: its id, its campaign and merchant when recorded, the 1-based line it came from, and
    when it was written to the record (``recorded_at``, UTC) when the line says."""

    issuance_job_id: str
    campaign_id: str | None
    merchant_id: str | None
    line: int
    recorded_at: datetime | None = None


def parse_recorded_at(value: object) -> datetime:
    """``recorded_at`` as a UTC datetime: ISO 8601 text with an offset, or epoch milliseconds (a JSON integer);
    a :class:`RewardsInputError` naming the field and the fix otherwise."""
    fix = 'write ISO 8601 with an offset ("2025-09-02T03:04:05Z") or epoch milliseconds (1756782245000)'
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = EPOCH_MS_RANGE
        if not low <= value < high:
            hint = " (epoch seconds? multiply by 1000)" if 0 < value < low else ""
            raise RewardsInputError(f"{RECORDED_AT_KEY} {value} is out of range{hint}; {fix}")
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        raise RewardsInputError(f"{RECORDED_AT_KEY} must be text or an integer, got {type(value).__name__}; {fix}")
    try:
        instant = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RewardsInputError(f"{RECORDED_AT_KEY} {value!r:.60} is not ISO 8601; {fix}") from None
    if instant.tzinfo is None:
        raise RewardsInputError(f"{RECORDED_AT_KEY} {value!r:.60} has no offset; {fix}")
    return instant.astimezone(UTC)


def record_path(value: object, field: str = "job_record") -> ObjectStoragePath:
    """An ObjectStoragePath from a URI string (``file:///x``, ``s3://b/k``, ``/abs/path``), an ObjectStoragePath
    or an :class:`~airflow.sdk.Asset` (its URI), by :func:`~.id_source.as_storage_path`; a
    :class:`RewardsInputError` naming ``field`` otherwise."""
    return as_storage_path(value.uri if isinstance(value, Asset) else value, field)


def make_parent_dirs(path: ObjectStoragePath) -> None:
    """Create the parent directories of a local path; object stores have none to create."""
    if local_path(path) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _entry(text: str, location: str, line: int) -> JobRecordEntry:
    """One non-blank line as an entry, or an error naming the file and line."""
    where = f"{location} line {line}"
    if not text.startswith("{"):
        try:
            return JobRecordEntry(require_path_id(text, "issuance_job_id"), None, None, line)
        except RewardsInputError as error:
            raise RewardsInputError(f"{where}: {error}; write one job id per line, or a JSON object") from None
    try:
        data: Any = json.loads(text)
    except ValueError as error:
        raise RewardsInputError(
            f'{where}: not valid JSON ({error.msg}); write {{"{JOB_ID_KEY}": "...", "{CAMPAIGN_ID_KEY}": "..."}}'
        ) from None
    if not isinstance(data, dict) or JOB_ID_KEY not in data:
        raise RewardsInputError(f"{where}: a JSON line needs the key {JOB_ID_KEY!r} (the job id Thanx returned)")
    try:
        job_id = require_path_id(data[JOB_ID_KEY], JOB_ID_KEY)
        campaign = data.get(CAMPAIGN_ID_KEY)
        merchant = data.get(MERCHANT_ID_KEY)
        recorded = data.get(RECORDED_AT_KEY)
        return JobRecordEntry(
            job_id,
            None if campaign is None else require_path_id(campaign, CAMPAIGN_ID_KEY),
            None if merchant is None else require_id(merchant, MERCHANT_ID_KEY),
            line,
            None if recorded is None else parse_recorded_at(recorded),
        )
    except RewardsInputError as error:
        raise RewardsInputError(f"{where}: {error}") from None


def _merged(seen: JobRecordEntry, again: JobRecordEntry) -> JobRecordEntry:
    """A job recorded again: its first line, the campaign and merchant it gains, the latest ``recorded_at``."""
    recorded = max((i for i in (seen.recorded_at, again.recorded_at) if i is not None), default=None)
    if seen.campaign_id is None and again.campaign_id is not None:
        return replace(
            seen, campaign_id=again.campaign_id, merchant_id=seen.merchant_id or again.merchant_id, recorded_at=recorded
        )
    return replace(seen, recorded_at=recorded)


def read_job_record(source: object, *, field: str = "job_record") -> list[JobRecordEntry]:
    """Every job of the record at ``source`` (see :func:`record_path`), first-seen order, duplicates merged.

    A missing file is an error (a record that was never written is not an empty one). The whole file is
    validated before this returns, so a bad line stops the teardown before any request.
    """
    path = record_path(source, field)
    location = display_location(path)
    if not path.exists():
        raise RewardsInputError(f"{field}: {location} does not exist; point it at the file the issuing process writes")
    entries: dict[str, JobRecordEntry] = {}
    with path.open("rt", encoding="utf-8", compression="infer") as lines:
        try:
            for number, raw in enumerate(lines, 1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                entry = _entry(text, location, number)
                seen = entries.get(entry.issuance_job_id)
                if seen is None:
                    entries[entry.issuance_job_id] = entry
                elif entry.campaign_id is not None and seen.campaign_id not in (None, entry.campaign_id):
                    raise RewardsInputError(
                        f"{location} line {number}: job {entry.issuance_job_id} is recorded for campaign "
                        f"{entry.campaign_id}, but line {seen.line} records it for {seen.campaign_id}; fix the record"
                    )
                else:
                    entries[entry.issuance_job_id] = _merged(seen, entry)
        except UnicodeDecodeError as error:
            raise RewardsInputError(f"{location}: not UTF-8 text ({error.reason}); write the record as UTF-8") from None
    return list(entries.values())


def iter_job_ids(source: object, *, field: str = "job_record") -> Iterator[str]:
    """The recorded job ids only, validated (see :func:`read_job_record`)."""
    for entry in read_job_record(source, field=field):
        yield entry.issuance_job_id


def append_job_record(
    destination: object, issuance_job_id: str, campaign_id: str, merchant_id: str | None = None
) -> None:
    """Append one entry (a JSON line) to the record at ``destination``: call it with the ``issuance_job``
    that ``POST /partner/campaigns/issue`` returned. The line carries ``recorded_at`` (now, UTC, milliseconds),
    so the nightly teardown revokes it even when its campaign's window already ran. Creates the file (and its
    parents on a local path)."""
    path = record_path(destination, "destination")
    entry: dict[str, str] = {
        JOB_ID_KEY: require_path_id(issuance_job_id, JOB_ID_KEY),
        CAMPAIGN_ID_KEY: require_path_id(campaign_id, CAMPAIGN_ID_KEY),
    }
    if merchant_id is not None:
        entry[MERCHANT_ID_KEY] = require_id(merchant_id, MERCHANT_ID_KEY)
    make_parent_dirs(path)
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    # Stamped just before the write: the line is in the record from (about) this instant on.
    entry[RECORDED_AT_KEY] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if previous and not previous.endswith("\n"):
        previous += "\n"
    # Object stores have no append: the record is rewritten whole (records are small: one line per job).
    path.write_text(previous + json.dumps(entry, separators=(",", ":")) + "\n", encoding="utf-8")
