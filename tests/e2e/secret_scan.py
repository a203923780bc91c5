"""Find planted secrets in texts, JSON-able values and whole directory trees.

Findings name the secret (by its label, e.g. ``thanx access token``) and the place, with some context
in which the secret itself is replaced by ``<label>``, so a failing assertion does not repeat it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MIN_SECRET_LENGTH = 12
CONTEXT = 60


def _check(secrets: Mapping[str, str]) -> None:
    short = [label for label, secret in secrets.items() if len(secret) < MIN_SECRET_LENGTH]
    if not secrets or short:
        raise ValueError(f"secrets must be distinctive (>= {MIN_SECRET_LENGTH} characters); too short: {short}")


def find_leaks(secrets: Mapping[str, str], sources: Mapping[str, str | bytes]) -> list[str]:
    """Every occurrence of every secret (``{label: value}``) in ``sources`` (``{where: content}``)."""
    _check(secrets)
    leaks = []
    for where, content in sources.items():
        text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
        for label, secret in secrets.items():
            start = text.find(secret)
            while start != -1:
                around = text[max(0, start - CONTEXT) : start + len(secret) + CONTEXT]
                leaks.append(f"{label} in {where}: ...{around.replace(secret, f'<{label}>')!r}...")
                start = text.find(secret, start + 1)
    return leaks


def as_text(value: Any) -> str:
    """A JSON rendering of any value (non-JSON parts by ``repr``), for scanning XCom, fields, kwargs."""
    return json.dumps(value, default=repr, sort_keys=True)


def files_under(*roots: Path) -> dict[str, bytes]:
    """``{path: bytes}`` of every regular file below ``roots`` (a root may also be a single file)."""
    found: dict[str, bytes] = {}
    for root in roots:
        paths: Iterable[Path] = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found
