"""Ids for the bulk operators, from a list or streamed from a file, validated and deduplicated with bounded memory.

An :class:`IdSource` is read in passes. :meth:`IdSource.scan` validates every id before anything is sent,
counts them and fingerprints the input; :meth:`IdSource.batches` then yields the unique ids in first-seen
order, in batches. A file is never held in memory: it is read in 256 KiB blocks, one pass at a time.

File formats (:data:`ID_FORMATS`), chosen from the suffix once a trailing ``.gz`` is removed, or by
``id_format``:

- ``lines`` (any other suffix): one id per line;
- ``csv`` (``.csv``): a header row, then one record per row; the ids are in the column named ``ids_column``;
- ``jsonl`` (``.jsonl``, ``.ndjson``): one JSON object per line; the ids are under the key ``ids_column``.

A ``.gz`` suffix means gzip, decompressed while streaming. Text is UTF-8; a leading byte-order mark is
ignored; lines end in ``\\n`` or ``\\r\\n``. Empty lines are skipped (in JSON Lines, whitespace-only lines
too, as JSON whitespace is not data); every other line must hold a valid id. Ids follow the list rules of
:mod:`airflow_provider_rewards.utils.validation` (:func:`require_uuid`, :func:`require_id`): an id with
surrounding whitespace or control characters is refused, never trimmed, and UUIDs are lowercased.

Duplicates are removed exactly, with bounded memory. :meth:`FileIdSource.scan` inserts every id into a
fixed-size blocked Bloom filter (16 MiB by default: 2**21 words of 64 bits, 3 bits per id in one word). An id
whose bits are all set already is a *candidate*: a true duplicate, or a false positive of the filter (about
1 % of the ids at 10**7 unique ids, 0.01 % at 10**5). A second pass counts the candidates exactly and keeps
only the ids that really occur more than once; :meth:`FileIdSource.batches` emits each of those once, at its
first occurrence. Memory is the filter plus the candidate set: it grows only with the number of duplicates
and false positives, never with the number of unique ids.
"""

from __future__ import annotations

