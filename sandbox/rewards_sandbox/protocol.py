"""Transport-neutral request/response types shared by the HTTP layer and the vendor APIs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApiRequest:
    """One parsed HTTP request; ``headers`` keys are lower-case, ``segments`` are URL-decoded once."""

    method: str
    path: str
    segments: tuple[str, ...]
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return a header value by case-insensitive name."""
        return self.headers.get(name.lower())

    def has_json_content_type(self) -> bool:
        """Whether the Content-Type header says ``application/json``."""
        value = self.header("content-type") or ""
        return value.split(";", 1)[0].strip().lower() == "application/json"


@dataclass
class ApiResponse:
    """A response to write: ``body`` is sent as is; ``content_type`` None means no body.

    With ``chunks`` set, the body is those byte chunks instead, sent with chunked transfer
    encoding as they are produced (``body`` is ignored).
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None

    @classmethod
    def stream(cls, status: int, chunks: Iterable[bytes], content_type: str = "application/json") -> ApiResponse:
        """Build a streamed (chunked) response."""
        return cls(status=status, content_type=content_type, chunks=chunks)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> ApiResponse:
        """Build a JSON response."""
        return cls(
            status=status,
            body=json.dumps(payload, separators=(",", ":")).encode(),
            content_type="application/json",
            headers=dict(headers or {}),
        )

    @classmethod
    def empty(cls, status: int = 200) -> ApiResponse:
        """Build a response without body (``Content-Length: 0``)."""
        return cls(status=status)


class BodyError(ValueError):
    """The request body is not a JSON object."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body as a JSON object; an empty body is ``{}``."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(f"Malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise BodyError("The JSON body must be an object")
    return value
