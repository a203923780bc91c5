"""Every input rule (ids, id lists, flags, numbers, choices); each error names the field and the fix."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_rewards.exceptions import RewardsInputError

UUID_EXAMPLE = "6d181739-a4c4-4932-a3de-0a980bfee707"
MAX_ID_LENGTH = 256
# Used with fullmatch: "$" alone would also accept a UUID followed by a newline.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: Control, format (bidi overrides, zero-width), line and paragraph separator characters.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
BOOL_TEXT = {"true": True, "True": True, "false": False, "False": False}
_MAX_SHOWN = 60


def _show(value: object) -> str:
    """A short, printable rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}... ({len(text)} characters)"


def _has_invisible(value: str) -> bool:
    """True if ``value`` holds a character of :data:`INVISIBLE_CATEGORIES` (ASCII ids take a fast path)."""
    if value.isascii():
        return _ASCII_CONTROL_RE.search(value) is not None
    return any(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in value)


def require_uuid(value: object, field: str) -> str:
    """Return ``value`` as a lowercase canonical UUID string, or raise naming ``field``."""
    if not isinstance(value, str):
        raise RewardsInputError(f"{field} must be a UUID string, got {type(value).__name__} {_show(value)}")
    if not _UUID_RE.fullmatch(value):
        raise RewardsInputError(
            f"{field} must be a UUID like {UUID_EXAMPLE} (8-4-4-4-12 hex digits), got {_show(value)}"
        )
    return value.lower()


