"""The per-reward record of a bulk run: what happened to every id, a checkpoint to resume from, and a summary.

A results directory (``results_path``) holds::

    manifest.json                 the run's inputs (operator, source location, fingerprint, batch_size, field,
                                  dry_run...) as the caller passed them, plus "started_at" (ISO 8601 UTC),
                                  "first_started_at", "resumed" and "settled_batches_at_start"
    checkpoint/batch-00000012.jsonl
                                  one part per settled batch, written under "<name>.tmp" and then renamed, so a
                                  part exists only once complete; its existence IS the checkpoint. Line 1:
                                  {"batch": 12, "ids": 500, "counts": {"cancelled": 498, ...}, "settled_at": ...};
                                  then that batch's lines, in the results.jsonl format below
    results.jsonl                 written by ResultsRecord.finish(): every id of the source exactly once, in batch
                                  order, one JSON object per line (ASCII, so no line separator can hide in a line):
        {"id": "...", "field": "reward_ids", "outcome": "cancelled", "batch": 12,
         "status_code": null, "vendor_code": null, "message": null}
    summary.json                  {"results_path", "results_file", "field", "ids", "batches", "settled_batches",
                                  "counts": {outcome: n for every outcome}, "started_at", "first_started_at",
                                  "finished_at", "summary": the caller's summary}

Outcomes (:class:`Outcome`): ``cancelled`` and ``already_cancelled`` are successes; ``refused`` carries the HTTP
status, vendor code and message; ``unconfirmed`` means the answer was lost and could not be settled;
``not_attempted`` means the id was never sent (the run stopped first).

Atomicity: every file is written under a ``.tmp`` name and then renamed. On ``file://`` the record is written
with plain buffered file I/O and ``os.replace`` (an atomic ``rename(2)``; fsspec's per-file overhead was half of
the client's time per batch); any other scheme goes through ``ObjectStoragePath`` (fsspec), where a rename
is a copy then a delete (fsspec ``mv``), which is fine here because a
left-over or half-written ``.tmp`` file is ignored and the final name appears only once the copy is complete.
Any fsspec backend that supports rename (``mv``) works. One task instance writes a results directory at a time.

Secrets: the files hold only ids, outcomes, HTTP statuses, vendor codes and the vendor messages the caller
passes (the transport has already scrubbed them), and the manifest and summary the caller passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, BinaryIO, overload

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.id_source import SourceScan, as_storage_path, display_location, local_path

if TYPE_CHECKING:
    from airflow.sdk import Asset, ObjectStoragePath

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.json"
CHECKPOINT_DIR = "checkpoint"
RESULTS_ASSET_ALIAS = "airflow-provider-rewards-results"
#: The manifest["input"] keys that must be equal for a run to resume another's checkpoint.
RESUME_KEYS = ("fingerprint", "batch_size", "field")

_PART_RE = re.compile(r"batch-(\d+)\.jsonl")
_UNSAFE_SEGMENT_RE = re.compile(r"[^A-Za-z0-9._=+:-]")
_OPEN_BATCH_MESSAGE = "the run stopped before this id was settled"
#: The start of a line written by result_line for a JSON-encoded id (a quote inside the id is escaped).
_ID_PREFIX = '{{"id": {}, '.format


class Outcome(StrEnum):
    """What happened to one id."""

    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already_cancelled"
    REFUSED = "refused"
    UNCONFIRMED = "unconfirmed"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True)
class IdOutcome:
    """One id's outcome, as it goes into the record."""

    id: str
    outcome: Outcome
    status_code: int | None = None
    vendor_code: str | None = None
    message: str | None = None  # vendor message or why (never a secret; already scrubbed by the transport)


