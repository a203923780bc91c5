"""The incremental JSON-array reader: every object at any depth, whatever the chunking; bad bodies raise."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator

import pytest

from airflow_provider_rewards.utils.json_stream import JsonStreamError, iter_array_objects

NESTED = '[[{"id": "a", "name": "é\\"]["}, {"id": "b", "n": 12345}], [], 3, "x", {"id": "c", "list": [1, [2]]}]'


def chunked(text: str, size: int) -> list[bytes]:
    data = text.encode()
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, 10_000])
def test_every_object_at_any_depth_whatever_the_chunk_size(size):
    assert [item["id"] for item in iter_array_objects(chunked(NESTED, size))] == ["a", "b", "c"]
    assert list(iter_array_objects(chunked(NESTED, size))) == [
        {"id": "a", "name": 'é"]['},
        {"id": "b", "n": 12345},
        {"id": "c", "list": [1, [2]]},
    ]


def test_documented_nested_shape_and_empty_arrays():
    assert list(iter_array_objects([b'[[{"id": "r1"}]]'])) == [{"id": "r1"}]
    assert list(iter_array_objects([b"[]"])) == []
    assert list(iter_array_objects([b" [ [ ] ] \n"])) == []


def test_a_number_split_across_chunks_is_read_whole():
    assert list(iter_array_objects([b"[12", b"34, {", b'"a": 1}]'])) == [{"a": 1}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("[", "not closed"),
        ('[{"id": "a"}', "not closed"),
        ('[{"id": "a"', "truncated or malformed"),
        ('[{"id": "a"},]', "trailing comma"),
        ('[{"id": "a"} {"id": "b"}]', "expected ','"),
        ('[{"id": "a"}] []', "after the array"),
        ("[,]", "malformed"),
    ],
)
def test_malformed_or_truncated_bodies_raise(body, message):
    with pytest.raises(JsonStreamError, match=message):
        list(iter_array_objects(chunked(body, 3)))


def test_a_body_that_is_not_an_array_raises_with_the_value():
    with pytest.raises(JsonStreamError, match="not a JSON array") as info:
        list(iter_array_objects(chunked('{"errorCode": 1003, "errorText": "Bad request"}', 4)))
    assert info.value.value == {"errorCode": 1003, "errorText": "Bad request"}


def test_objects_read_before_a_fault_come_first_then_the_error():
    items = iter_array_objects([b'[{"id": "a"}, {"id": "b"}, {"id": '])
    assert next(items) == {"id": "a"}
    assert next(items) == {"id": "b"}
    with pytest.raises(JsonStreamError):
        next(items)


def test_an_oversized_item_is_refused():
    with pytest.raises(JsonStreamError, match="longer than 100"):
        list(iter_array_objects(chunked('[{"id": "' + "x" * 500 + '"}]', 64), max_item_chars=100))


def test_memory_stays_bounded_while_reading_a_large_array():
    """200,000 items (~30 MB) streamed in 64 KiB chunks; peak allocation stays far below the body size."""
    item = json.dumps({"id": "5e1f0000-0000-4000-8000-000000000001", "playerId": "p", "status": "IN_PROGRESS"})
    count = 200_000

    def body() -> Iterator[bytes]:
        yield b"[["
        piece = ",".join([item] * 500).encode()
        for number in range(count // 500):
            yield (b"," if number else b"") + piece
        yield b"]]"

    tracemalloc.start()
    try:
        seen = sum(1 for _ in iter_array_objects(body()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 2_000_000, peak  # the body is ~ count * len(item) = 20 MB