import abc
import csv
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.validation import (
    MAX_ID_LENGTH,
    IdList,
    ValidatedIds,
    require_choice,
    require_id,
    require_uuid,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

ID_FORMATS = ("lines", "csv", "jsonl")
SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: Default Bloom filter size in bits (16 MiB); a power of two, at least 64.
BLOOM_BITS = 1 << 27
CHUNK_BYTES = 1 << 18
#: A line longer than this is refused (an id is at most 256 characters; a CSV row can be wider).
MAX_LINE_BYTES = 1 << 24

_BOM = b"\xef\xbb\xbf"
_HEX = b"0123456789abcdefABCDEF"
_ASCII_CONTROLS_BUT_NEWLINE = bytes([*range(0x0A), *range(0x0B, 0x20), 0x7F])
_BLANK_LINES = re.compile(rb"\n\n+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/]*)(.*)", re.DOTALL)
# Fast paths for one value (CSV cell, JSON string): anything they do not accept goes through require_*.
_UUID_VALUE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PLAIN_ID = re.compile(rf"[!-~](?:[ -~]{{0,{MAX_ID_LENGTH - 2}}}[!-~])?")
_SHOWN_COLUMNS = 20


def as_storage_path(value: object, field: str) -> ObjectStoragePath:
    """A str URI ("file:///x", "s3://b/k", "/abs/path") or an ObjectStoragePath; RewardsInputError naming field.

    A bare absolute path becomes ``file://<path>``. Relative paths and ``file://host/...`` (two slashes) are
    refused: a worker's working directory is arbitrary.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise RewardsInputError(
            f"{field} must be a URI string (file:///abs/path, s3://bucket/key) or an ObjectStoragePath, "
            f"got {type(value).__name__}"
        )
    if not value or value != value.strip():
        raise RewardsInputError(f"{field} must be a URI without surrounding whitespace, got {value!r:.80}")
    match = _SCHEME.fullmatch(value)
    if match is None:
        if not value.startswith("/"):
            raise RewardsInputError(
                f"{field} must be an absolute path or a URI such as file:///data/ids.csv or s3://bucket/ids.csv, "
                f"got {value!r:.80}"
            )
        value = f"file://{value}"
    elif match[1].lower() in {"file", "local"} and match[2]:
        raise RewardsInputError(
            f"{field} {value!r:.80} names a host; write three slashes for a local file: file:///{match[2]}{match[3]}"
        )
    try:
        return ObjectStoragePath(value)
    except ValueError as exc:  # e.g. "Unsupported filesystem: 'x'" from universal_pathlib
        shown = f"{match[1]}://{match[2].rpartition('@')[2]}{match[3]}" if match else value
        raise RewardsInputError(
            f"{field} {shown!r:.80} cannot be used ({exc}); use file:/// or a scheme an installed provider serves"
        ) from None


def local_path(path: ObjectStoragePath) -> str | None:
    """The local filesystem path of a ``file://`` ``ObjectStoragePath``; None for any other scheme."""
    return path.path if path.protocol in {"", "file", "local"} else None


def display_location(path: ObjectStoragePath) -> str:
    """`str(path)` without the conn-id userinfo (safe for logs, XCom, manifests, Asset URIs)."""
    text = str(path)
    match = _SCHEME.fullmatch(text)
    if match is None:
        return text
    return f"{match[1]}://{match[2].rpartition('@')[2]}{match[3]}"


def infer_format(path: ObjectStoragePath) -> tuple[str, bool]:
    """(format, gzip) from the path's suffixes: ``.gz`` means gzip, then see :data:`SUFFIX_FORMATS`."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    suffix = name[name.rfind(".") :] if "." in name else ""
    return SUFFIX_FORMATS.get(suffix, "lines"), compressed


@dataclass(frozen=True)
class SourceScan:
    """What :meth:`IdSource.scan` found; the fingerprint identifies the input for resumption."""

    location: str | None  # display_location of the file; None for a list source
    lines: int  # ids read (header and blank lines excluded)
    unique: int
    duplicates_dropped: int
    fingerprint: str  # sha256 hex of the file's raw bytes; for a list, of the ids joined by "\n"


class IdSource(abc.ABC):
    """Ids of one operator argument, read in passes: :meth:`scan` once, then :meth:`batches`."""

    field: str  # "reward_ids" | "external_ids" | "player_ids" (the operator's id argument)

    @abc.abstractmethod
    def scan(self) -> SourceScan:
        """First streaming pass: validate EVERY id, count, fingerprint. Raises RewardsInputError naming the
        file, the line number and the fix before anything is sent. Memory does not grow with N (see dedupe)."""

    @abc.abstractmethod
    def batches(self, batch_size: int) -> Iterator[tuple[int, list[str]]]:
        """(1-based batch number, unique ids in first-seen order). Needs scan() first. Deterministic: the
        same file and batch_size always give the same batches (resumption relies on it)."""


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RewardsInputError(f"batch_size must be a whole number of at least 1, got {batch_size!r:.60}")
    return batch_size


class ListIdSource(IdSource):
    """An operator's validated id list (:class:`IdList`) behind the :class:`IdSource` interface."""

    def __init__(self, ids: IdList) -> None:
        self.field = ids.field
        self.ids = ids

    def scan(self) -> SourceScan:
        """Counts and fingerprint of the list (already validated and deduplicated by ``prepare_id_list``)."""
        digest = hashlib.sha256()
        values = self.ids.ids
        step = 10_000
        for start in range(0, len(values), step):
            if start:
                digest.update(b"\n")
            digest.update("\n".join(values[start : start + step]).encode("utf-8"))
        unique = len(values)
        return SourceScan(
            location=None,
            lines=unique + self.ids.duplicates_dropped,
            unique=unique,
            duplicates_dropped=self.ids.duplicates_dropped,
            fingerprint=digest.hexdigest(),
        )

    def batches(self, batch_size: int) -> Iterator[tuple[int, list[str]]]:
        """Consecutive slices of the list (as ``ValidatedIds``, so hooks do not check them again)."""
        size = _check_batch_size(batch_size)
        values = self.ids.ids
        for number, start in enumerate(range(0, len(values), size), start=1):
            yield number, ValidatedIds(values[start : start + size])


class _HashingReader:
    """A binary reader that feeds every raw byte it returns into ``digest`` (the fingerprint is of the raw file)."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw = raw
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        return data

    def readable(self) -> bool:
        return True


class FileIdSource(IdSource):
    """Ids streamed from a file (lines, CSV, JSON Lines; gzip by ``.gz``); see the module docstring.

    :param path: an ObjectStoragePath or a URI string (see :func:`as_storage_path`).
    :param field: the operator's id argument (``reward_ids``, ``external_ids``, ``player_ids``); errors name
        the path argument, ``<field>_path``.
    :param uuid: ids are UUIDs (validated and lowercased) rather than opaque ids.
    :param ids_column: the CSV header name or JSON key holding the ids (required for csv and jsonl).
    :param id_format: one of :data:`ID_FORMATS`, to override the suffix.
    :param bloom_bits: size of the duplicate filter in bits (a power of two, at least 64); a smaller filter
        only means more candidates to check, never a wrong result.
    """

    def __init__(
        self,
        path: ObjectStoragePath | str,
        field: str,
        *,
        uuid: bool,
        ids_column: str | None = None,
        id_format: str | None = None,
        bloom_bits: int = BLOOM_BITS,
    ) -> None:
        self.field = field
        self.path_field = f"{field}_path"
        self.path = as_storage_path(path, self.path_field)
        self.location = display_location(self.path)
        self.uuid = uuid
        inferred, self.gzip = infer_format(self.path)
        self.id_format = inferred if id_format is None else require_choice(id_format, "id_format", ID_FORMATS)
        if self.id_format == "lines":
            if ids_column is not None:
                raise RewardsInputError(
                    f"ids_column is only for CSV and JSON Lines files, but {self.path_field} {self.location} is read "
                    "as one id per line; remove ids_column, or name the file .csv/.jsonl (or set id_format)"
                )
        elif not isinstance(ids_column, str) or not ids_column:
            what = "the CSV header name of the id column" if self.id_format == "csv" else "the JSON key of the ids"
            raise RewardsInputError(
                f"{self.path_field} {self.location} is a {self.id_format} file: set ids_column to {what}"
            )
        self.ids_column = ids_column
        if isinstance(bloom_bits, bool) or not isinstance(bloom_bits, int) or bloom_bits < 64:
            raise RewardsInputError(f"bloom_bits must be a power of two of at least 64, got {bloom_bits!r}")
        if bloom_bits & (bloom_bits - 1):
            raise RewardsInputError(f"bloom_bits must be a power of two of at least 64, got {bloom_bits}")
        self.bloom_bits = bloom_bits
        self._scan: SourceScan | None = None
        self._duplicated: frozenset[str] = frozenset()
        self.candidates = 0  # ids that hit the filter in the last scan (duplicates + false positives)

    # -- errors ---------------------------------------------------------------------------------------

    def _where(self, line: int) -> str:
        return f"{self.path_field} {self.location} line {line}"

    def _line_error(self, line: int, problem: str, fix: str = "fix or remove the line") -> RewardsInputError:
        return RewardsInputError(f"{self._where(line)}: {problem}; {fix}")

    def _check(self, value: object, line: int) -> str:
        """``value`` validated by the list rules, with the file and line in the message."""
        try:
            return require_uuid(value, self._where(line)) if self.uuid else require_id(value, self._where(line))
        except RewardsInputError as exc:
            text = str(exc)  # require_id names its own fix for some problems ("...; remove it")
            raise RewardsInputError(text if "; remove" in text else f"{text}; fix or remove the line") from None

    # -- reading --------------------------------------------------------------------------------------

    def _open(self) -> Any:
        try:
            return self.path.open("rb")
        except FileNotFoundError:
            raise RewardsInputError(
                f"{self.path_field} {self.location}: no such file; check the path (and that the export finished)"
            ) from None
        except IsADirectoryError:
            raise RewardsInputError(
                f"{self.path_field} {self.location} is a directory; name the file holding the ids"
            ) from None
        except ValueError as exc:
            if "No filesystem registered" not in str(exc):
                raise
            raise RewardsInputError(
                f"{self.path_field} {self.location}: no filesystem is installed for {self.path.protocol}://; "
                "install the Airflow provider serving it (e.g. apache-airflow-providers-amazon[s3fs] for s3://)"
            ) from None

    def _chunks(self, digest: Any) -> Iterator[tuple[int, bytes]]:
        """(lines before the chunk, whole lines ending in ``\\n``) of the decompressed file, BOM removed.

        Every raw byte of the file goes through ``digest``, also the bytes after the end of a gzip stream.
        """
        handle = self._open()
        try:
            reader = _HashingReader(handle, digest)
            stream: Any = gzip.GzipFile(fileobj=reader, mode="rb") if self.gzip else reader
            base, rest, first = 0, b"", True
            while True:
                try:
                    data = stream.read(CHUNK_BYTES)
                except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                    raise RewardsInputError(
                        f"{self.path_field} {self.location} is not a readable gzip file after line {base} ({exc}); "
                        "export it again, or remove the .gz suffix if it is not compressed"
                    ) from None
                if first and data:
                    first = False
                    if data.startswith(_BOM):
                        data = data[len(_BOM) :]
                if not data:
                    if rest:
                        yield base, rest + b"\n"
                    break
                data = rest + data if rest else data
                cut = data.rfind(b"\n") + 1
                if not cut:
                    if len(data) > MAX_LINE_BYTES:
                        raise self._line_error(
                            base + 1, f"the line is longer than {MAX_LINE_BYTES} bytes", "is this the right file?"
                        )
                    rest = data
                    continue
                chunk, rest = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
                yield base, chunk
                base += chunk.count(b"\n")
            while reader.read(CHUNK_BYTES):
                pass
        finally:
            handle.close()

    def _decode(self, base: int, chunk: bytes) -> str:
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = base + chunk.count(b"\n", 0, exc.start) + 1
            column = exc.start - (chunk.rfind(b"\n", 0, exc.start) + 1) + 1
            raise self._line_error(
                line,
                f"byte 0x{chunk[exc.start]:02x} at column {column} is not UTF-8 text",
                "save the file as UTF-8",
            ) from None

    def _fast_lines(self, chunk: bytes) -> list[str] | None:
        """The ids of a ``lines`` chunk if every line is plainly valid ASCII, checked in C; None otherwise."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        if b"\n\n" in chunk or chunk.startswith(b"\n"):
            chunk = _BLANK_LINES.sub(b"\n", chunk).lstrip(b"\n")
        if self.uuid:
            count = chunk.count(b"\n")
            if len(chunk) != 37 * count or chunk[36::37] != b"\n" * count:
                return None
            dashes = b"-" * count
            if any(chunk[offset::37] != dashes for offset in (8, 13, 18, 23)):
                return None
            if len(chunk.translate(None, _HEX)) != 5 * count:  # the 4 dashes and the newline: the rest is hex
                return None
            return chunk.lower().decode("ascii").split()
        if not chunk.isascii() or len(chunk.translate(None, _ASCII_CONTROLS_BUT_NEWLINE)) != len(chunk):
            return None
        if b" \n" in chunk or b"\n " in chunk or chunk.startswith(b" "):
            return None
        ids = chunk.decode("ascii").split("\n")
        ids.pop()  # the chunk ends with a newline
        if ids and max(map(len, ids)) > MAX_ID_LENGTH:
            return None
        return ids

    def _lines_ids(self, digest: Any) -> Iterator[list[str]]:
        for base, chunk in self._chunks(digest):
            ids = self._fast_lines(chunk)
            if ids is None:
                ids = []
                for offset, text in enumerate(self._decode(base, chunk).split("\n")):
                    if text.endswith("\r"):
                        text = text[:-1]
                    if text:
                        ids.append(self._check(text, base + offset + 1))
            if ids:
                yield ids

    def _value(self, value: object, line: int) -> str:
        """A CSV cell or JSON value as an id: C fast path for plain values, else the full rules."""
        if type(value) is str:
            if self.uuid:
                if _UUID_VALUE.fullmatch(value):
                    return value.lower()
            elif _PLAIN_ID.fullmatch(value):
                return value
        return self._check(value, line)

    def _text_lines(self, digest: Any) -> Iterator[str]:
        for base, chunk in self._chunks(digest):
            yield from io.StringIO(self._decode(base, chunk), newline="\n")

    def _csv_ids(self, digest: Any) -> Iterator[list[str]]:
        reader = csv.reader(self._text_lines(digest), strict=True)
        column, width = -1, 0
        ids: list[str] = []
        value = self._value
        try:
            for row in reader:
                if not row:
                    continue
                if width == 0:
                    column, width = self._csv_header(row, reader.line_num), len(row)
                    continue
                if len(row) != width:
                    raise self._line_error(
                        reader.line_num,
                        f"the row has {len(row)} fields, the header has {width}",
                        "fix the row's separators or quoting, or remove it",
                    )
                ids.append(value(row[column], reader.line_num))
                if len(ids) >= 8192:
                    yield ids
                    ids = []
        except csv.Error as exc:
            raise self._line_error(reader.line_num, f"not valid CSV ({exc})", "fix the row's quoting") from None
        if ids:
            yield ids

    def _csv_header(self, header: list[str], line: int) -> int:
        matches = [index for index, name in enumerate(header) if name == self.ids_column]
        if len(matches) == 1:
            return matches[0]
        shown = ", ".join(repr(name) for name in header[:_SHOWN_COLUMNS])
        more = f" and {len(header) - _SHOWN_COLUMNS} more" if len(header) > _SHOWN_COLUMNS else ""
        if matches:
            raise self._line_error(
                line, f"the header has {len(matches)} columns named {self.ids_column!r}", "rename all but one"
            )
        raise self._line_error(
            line,
            f"the header has no column {self.ids_column!r}; its columns are {shown}{more}",
            "set ids_column to the column holding the ids (names are case-sensitive)",
        )

    def _jsonl_ids(self, digest: Any) -> Iterator[list[str]]:
        key, loads, value = self.ids_column, json.loads, self._value
        for base, chunk in self._chunks(digest):
            ids = []
            for offset, text in enumerate(self._decode(base, chunk).split("\n")):
                if not text or text.isspace():
                    continue
                try:
                    record = loads(text)
                except ValueError as exc:
                    problem = getattr(exc, "msg", str(exc))
                    column = getattr(exc, "colno", None)
                    where = f" at column {column}" if column is not None else ""
                    raise self._line_error(base + offset + 1, f"not valid JSON ({problem}{where})") from None
                except RecursionError:
                    raise self._line_error(base + offset + 1, "JSON nested too deeply to read") from None
                if type(record) is not dict:
                    raise self._line_error(
                        base + offset + 1, f"a JSON {type(record).__name__}, not an object with the key {key!r}"
                    )
                try:
                    item = record[key]
                except KeyError:
                    keys = ", ".join(repr(name) for name in list(record)[:_SHOWN_COLUMNS]) or "none"
                    raise self._line_error(
                        base + offset + 1,
                        f"the object has no key {key!r}; its keys are {keys}",
                        "set ids_column to the key holding the ids (keys are case-sensitive), or fix the line",
                    ) from None
                ids.append(value(item, base + offset + 1))
            if ids:
                yield ids

    def _ids(self, digest: Any) -> Iterator[list[str]]:
        """One pass over the file: validated, normalised ids in file order, in lists of a few thousand."""
        if self.id_format == "csv":
            return self._csv_ids(digest)
        if self.id_format == "jsonl":
            return self._jsonl_ids(digest)
        return self._lines_ids(digest)

    def _changed(self) -> RewardsInputError:
        return RewardsInputError(
            f"{self.path_field} {self.location} changed while it was being read (its checksum differs between "
            "passes); do not overwrite the file during the run, then retry"
        )

    # -- passes ---------------------------------------------------------------------------------------

    def scan(self) -> SourceScan:
        """Validate every id, count them, fingerprint the raw bytes and find the duplicates exactly.

        Pass 1 fills the Bloom filter and collects candidates; pass 2 (only if there are candidates)
        counts them and keeps the ids occurring more than once. Raises RewardsInputError naming the file,
        the line, the problem and the fix.
        """
        digest = hashlib.sha256()
        words = array("Q", [0]) * (self.bloom_bits // 64)
        word_mask = len(words) - 1
        candidates: set[str] = set()
        add = candidates.add
        lines = 0
        for ids in self._ids(digest):
            lines += len(ids)
            for value, h in zip(ids, map(hash, ids), strict=True):
                # Three bits of one 64-bit word, all from the one hash: bits 0-17 pick the bits, 18+ the word.
                word = h >> 18 & word_mask
                bits = 1 << (h & 63) | 1 << (h >> 6 & 63) | 1 << (h >> 12 & 63)
                old = words[word]
                if old & bits == bits:
                    add(value)
                else:
                    words[word] = old | bits
        del words
        fingerprint = digest.hexdigest()
        self.candidates = len(candidates)
        duplicates = 0
        duplicated: frozenset[str] = frozenset()
        if candidates:
            counts = dict.fromkeys(candidates, 0)
            del candidates
            keys = counts.keys()
            again = hashlib.sha256()
            for ids in self._ids(again):
                if keys.isdisjoint(ids):
                    continue
                for value in ids:
                    if value in counts:
                        counts[value] += 1
            if again.hexdigest() != fingerprint:
                raise self._changed()
            duplicated = frozenset(value for value, count in counts.items() if count > 1)
            duplicates = sum(count - 1 for count in counts.values() if count > 1)
        self._duplicated = duplicated
        self._scan = SourceScan(
            location=self.location,
            lines=lines,
            unique=lines - duplicates,
            duplicates_dropped=duplicates,
            fingerprint=fingerprint,
        )
        return self._scan

    def batches(self, batch_size: int) -> Iterator[tuple[int, list[str]]]:
        """(1-based batch number, unique ids in first-seen order, as ``ValidatedIds``). Needs :meth:`scan` first.

        Each pass validates again and checks the fingerprint at the end: a file overwritten since the scan
        raises RewardsInputError (after the batches already yielded).
        """
        size = _check_batch_size(batch_size)
        if self._scan is None:
            raise RuntimeError("FileIdSource.batches() needs scan() first")
        expected = self._scan
        duplicated = self._duplicated
        emitted: set[str] = set()
        pending: list[str] = []
        number = total = 0
        digest = hashlib.sha256()
        for ids in self._ids(digest):
            if duplicated and not duplicated.isdisjoint(ids):
                kept = []
                for value in ids:
                    if value in duplicated:
                        if value in emitted:
                            continue
                        emitted.add(value)
                    kept.append(value)
                ids = kept
            pending.extend(ids)
            full = len(pending) - len(pending) % size
            for start in range(0, full, size):
                number += 1
                yield number, ValidatedIds(pending[start : start + size])
            total += full
            del pending[:full]
        if pending:
            number += 1
            total += len(pending)
            yield number, ValidatedIds(pending)
        if digest.hexdigest() != expected.fingerprint or total != expected.unique:
            raise self._changed()