def require_id(value: object, field: str) -> str:
    """Return ``value`` if it is a usable identifier string, or raise naming ``field``.

    Identifiers are sent exactly as given (HPGames signs and compares values verbatim), so a
    value with surrounding whitespace or control characters is refused rather than altered.
    """
    if not isinstance(value, str):
        raise RewardsInputError(f"{field} must be a string, got {type(value).__name__} {_show(value)}")
    if not value or not value.strip():
        raise RewardsInputError(f"{field} must not be empty")
    if value != value.strip():
        raise RewardsInputError(f"{field} has leading or trailing whitespace: {_show(value)}; remove it")
    if _has_invisible(value):
        raise RewardsInputError(
            f"{field} contains control, format or separator characters (such as \\x85, U+2028 or U+202E): "
            f"{_show(value)}; remove them"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. "\ud800" in JSON conf: it could never be sent as given
        raise RewardsInputError(f"{field} is not valid Unicode text (a lone surrogate): {_show(value)}") from None
    if len(value) > MAX_ID_LENGTH:
        raise RewardsInputError(f"{field} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    return value


def require_path_id(value: object, field: str) -> str:
    """Like :func:`require_id`, for ids placed in a URL path segment (they are escaped there too)."""
    text = require_id(value, field)
    if text in {".", ".."}:
        raise RewardsInputError(f"{field} cannot be {text!r}: it is a relative path, not an id")
    return text


def exactly_one(**named: object) -> str:
    """The name of the single argument that is not ``None``; raise if none or several are."""
    given = [name for name, value in named.items() if value is not None]
    names = " or ".join(named)
    if len(given) != 1:
        which = "neither was" if not given else f"{' and '.join(given)} were both"
        raise RewardsInputError(f"Pass exactly one of {names}; {which} given")
    return given[0]


def at_most_one(**named: object) -> str | None:
    """Return the name of the argument that is set, ``None`` if none; raise if several are."""
    given = [name for name, value in named.items() if value is not None]
    if len(given) > 1:
        raise RewardsInputError(f"Pass at most one of {' or '.join(named)}; {' and '.join(given)} were given")
    return given[0] if given else None


class ValidatedIds(list[str]):
    """Ids already checked and deduplicated (by :func:`prepare_id_list` or :func:`require_id_list`).

    Hooks send a ``ValidatedIds`` as it is, so an id list is validated once per run, not once per batch.
    """


def require_id_list(values: object, field: str, *, uuid: bool) -> ValidatedIds:
    """A hook's list argument: a non-empty sequence (not a string) of valid ids, duplicates dropped."""
    if isinstance(values, ValidatedIds):
        return values
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise RewardsInputError(f"{field} must be a list of ids, got {type(values).__name__}")
    ids = unique_ids(values, field, uuid=uuid)
    if not ids:
        raise RewardsInputError(f"{field} must not be empty")
    return ids


@dataclass(frozen=True)
class IdList:
    """An operator's validated id list: unique ids in first-seen order, and how many duplicates were dropped."""

    field: str
    ids: ValidatedIds
    duplicates_dropped: int


def prepare_id_list(value: object, field: str, *, uuid: bool) -> IdList:
    """Parse a list input (list, XCom sequence or JSON-array text), validate every item, drop duplicates.

    UUIDs (``uuid=True``) are lowercased, so the same id in two cases counts as a duplicate.
    """
    items = parse_id_list(value, field)
    ids = unique_ids(items, field, uuid=uuid)
    return IdList(field=field, ids=ids, duplicates_dropped=len(items) - len(ids))


def parse_id_list(value: object, field: str) -> list[Any]:
    """An operator's list input (a sequence, XCom values or JSON-array text) as a list; items are not checked."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise RewardsInputError(
                f"{field} must be a list or a JSON array string, got the string {_show(value)}; "
                "render lists from Jinja with '| tojson'"
            ) from None
        except RecursionError:
            raise RewardsInputError(f"{field} is a JSON array nested too deeply to read: {_show(value)}") from None
        if not isinstance(parsed, list):
            raise RewardsInputError(f"{field} must be a JSON array, got JSON {type(parsed).__name__}")
        return parsed
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return list(value)  # e.g. a lazy XCom sequence from a mapped upstream task
    raise RewardsInputError(f"{field} must be a list of ids, got {type(value).__name__} {_show(value)}")


def unique_ids(values: Iterable[object], field: str, *, uuid: bool) -> ValidatedIds:
    """Validate every item (as a UUID when ``uuid``) and drop duplicates, keeping first-seen order.

    An item equal to its checked form is kept as the caller's object, so large lists are not held twice.
    """
    check = require_uuid if uuid else require_id
    seen: dict[str, None] = {}
    for index, item in enumerate(values):
        key = check(item, f"{field}[{index}]")
        seen.setdefault(item if key == item else key, None)
    return ValidatedIds(seen)


def parse_bool(value: object, field: str) -> bool:
    """A templated boolean: ``True``/``False`` or the rendered text ``"true"``/``"false"``/``"True"``/``"False"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in BOOL_TEXT:
        return BOOL_TEXT[value]
    raise RewardsInputError(
        f"{field} must be True or False (a template may render 'true' or 'false'), got {type(value).__name__} "
        f"{value!r:.60}"
    )


def require_flag(value: object, field: str) -> bool:
    """A non-templated boolean argument; refuses truthy stand-ins such as ``"false"`` or ``1``."""
    if not isinstance(value, bool):
        raise RewardsInputError(f"{field} must be True or False, got {type(value).__name__} {value!r:.60}")
    return value


def require_choice(value: object, field: str, choices: Sequence[str]) -> str:
    """One of ``choices`` (exact, case-sensitive)."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise RewardsInputError(f"{field} must be one of {allowed}, got {value!r:.60}")
    return value


def require_number(value: object, field: str, *, minimum: float, maximum: float | None = None, unit: str = "") -> float:
    """A finite int or float between ``minimum`` and ``maximum`` (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RewardsInputError(f"{field} must be a number{unit and f' of {unit}'}, got {value!r:.60}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise RewardsInputError(f"{field} must be {bound}{unit and f' {unit}'}, got {value!r}")
    return float(value)


def require_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """An int (not a bool) between ``minimum`` and ``maximum`` (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RewardsInputError(
            f"{field} must be a whole number between {minimum} and {maximum}, got {type(value).__name__} {value!r:.60}"
        )
    if not minimum <= value <= maximum:
        raise RewardsInputError(f"{field} must be between {minimum} and {maximum}, got {value}")
    return value


def require_states(value: object, field: str) -> tuple[str, ...]:
    """A non-empty list of job state names (not one string, which would read as a list of letters)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise RewardsInputError(
            f"{field} must be a list of job states such as ('revoked',), got {type(value).__name__} {value!r:.60}"
        )
    if not all(isinstance(state, str) and state for state in value):
        raise RewardsInputError(f"{field} must hold job state names (non-empty strings), got {value!r:.60}")
    return tuple(value)
