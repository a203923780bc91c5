"""Input validation shared by hooks and operators.

Every check raises :class:`~airflow_provider_rewards.exceptions.RewardsInputError` whose message
names the offending field (with its index for list items), says what was wrong and how to fix it.
Checks run before any HTTP request is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from airflow_provider_rewards.exceptions import RewardsInputError

UUID_EXAMPLE = "6d181739-a4c4-4932-a3de-0a980bfee707"
MAX_ID_LENGTH = 256
# Used with fullmatch: "$" alone would also accept a UUID followed by a newline.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_SHOWN = 60


def _show(value: object) -> str:
    """A short, printable rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}... ({len(text)} characters)"


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
    if _CONTROL_RE.search(value):
        raise RewardsInputError(f"{field} contains control characters: {_show(value)}")
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
    """Return the name of the single argument that is set; raise if none or several are.

    ``exactly_one(reward_id=a, external_id=b)`` returns ``"reward_id"`` when only ``a`` is given.
    """
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


def parse_id_list(value: object, field: str) -> list[Any]:
    """Turn an operator's list input into a Python list, without validating the items.

    Accepts a list, tuple or set (e.g. from XCom), or a JSON array string (e.g. rendered from a
    Jinja template such as ``"{{ params.reward_ids | tojson }}"``).
    """
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


def unique_ids(values: Iterable[object], field: str, *, uuid: bool) -> list[str]:
    """Validate every item (as a UUID when ``uuid``) and drop duplicates, keeping first-seen order.

    Where the check returns a string equal to the item (a UUID already in lower case), the caller's
    string object is kept rather than the check's copy, so a list of 1,000,000 ids is not held twice
    while a task runs (about 80 MB less at that size; see ``docs/benchmarks.md``).
    """
    check = require_uuid if uuid else require_id
    seen: dict[str, None] = {}
    for index, item in enumerate(values):
        key = check(item, f"{field}[{index}]")
        seen.setdefault(item if key == item else key, None)
    return list(seen)
