"""Operator input rules: what counts as "not rendered yet", and the checks of flags, numbers and id lists.

Operators validate twice: in ``__init__`` for every value that is already concrete (so a DAG with a
bad literal fails to parse), and in ``execute()`` after template rendering. :func:`is_unrendered`
decides which values must wait for rendering. Every check raises
:class:`~airflow_provider_rewards.exceptions.RewardsInputError` naming the field and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow.sdk import XComArg

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.utils.validation import parse_id_list, unique_ids

T = TypeVar("T")
JINJA_MARKERS = ("{{", "{%", "{#")
BOOL_TEXT = {"true": True, "True": True, "false": False, "False": False}


def has_jinja(text: str) -> bool:
    """True when ``text`` contains a Jinja expression, statement or comment opener."""
    return any(marker in text for marker in JINJA_MARKERS)


def is_unrendered(value: object) -> bool:
    """True for a value Airflow will still replace when it renders templates.

    That is a Jinja string, an ``XComArg`` (``upstream.output``), a callable template, or a
    list/tuple holding one of those. Such values are validated after rendering, in ``execute()``.
    """
    if isinstance(value, str):
        return has_jinja(value)
    if isinstance(value, XComArg) or callable(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_unrendered(item) for item in value)
    return False


class _Pending:
    """Marker for an input that cannot be checked before rendering."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()


def check_when_ready(value: object, check: Callable[[Any], T], *, rendered: bool) -> T:
    """``check(value)``, unless ``value`` is still a template before rendering: then :data:`PENDING`.

    After rendering (``rendered=True``) every value is checked; a leftover ``XComArg`` or callable
    means rendering did not happen and is refused by the check itself.
    """
    if not rendered and is_unrendered(value):
        return PENDING
    return check(value)


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


@dataclass(frozen=True)
class IdList:
    """A validated id list: unique ids in first-seen order, and how many duplicates were dropped."""

    field: str
    ids: list[str]
    duplicates_dropped: int


def prepare_id_list(value: object, field: str, *, uuid: bool) -> IdList:
    """Parse a list input (list, XCom sequence or JSON-array text), validate every item, drop duplicates.

    UUIDs (``uuid=True``) are lowercased, so the same id in two cases counts as a duplicate.
    """
    items = parse_id_list(value, field)
    ids = unique_ids(items, field, uuid=uuid)
    return IdList(field=field, ids=ids, duplicates_dropped=len(items) - len(ids))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def count_batches(total: int, size: int) -> int:
    """How many batches of at most ``size`` items ``total`` items make."""
    return -(-total // size)
