"""What counts as "not rendered yet", and checking a value only once it is concrete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import XComArg

T = TypeVar("T")
JINJA_MARKERS = ("{{", "{%", "{#")


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


class _Unrendered:
    """Marker for an input that cannot be checked before rendering."""

    def __repr__(self) -> str:
        return "UNRENDERED"


UNRENDERED: Any = _Unrendered()


def check_when_ready(value: object, check: Callable[[Any], T], *, rendered: bool) -> T:
    """``check(value)``, unless ``value`` is still a template before rendering: then :data:`UNRENDERED`.

    After rendering (``rendered=True``) every value is checked; a leftover ``XComArg`` or callable
    means rendering did not happen and is refused by the check itself.
    """
    if not rendered and is_unrendered(value):
        return UNRENDERED
    return check(value)