class UniformOutcomes(Sequence[IdOutcome]):
    """The outcomes of ids that all had the same plain outcome (no status, vendor code or message).

    What a batch accepted whole settles to: the ids are kept as they are and an :class:`IdOutcome` is made only
    when one is asked for, so the hot path makes no Python object per id.
    """

    __slots__ = ("ids", "outcome")

    def __init__(self, ids: Sequence[str], outcome: Outcome) -> None:
        self.ids = ids
        self.outcome = Outcome(outcome)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> IdOutcome: ...

    @overload
    def __getitem__(self, index: slice) -> list[IdOutcome]: ...

    def __getitem__(self, index: int | slice) -> IdOutcome | list[IdOutcome]:
        if isinstance(index, slice):
            return [IdOutcome(value, self.outcome) for value in self.ids[index]]
        return IdOutcome(self.ids[index], self.outcome)

    def __iter__(self) -> Iterator[IdOutcome]:
        outcome = self.outcome
        return (IdOutcome(value, outcome) for value in self.ids)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same outcomes in the same order (a list of :class:`IdOutcome` included)."""
        if isinstance(other, UniformOutcomes):
            return self.outcome is other.outcome and list(self.ids) == list(other.ids)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them

    def __repr__(self) -> str:
        return f"UniformOutcomes({len(self.ids)} ids, {self.outcome.value})"

    def counts(self) -> Counter[Outcome]:
        """``{outcome: len(ids)}`` (empty for no ids)."""
        return Counter({self.outcome: len(self.ids)} if self.ids else {})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def result_line(outcome: IdOutcome, *, field: str, batch: int) -> str:
    """One results.jsonl line (with its newline) for ``outcome``; see the module docstring."""
    kind = Outcome(outcome.outcome)
    status = outcome.status_code
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise TypeError(f"status_code must be an int or None, got {status!r:.40}")
    return (
        f'{{"id": {encode_basestring_ascii(outcome.id)}, "field": {encode_basestring_ascii(field)}, '
        f'"outcome": "{kind.value}", "batch": {int(batch)}, "status_code": {"null" if status is None else status}, '
        f'"vendor_code": {_json_text(outcome.vendor_code)}, "message": {_json_text(outcome.message)}}}\n'
    )


def _line_key(line: str) -> tuple[str, str]:
    """(the JSON-encoded id, the outcome) of a line written by :func:`result_line`, without parsing it all.

    The encoded id escapes every quote, so the first ``, "field": `` after it ends it.
    """
    end = line.index(', "field": ', 7)
    start = line.index('"outcome": "', end) + 12
    return line[7:end], line[start : line.index('"', start)]


def _plain_tails(encoded_field: str, batch: int) -> dict[str, str]:
    """Per outcome value, the end of a line (after the id) with no status, vendor code or message."""
    return {
        kind.value: f', "field": {encoded_field}, "outcome": "{kind.value}", "batch": {int(batch)}, '
        '"status_code": null, "vendor_code": null, "message": null}\n'
        for kind in Outcome
    }


def _missing(value: str) -> IdOutcome:
    return IdOutcome(value, Outcome.NOT_ATTEMPTED, message=_OPEN_BATCH_MESSAGE)


def input_manifest(scan: SourceScan, *, field: str, batch_size: int, **extra: Any) -> dict[str, Any]:
    """The manifest's "input" section for ``scan``: the keys resumption compares, and the counts."""
    return {
        "field": field,
        "location": scan.location,
        "fingerprint": scan.fingerprint,
        "batch_size": batch_size,
        "lines": scan.lines,
        "unique": scan.unique,
        "duplicates_dropped": scan.duplicates_dropped,
        **extra,
    }


def _segment(value: str, name: str) -> str:
    text = _UNSAFE_SEGMENT_RE.sub("_", value)
    if not text or text in {".", ".."}:
        raise RewardsInputError(f"{name} {value!r:.60} cannot name a results directory; set results_path")
    return text


