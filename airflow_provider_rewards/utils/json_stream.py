"""Read a JSON array of objects incrementally, one object at a time, from chunks of bytes.

``rewards/readAll`` documents no pagination, so its answer can be as large as the merchant's
reward list. :func:`iter_array_objects` holds at most one item (plus one chunk) in memory:
the caller keeps what it needs of each object and drops the rest. Arrays may nest (the
vendor's documented example is ``[[{...}]]``); every object at any array depth is yielded.
Each item is decoded by the standard library's C decoder; only the array punctuation between
items is scanned in Python.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

#: The largest single array item accepted, in characters; a bigger one is an error, not a memory risk.
MAX_ITEM_CHARS = 1_000_000
_WHITESPACE = frozenset(" \t\r\n")
_DECODER = json.JSONDecoder()


class JsonStreamError(ValueError):
    """The body is not a JSON array of objects (malformed, truncated, too large an item, or another value).

    ``value`` holds the decoded top-level value when the body was valid JSON but not an array
    (e.g. an error object ``{"errorCode": ..., "errorText": ...}``), else ``None``.
    """

    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class _Buffer:
    """Text decoded from the chunks so far, minus what was consumed."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._ended = False
        self.text = ""
        self.position = 0

    def more(self) -> bool:
        """Append the next non-empty piece of text; False once the body is exhausted."""
        while not self._ended:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                text = self._utf8.decode(b"", final=True)
            else:
                text = self._utf8.decode(chunk)
            if text:
                self.text = self.text[self.position :] + text
                self.position = 0
                return True
        return False

    def next_char(self) -> str | None:
        """The next non-whitespace character (not consumed), or None at the end of the body."""
        while True:
            while self.position < len(self.text) and self.text[self.position] in _WHITESPACE:
                self.position += 1
            if self.position < len(self.text):
                return self.text[self.position]
            if not self.more():
                return None

    def decode_value(self, max_chars: int) -> Any:
        """Decode and consume one JSON value starting here, reading more chunks as needed."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.position)
            except json.JSONDecodeError as error:
                if len(self.text) - self.position > max_chars:
                    raise JsonStreamError(f"an array item is longer than {max_chars} characters") from None
                if not self.more():
                    raise JsonStreamError(f"truncated or malformed JSON: {error.msg}") from None
                continue
            # A number or literal ending exactly at the buffer's end may continue in the next chunk.
            if end == len(self.text) and not isinstance(value, dict | list | str) and self.more():
                continue
            self.position = end
            return value

    def snippet(self) -> str:
        return repr(self.text[self.position : self.position + 40])


def iter_array_objects(chunks: Iterable[bytes], *, max_item_chars: int = MAX_ITEM_CHARS) -> Iterator[dict[str, Any]]:
    """Yield every JSON object inside the (possibly nested) top-level array of the UTF-8 body in ``chunks``.

    Guarantees: the whole body is checked to be exactly one well-formed array; a malformed or
    truncated body raises :class:`JsonStreamError` (after the objects before the fault were
    yielded, so a caller must not trust a partial read); an empty body raises too (no answer
    is not an empty list); a body that is valid JSON but not an array raises with the value
    attached. Non-object items are skipped. Memory stays bounded by ``max_item_chars`` plus one chunk.
    """
    body = _Buffer(chunks)
    first = body.next_char()
    if first is None:
        raise JsonStreamError("the body is empty: expected a JSON array")
    if first != "[":
        try:
            value = body.decode_value(max_item_chars)
        except JsonStreamError:
            value = None
        raise JsonStreamError(f"the body is not a JSON array: {str(value)[:200]!r}", value)
    body.position += 1
    depth, after_item = 1, False  # after_item: an item just ended, so ',' or ']' must follow
    while depth:
        char = body.next_char()
        if char is None:
            raise JsonStreamError("truncated JSON: the array is not closed")
        if char == "]":
            body.position += 1
            depth, after_item = depth - 1, True
        elif after_item:
            if char != ",":
                raise JsonStreamError(f"expected ',' or ']' at {body.snippet()}")
            body.position += 1
            after_item = False
            if body.next_char() == "]":
                raise JsonStreamError("a trailing comma before ']'")
        elif char == "[":
            body.position += 1
            depth += 1
        else:
            item = body.decode_value(max_item_chars)
            after_item = True
            if isinstance(item, dict):
                yield item
    if body.next_char() is not None:
        raise JsonStreamError(f"unexpected data after the array: {body.snippet()}")
