"""MkDocs hook: the reference pages, generated from what the provider registers (``get_provider_info()``).

Each page lists the modules of one kind that ``get_provider_info()`` names, so a module registered later
(e.g. a new operators module) is in the reference with no edit here, and a module not registered yet cannot
break the build. The connections page is the provider's own connection metadata as tables, so it cannot
drift from the forms Airflow shows; the changelog page is ``CHANGELOG.md``. Pages are generated in memory;
nothing is written into ``docs/``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from airflow_provider_rewards.get_provider_info import get_provider_info

#: page -> (title, provider-info key, modules documented on the page besides the registered ones)
PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "reference/hooks.md": (
        "Hooks",
        "hooks",
        ("airflow_provider_rewards.hooks.base", "airflow_provider_rewards.exceptions"),
    ),
    "reference/operators.md": ("Operators", "operators", ("airflow_provider_rewards.operators._base",)),
    "reference/sensors.md": ("Sensors", "sensors", ()),
    "reference/triggers.md": ("Triggers", "triggers", ()),
}
CONNECTIONS_PAGE = "reference/connections.md"
CHANGELOG_PAGE = "changelog.md"


def registered_modules(kind: str, info: dict[str, Any] | None = None) -> list[str]:
    """The python modules ``get_provider_info()`` registers under ``kind``, in order, each once."""
    modules: list[str] = []
    for entry in (info or get_provider_info()).get(kind, []):
        for module in entry.get("python-modules", []):
            if module not in modules:
                modules.append(module)
    return modules


def reference_page(title: str, kind: str, extra: tuple[str, ...]) -> str:
    """A page of ``::: module`` blocks: the registered modules, then the shared ones."""
    lines = [
        f"# {title}",
        "",
        f"Generated from the docstrings of every module the provider registers under `{kind}` in",
        "`get_provider_info()`: the code is the only source, so this page cannot drift from it.",
        "",
    ]
    for module in (*registered_modules(kind), *extra):
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def connections_page() -> str:
    """Every connection type's fields and extra keys, from the provider's ``connection-types`` metadata."""
    lines = [
        "# Connection fields",
        "",
        'Generated from `get_provider_info()["connection-types"]`, the metadata Airflow builds the',
        "connection forms from. The [Connections](../connections.md) guide explains them.",
        "",
    ]
    for conn in get_provider_info()["connection-types"]:
        behaviour = conn.get("ui-field-behaviour", {})
        labels = behaviour.get("relabeling", {})
        placeholders = behaviour.get("placeholders", {})
        lines += [
            f"## `{conn['connection-type']}`: {conn['hook-name']}",
            "",
            f"Hook: `{conn['hook-class-name']}`. Hidden fields: "
            + ", ".join(f"`{name}`" for name in behaviour.get("hidden-fields", [])),
            "",
            "| field | label | placeholder |",
            "|---|---|---|",
        ]
        for name in ("host", "login", "password"):
            lines.append(f"| `{name}` | {_cell(labels.get(name, name))} | {_cell(placeholders.get(name, ''))} |")
        lines += ["", "| extra key | label | default | meaning |", "|---|---|---|---|"]
        for name, field in conn.get("conn-fields", {}).items():
            default = field.get("schema", {}).get("default")
            shown = "" if default is None else f"`{default}`"
            lines.append(f"| `{name}` | {_cell(field['label'])} | {shown} | {_cell(field.get('description', ''))} |")
        lines.append("")
    return "\n".join(lines)


def init_parameters(kinds: tuple[str, ...] = ("operators", "sensors")) -> set[str]:
    """Every ``__init__`` parameter of every class in the MRO of the registered operators and sensors."""
    names: set[str] = set()
    for kind in kinds:
        for module_name in registered_modules(kind):
            for _, cls in inspect.getmembers(importlib.import_module(module_name), inspect.isclass):
                for klass in cls.__mro__:
                    if "__init__" in vars(klass):
                        names.update(inspect.signature(klass.__init__).parameters)
    return names


class InheritedParameterFilter(logging.Filter):
    """Drop griffe's "No matching parameter" warning for a name that is a real (inherited) ``__init__`` argument.

    An operator's docstring documents the arguments it takes through ``**kwargs`` from its base classes; griffe
    cannot see those in the signature. Any other name still warns (and fails the strict build), and
    ``tests/docs/test_reference.py`` checks every documented name against the real signatures.
    """

    pattern = re.compile(r"No matching parameter for '([^']+)'")

    def __init__(self, known: set[str]) -> None:
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        match = self.pattern.search(record.getMessage())
        return not (match and match.group(1) in self.known)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Install :class:`InheritedParameterFilter` on the logger griffe writes through under MkDocs."""
    logging.getLogger("mkdocs.plugins.griffe").addFilter(InheritedParameterFilter(init_parameters()))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated reference pages to the site's files (before the navigation is built)."""
    for src_uri, (title, kind, extra) in PAGES.items():
        files.append(File.generated(config, src_uri, content=reference_page(title, kind, extra)))
    files.append(File.generated(config, CONNECTIONS_PAGE, content=connections_page()))
    changelog = Path(config.config_file_path).parent / "CHANGELOG.md"  # the one changelog, at the root
    files.append(File.generated(config, CHANGELOG_PAGE, content=changelog.read_text(encoding="utf-8")))
    return files
