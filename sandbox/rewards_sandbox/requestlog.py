"""What the request log may say about a request body: batch sizes and digests, never ids or secrets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

#: HPGames actions whose id list the log summarises, and the fields holding it.
BATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "rewards/bulkCancel": ("ids", "externalIds"),
    "rewards/bulkCancelByQuery": ("playerIds",),
}
#: Body fields never logged, even with ``log_bodies``.
REDACTED_FIELDS = ("hash",)


def id_set_digest(ids: Iterable[Any], *, lower: bool = False) -> str:
    """A stable digest of a set of ids: order and repeats do not matter (``lower``: UUID case neither).

    ``sha256:`` + hex of SHA-256 over the sorted distinct ids joined by newlines.
    """
    distinct = {str(i).lower() if lower else str(i) for i in ids}
    return "sha256:" + hashlib.sha256("\n".join(sorted(distinct)).encode()).hexdigest()


def _json_body(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None."""
    try:
        value = json.loads(body) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def body_facts(action: str | None, body: bytes, *, log_bodies: bool) -> dict[str, Any]:
    """Log fields of one request body: ``batch_field``/``batch_size``/``batch_digest`` for bulk
    actions, and ``body`` (``hash`` redacted) when ``log_bodies``.
    """
    facts: dict[str, Any] = {}
    fields = BATCH_FIELDS.get(action or "")
    parsed = _json_body(body) if fields or log_bodies else None
    if fields and parsed is not None:
        for name in fields:
            ids = parsed.get(name)
            if isinstance(ids, list):
                facts["batch_field"] = name
                facts["batch_size"] = len(ids)
                facts["batch_digest"] = id_set_digest(ids, lower=name == "ids")
                break
    if log_bodies:
        if parsed is None:
            facts["body"] = None if not body else f"<{len(body)} bytes, not a JSON object>"
        else:
            facts["body"] = {k: ("<redacted>" if k in REDACTED_FIELDS else v) for k, v in parsed.items()}
    return facts