def default_results_path(
    location: str | ObjectStoragePath, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> ObjectStoragePath:
    """`<source>.results/<dag_id>/<run_id>/<task_id>[-<map_index>]/` (documented default for path sources).

    The source's scheme and connection are kept (the record is written where the ids were read); characters
    other than letters, digits and ``._=+:-`` in the ids become ``_``.
    """
    source = as_storage_path(location, "results location")
    task = task_id if map_index < 0 else f"{task_id}-{map_index}"
    root = source.with_name(f"{source.name}.results")
    return root / _segment(dag_id, "dag_id") / _segment(run_id, "run_id") / _segment(task, "task_id")


def asset_uri(path: ObjectStoragePath) -> str:
    """A URI for ``path`` without the connection id (a bare local path becomes ``file://``)."""
    if path.protocol in {"", "local"}:
        return f"file://{path.path}"
    return display_location(path)


class ResultsRecord:
    """A results directory: manifest.json, checkpoint/ (one part per settled batch), results.jsonl, summary.json.

    Layout and every line format documented in the module docstring. Use: :meth:`start` once, then
    :meth:`settle_batch` for each settled batch (and :meth:`note_open_batch` for those a stop interrupted),
    then :meth:`finish` in a ``finally``.
    """

    def __init__(self, root: ObjectStoragePath | str, *, field: str) -> None:
        self.root = as_storage_path(root, "results_path")
        self.field = field
        self.location = display_location(self.root)
        self._checkpoint = self.root / CHECKPOINT_DIR
        local_root = local_path(self.root)  # plain file I/O under it; None: through fsspec
        self._local_checkpoint = None if local_root is None else os.path.join(local_root, CHECKPOINT_DIR)
        self._settled: set[int] = set()  # batch numbers with a part (not their counts: memory ~ N/batch_size)
        self._open: dict[int, dict[str, IdOutcome]] = {}
        self._counts: Counter[Outcome] = Counter()
        self._started_at: str | None = None
        self._first_started_at: str | None = None

    @property
    def started(self) -> bool:
        """True once :meth:`start` has succeeded (before that, :meth:`finish` writes nothing)."""
        return self._started_at is not None

    @property
    def results_file(self) -> ObjectStoragePath:
        return self.root / RESULTS_FILE

    def _part(self, number: int) -> ObjectStoragePath:
        return self._checkpoint / _part_name(number)

    # -- storage ----------------------------------------------------------------------------------------

    def _write_atomic(self, path: ObjectStoragePath, data: bytes) -> None:
        """Write ``data`` to ``<path>.tmp``, then rename it to ``path`` (replacing any older file)."""
        with _atomic_writer(path) as handle:
            handle.write(data)

    def _read_text(self, path: ObjectStoragePath) -> str | None:
        local = local_path(path)
        if local is not None:
            return _read_local(local)
        try:
            with path.open("rb") as handle:
                return handle.read().decode("utf-8")
        except FileNotFoundError:
            return None

    def _read_part(self, number: int) -> str | None:
        """A part's text (None if there is none); local parts are read without building a path object."""
        if self._local_checkpoint is None:
            return self._read_text(self._part(number))
        return _read_local(os.path.join(self._local_checkpoint, _part_name(number)))

    def _parts(self) -> dict[int, ObjectStoragePath]:
        """The complete checkpoint parts by batch number (``.tmp`` files are ignored)."""
        try:
            entries = list(self._checkpoint.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return {}
        parts = {}
        for entry in entries:
            match = _PART_RE.fullmatch(entry.name)
            if match:
                parts[int(match[1])] = entry
        return parts

    def _part_counts(self, path: ObjectStoragePath) -> Counter[Outcome] | None:
        text = self._read_text(path)
        try:
            header = json.loads(text.partition("\n")[0]) if text else None
            return Counter({Outcome(name): int(count) for name, count in header["counts"].items()})
        except (ValueError, TypeError, KeyError):
            log.warning("Ignoring unreadable checkpoint part %s; its batch will be sent again", path.name)
            return None

    def _remove(self, path: ObjectStoragePath) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # -- the run ----------------------------------------------------------------------------------------

    def start(self, manifest: Mapping[str, Any], *, resume: bool) -> dict[int, Counter[Outcome]]:
        """Write manifest.json (start time added). With resume=True and a checkpoint of the SAME input
        (manifest["input"]["fingerprint"], ["batch_size"], ["field"] equal), return {batch number: outcome
        counts} of the batches already settled; a different input raises RewardsInputError naming
        results_path and the fix (a new results_path, or resume=False). resume=False discards the old checkpoint.

        Nothing is written or removed before the input check passes.
        """
        new_input = manifest.get("input")
        if not isinstance(new_input, Mapping) or any(key not in new_input for key in RESUME_KEYS):
            raise ValueError(f'manifest["input"] must be a mapping with the keys {", ".join(RESUME_KEYS)}')
        old_text = self._read_text(self.root / MANIFEST_FILE)
        parts = self._parts()
        settled: dict[int, Counter[Outcome]] = {}
        first_started_at = None
        if resume and (old_text is not None or parts):
            old = self._old_manifest(old_text)
            old_input = old.get("input") if isinstance(old.get("input"), Mapping) else {}
            differences = [
                f"{key} {old_input.get(key)!r:.20} before, {new_input[key]!r:.20} now"
                for key in RESUME_KEYS
                if old_input.get(key) != new_input[key]
            ]
            if differences:
                raise RewardsInputError(
                    f"results_path {self.location} holds the record of a different input ({'; '.join(differences)}); "
                    "pass a new results_path for this input, or resume=False to discard that record and start over"
                )
            first_started_at = old.get("first_started_at") or old.get("started_at")
            for number, path in sorted(parts.items()):
                counts = self._part_counts(path)
                if counts is not None:
                    settled[number] = counts
        else:
            for path in parts.values():
                self._remove(path)
            for name in (RESULTS_FILE, SUMMARY_FILE):
                self._remove(self.root / name)
        self.root.mkdir(parents=True, exist_ok=True)
        self._checkpoint.mkdir(parents=True, exist_ok=True)
        started_at = _now()
        document = {
            **manifest,
            "started_at": started_at,
            "first_started_at": first_started_at or started_at,
            "resumed": bool(settled),
            "settled_batches_at_start": len(settled),
        }
        self._write_atomic(self.root / MANIFEST_FILE, _dump(document))
        self._settled = set(settled)
        self._open = {}
        self._started_at, self._first_started_at = started_at, first_started_at or started_at
        return settled

    def _old_manifest(self, text: str | None) -> dict[str, Any]:
        if text is None:
            raise RewardsInputError(
                f"results_path {self.location} has checkpoint parts but no {MANIFEST_FILE}, so they cannot be "
                "matched to this input; pass a new results_path, or resume=False to discard them"
            )
        try:
            old = json.loads(text)
        except ValueError:
            old = None
        if not isinstance(old, dict):
            raise RewardsInputError(
                f"results_path {self.location}: {MANIFEST_FILE} is not a JSON object, so the checkpoint cannot be "
                "matched to this input; pass a new results_path, or resume=False to discard it"
            )
        return old

    def settle_batch(self, number: int, outcomes: Sequence[IdOutcome]) -> None:
        """Atomically write the batch's part (tmp name, then rename). Its existence IS the checkpoint:
        a settled batch is never sent again on resume."""
        if not self.started:
            raise RuntimeError("ResultsRecord.settle_batch() needs start() first")
        text, counts = self._render(number, outcomes)
        header = {
            "batch": number,
            "ids": len(outcomes),
            "counts": {kind.value: counts[kind] for kind in Outcome if counts[kind]},
            "settled_at": _now(),
        }
        data = json.dumps(header).encode("ascii") + b"\n" + text.encode("ascii")
        if self._local_checkpoint is not None:
            _write_local_atomic(os.path.join(self._local_checkpoint, _part_name(number)), data)
        else:
            self._write_atomic(self._part(number), data)
        self._settled.add(number)
        self._open.pop(number, None)

    def _render(self, number: int, outcomes: Iterable[IdOutcome]) -> tuple[str, Counter[Outcome]]:
        """The results lines of ``outcomes`` in batch ``number``, and their counts (plain outcomes fast)."""
        tails = _plain_tails(encode_basestring_ascii(self.field), number)
        encode = encode_basestring_ascii
        if isinstance(outcomes, UniformOutcomes):  # a batch accepted whole: one join, no object per id
            if not outcomes.ids:
                return "", Counter()
            tail = tails[outcomes.outcome.value]
            text = '{"id": ' + (tail + '{"id": ').join(map(encode, outcomes.ids)) + tail
            return text, outcomes.counts()
        counts = dict.fromkeys(tails, 0)
        out = []
        for outcome in outcomes:
            kind = outcome.outcome
            tail = tails.get(kind)
            if (
                tail is not None
                and outcome.status_code is None
                and outcome.vendor_code is None
                and outcome.message is None
            ):
                out.append('{"id": ' + encode(outcome.id) + tail)
            else:
                out.append(result_line(outcome, field=self.field, batch=number))  # checks the outcome
            counts[kind] += 1
        return "".join(out), Counter({Outcome(kind): count for kind, count in counts.items() if count})

    def note_open_batch(self, number: int, outcomes: Sequence[IdOutcome]) -> None:
        """What is known of a batch that could not be settled (the run stopped in it): kept for the final
        file, NOT a checkpoint (resume sends it again)."""
        self._open[number] = {outcome.id: outcome for outcome in outcomes}

    def finish(self, source_batches: Iterable[tuple[int, list[str]]], summary: Mapping[str, Any]) -> str:
        """Write results.jsonl (every id exactly once, in batch order: settled parts, else the open batch's
        known outcomes + not_attempted for its other ids, else not_attempted) and summary.json (counts per
        outcome + summary + end time). Streams: memory does not grow with N. Returns the results file's
        display location. Called in a finally, also when the task fails.

        If :meth:`start` did not succeed (e.g. it refused another input's checkpoint), nothing is written:
        the directory may hold another run's record.
        """
        results = self.results_file
        if not self.started:
            log.warning("Results record %s was not started; nothing written", self.location)
            return display_location(results)
        counts: Counter[Outcome] = Counter()  # keyed by the Outcome values (a StrEnum hashes like its value)
        encoded_field = encode_basestring_ascii(self.field)
        batches = ids_total = 0
        with _atomic_writer(results, buffering=1 << 20) as handle:
            for number, ids in source_batches:
                batches += 1
                ids_total += len(ids)
                if number in self._settled:
                    text = self._settled_lines(number, ids, counts)
                elif number in self._open:
                    known = self._open[number]
                    text, batch_counts = self._render(number, (known.get(value) or _missing(value) for value in ids))
                    counts.update(batch_counts)
                else:
                    tail = _plain_tails(encoded_field, number)[Outcome.NOT_ATTEMPTED]
                    text = "".join(['{"id": ' + encode_basestring_ascii(value) + tail for value in ids])
                    counts[Outcome.NOT_ATTEMPTED] += len(ids)
                handle.write(text.encode("ascii"))
        self._counts = Counter({Outcome(kind): count for kind, count in counts.items()})
        document = {
            "results_path": self.location,
            "results_file": display_location(results),
            "field": self.field,
            "ids": ids_total,
            "batches": batches,
            "settled_batches": len(self._settled),
            "counts": {kind.value: counts[kind] for kind in Outcome},
            "started_at": self._started_at,
            "first_started_at": self._first_started_at,
            "finished_at": _now(),
            "summary": dict(summary),
        }
        self._write_atomic(self.root / SUMMARY_FILE, _dump(document))
        return display_location(results)

    def _settled_lines(self, number: int, ids: list[str], counts: Counter[Outcome]) -> str:
        """The lines of a settled batch from its part, one per id of ``ids`` (a missing one: not_attempted).

        Fast path: the part lists exactly ``ids`` in order (checked line by line with builtins only), so its body
        is copied and its outcomes counted in C (a quote inside a JSON string is escaped, so ``"outcome": "x"``
        only occurs as the field itself).
        """
        _, _, body = (self._read_part(number) or "").partition("\n")
        lines = body.split("\n")
        tail = lines.pop() if lines else ""
        encode = encode_basestring_ascii
        if not tail and len(lines) == len(ids) and all(map(str.startswith, lines, map(_ID_PREFIX, map(encode, ids)))):
            for kind in Outcome:
                counts[kind] += body.count(f'"outcome": "{kind.value}"')
            return body
        known: dict[str, tuple[str, str]] = {}
        for line in (*lines, tail):
            if line:
                key, kind = _line_key(line)
                known[key] = (line, kind)
        out = []
        for value in ids:
            found = known.pop(encode(value), None)
            if found is None:
                log.warning("Checkpoint part of batch %d has no outcome for one of its ids", number)
                out.append(result_line(_missing(value), field=self.field, batch=number))
                counts[Outcome.NOT_ATTEMPTED] += 1
            else:
                out.append(found[0] + "\n")
                counts[found[1]] += 1  # type: ignore[index]  # the value; equal to its Outcome
        return "".join(out)

    def counts(self) -> Counter[Outcome]:
        """Totals per outcome written by the last :meth:`finish` (empty before)."""
        return Counter(self._counts)

    def results_asset(self) -> Asset:
        """The Asset of results.jsonl; its name and URI carry no connection id (emit it through the alias)."""
        from airflow.sdk import Asset

        uri = asset_uri(self.results_file)
        return Asset(name=uri, uri=uri)


def _part_name(number: int) -> str:
    return f"batch-{number:08d}.jsonl"


@contextlib.contextmanager
def _local_atomic_writer(path: str, buffering: int = -1) -> Iterator[BinaryIO]:
    """A handle on ``<path>.tmp`` (plain buffered file I/O), ``os.replace``d to ``path`` once written (atomic)."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb", buffering=buffering) as handle:
        yield handle
    os.replace(tmp, path)


@contextlib.contextmanager
def _atomic_writer(path: ObjectStoragePath, buffering: int = -1) -> Iterator[BinaryIO]:
    """A handle on ``<path>.tmp``, renamed to ``path`` once written: by :func:`_local_atomic_writer` on a local
    path, else through fsspec (a rename there is a copy then a delete). A failed write renames nothing."""
    local = local_path(path)
    if local is not None:
        with _local_atomic_writer(local, buffering) as handle:
            yield handle
        return
    tmp = path.with_name(f"{path.name}.tmp")
    with tmp.open("wb") as handle:
        yield handle
    tmp.rename(path)


def _write_local_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``<path>.tmp`` with plain file I/O, then ``os.replace`` it to ``path`` (atomic)."""
    with _local_atomic_writer(path) as handle:
        handle.write(data)


def _read_local(path: str) -> str | None:
    """A local file's text, or None when there is none."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        return None


def _dump(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, default=str) + "\n").encode("utf-8")
