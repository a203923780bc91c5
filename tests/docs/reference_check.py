"""The rule the docs tests enforce: every operator argument is documented, and is in the built reference.

An operator's arguments are the ``__init__`` parameters of every class in its MRO except Airflow's own
(``BaseOperator``, ``BaseSensorOperator``: Airflow documents those). Each must have a ``:param name:`` in the
docstring of the operator or of the class that defines it, and every documented name must be a real argument.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator

from airflow.sdk import BaseOperator

from airflow_provider_rewards.get_provider_info import get_provider_info

PARAM = re.compile(r"^\s*:param\s+(?:[^:\s]+\s+)?(\w+)\s*:", re.MULTILINE)
ROW_NAME = re.compile(r'<tr class="doc-section-item">\s*<td>\s*<code>(\w+)</code>')
SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def registered_operator_classes(kinds: tuple[str, ...] = ("operators", "sensors")) -> list[type]:
    """Every operator class defined in the modules ``get_provider_info()`` registers, bases included."""
    found: list[type] = []
    for kind in kinds:
        for entry in get_provider_info().get(kind, []):
            for module_name in entry["python-modules"]:
                module = importlib.import_module(module_name)
                for _, cls in inspect.getmembers(module, inspect.isclass):
                    if cls.__module__ == module_name and issubclass(cls, BaseOperator) and cls not in found:
                        found.append(cls)
    return found


def subclasses_among(cls: type, classes: list[type]) -> list[type]:
    """The classes of ``classes`` that extend ``cls`` (not ``cls`` itself)."""
    return [other for other in classes if other is not cls and issubclass(other, cls)]


def leaves(classes: list[type]) -> list[type]:
    """The classes of ``classes`` that none of the others extends: the operators users instantiate."""
    return [cls for cls in classes if not subclasses_among(cls, classes)]


def documented(cls: type) -> set[str]:
    """The names of the ``:param name:`` fields in ``cls``'s own docstring."""
    return set(PARAM.findall(vars(cls).get("__doc__") or ""))


def is_airflows(klass: type) -> bool:
    """Whether ``klass`` is Airflow's (``BaseOperator``, ``BaseSensorOperator``, ...) or Python's."""
    return klass.__module__.split(".")[0] in ("airflow", "builtins", "abc")


def arguments(cls: type) -> Iterator[tuple[str, type]]:
    """``(name, defining class)`` of every ``__init__`` parameter in the MRO that is not Airflow's own."""
    airflow_own = {
        name
        for klass in cls.__mro__
        if is_airflows(klass) and "__init__" in vars(klass)
        for name in inspect.signature(klass.__init__).parameters
    }
    seen: set[str] = set()
    for klass in cls.__mro__:
        if is_airflows(klass) or "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if name == "self" or parameter.kind in SKIPPED_KINDS or name in airflow_own or name in seen:
                continue
            seen.add(name)
            yield name, klass


def undocumented(cls: type, family: list[type] | None = None) -> list[str]:
    """A message per argument of ``cls`` without ``:param``, in its docstring or its defining class's.

    A base class of ``family`` (the other registered operators) may leave an argument to the operators
    that extend it instead, when every one of those without subclasses of its own documents it (that is
    where users read it).
    """
    heirs = leaves(subclasses_among(cls, family or []))

    def covered(name: str, owner: type) -> bool:
        if name in documented(cls) | documented(owner):
            return True
        return bool(heirs) and all(not undocumented_in(heir, name) for heir in heirs)

    return [
        f"{cls.__name__}: argument {name!r} (of {owner.__name__}.__init__) has no ':param {name}:' in the "
        f"docstring of {cls.__name__}" + ("" if owner is cls else f" or of {owner.__name__}")
        for name, owner in arguments(cls)
        if not covered(name, owner)
    ]


def undocumented_in(cls: type, name: str) -> bool:
    """Whether argument ``name`` of ``cls`` lacks a ``:param`` in ``cls``'s docstring and its defining class's."""
    owner = next(owner for argument, owner in arguments(cls) if argument == name)
    return name not in documented(cls) | documented(owner)


def unknown(cls: type) -> list[str]:
    """A message per ``:param name:`` in ``cls``'s docstring that is no argument of it (renamed or removed)."""
    real = {
        name
        for klass in cls.__mro__
        if "__init__" in vars(klass) and klass is not object
        for name in inspect.signature(klass.__init__).parameters
    }
    return [f"{cls.__name__}: ':param {name}:' documents no argument" for name in sorted(documented(cls) - real)]


def reference_section(html: str, cls: type) -> str:
    """The class docstring part of ``cls``'s entry in a built mkdocstrings page ('' if it is not there)."""
    path = f"{cls.__module__}.{cls.__qualname__}"
    start = html.find(f'id="{path}"')
    if start < 0:
        return ""
    following = [html.find(marker, start + 1) for marker in (f'id="{path}.', f'id="{cls.__module__}.')]
    ends = [index for index in following if index > 0]
    return html[start : min(ends)] if ends else html[start:]


def missing_from_reference(html: str, cls: type) -> list[str]:
    """A message per argument of ``cls`` absent from its parameter table in the built reference page."""
    section = reference_section(html, cls)
    if not section:
        return [f"{cls.__name__} is not in the built reference"]
    shown = set(ROW_NAME.findall(section))
    return [
        f"{cls.__name__}: argument {name!r} is not in its Parameters table in the built reference"
        for name, _ in arguments(cls)
        if name not in shown
    ]
