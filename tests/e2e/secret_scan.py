"""Find planted secrets in texts, JSON-able values, whole directory trees and a PostgreSQL metadata database.

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


# -------------------------------------------------------------------------------------------------
# PostgreSQL metadata database (the distributed e2e test)
# -------------------------------------------------------------------------------------------------
#: Column types whose values may carry text: every such column of every table is dumped.
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")
#: The trigger table's kwargs column holds a Fernet token; :func:`decrypted_triggers` opens it.
TRIGGER_QUERY = "SELECT id, classpath, kwargs FROM trigger ORDER BY id"


def _cell(value: Any) -> str:
    if isinstance(value, memoryview | bytes):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else as_text(value)


def postgres_text_columns(cursor: Any, schema: str = "public") -> dict[str, str]:
    """``{"<table>.<column>": all its non-null values, one per line}`` for every text-like column
    (:data:`TEXT_TYPES`) of every table in ``schema``, through a DB-API ``cursor`` (psycopg2).

    Covers XCom values, rendered template fields, trigger rows, ``next_kwargs``, DAG run conf, the audit
    log and every table no one thought of."""
    cursor.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND data_type = ANY(%s) ORDER BY table_name, ordinal_position",
        (schema, list(TEXT_TYPES)),
    )
    columns = list(cursor.fetchall())
    found: dict[str, str] = {}
    for table, column in columns:
        cursor.execute(f'SELECT "{column}" FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL')
        found[f"{table}.{column}"] = "\n".join(_cell(row[0]) for row in cursor.fetchall())
    return found


def decrypted_triggers(cursor: Any, fernet_key: str) -> dict[str, str]:
    """``{"trigger <id> <classpath> (encrypted|plain)": kwargs}`` of every trigger row. Airflow stores the
    kwargs Fernet-encrypted (a scan of the raw column alone could never see a secret in them), except rows
    that hold plain JSON (Airflow reads those as they are: ``models/trigger.py::_decrypt_kwargs``)."""
    from cryptography.fernet import Fernet

    fernet = Fernet(fernet_key.encode())
    cursor.execute(TRIGGER_QUERY)
    found = {}
    for trigger_id, classpath, stored in cursor.fetchall():
        text = _cell(stored)
        if text.startswith("{"):
            found[f"trigger {trigger_id} {classpath} (plain)"] = text
        else:
            found[f"trigger {trigger_id} {classpath} (encrypted)"] = fernet.decrypt(text.encode()).decode()
    return found
