"""Hostile input: every hook and operator input ends in a clear validation error or in exactly the intended request.

Property-based (hypothesis) over the ids and lists that end up in URL paths, query strings and signed bodies:
odd unicode (lone surrogates included: JSON conf can carry them), path traversal and query injection attempts
(``../``, ``..``, ``.``, ``?``, ``#``, ``%2F``, control characters, whitespace), very long strings, JSON-array
strings for list inputs, nested lists, dicts, numbers, None, booleans, huge lists.

Each example must end in one of two ways:

* a :class:`RewardsInputError` whose message names the field, and no request at all; or
* requests only to the intended place, carrying exactly the validated input. Thanx: one path segment after
  ``/partner/issuance_jobs/`` equal to ``urllib.parse.quote(job_id, safe="")``, the intended method, query and
  body. HPGames: the intended endpoint, a valid signature, and body ids equal to the validated input (UUIDs
  lowercased, duplicates dropped, in order). An accepted id is always a clean one: a non-empty string of at most
  256 characters, UTF-8 encodable, without control characters or surrounding whitespace (UUIDs: exactly 8-4-4-4-12
  hex digits).

Anything else (another exception, a request elsewhere) fails. A catch-all ``requests_mock`` matcher records
every request the code makes, wherever it goes. Example counts are bounded (``EXAMPLES``) to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import requests_mock
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from airflow_provider_rewards.exceptions import RewardsInputError, RewardsJobStateError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor
from tests.conftest import HPGAMES_URL, THANX_MERCHANT, THANX_URL
from tests.operators.conftest import TaskInstanceStub, payload

EXAMPLES = 150
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never fails on a lucky draw, and never passes on one
    # The connections come from function-scoped fixtures (environment variables); they are the same for every
    # example. Requests are recorded per example by a Mocker opened inside the test.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
THANX_NETLOC = urlsplit(THANX_URL).netloc
HPGAMES_NETLOC = urlsplit(HPGAMES_URL).netloc
JOBS_PREFIX = "/partner/issuance_jobs/"
REWARDS_PREFIX = "/api/v1/integration/rewards/"

# -------------------------------------------------------------------------------------------------
# Strategies
# -------------------------------------------------------------------------------------------------
NASTY = [
    "../", "..", ".", "/", "\\", "?", "#", "%2F", "%2f", "%2e%2e", "..%2F", "%00", "%", "&", "=", ";", "+", "@",
    ":", " ", "\t", "\n", "\r\n", "\x00", "\x1b", "\x7f", "\u00a0", "\u2028", "\u202e", "\ufeff", "\ud800",
    "\udfff", "é", "ﬀ", "İ", "\U0001d518", "{{ params.x }}", "?merchant_id=evil", "#frag", "/revoke", "job_demo_1",
]  # fmt: skip
#: The inputs that broke something once (or could): weighted up so that every property meets them.
CRITICAL = ["\ud800", "a\udfff", "..", ".", "../x", "a/b", "%2F", "?x=1", "#f", " x", "x\n", "x" * 257, "\x00", ""]
any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(any_char, max_size=4)), max_size=6).map("".join)
long_text = st.builds(lambda char, n: char * n, st.sampled_from(["a", "é", "/", "\U0001d518"]), st.integers(200, 3000))
uuid_text = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.builds(lambda u, tail: f"{u}{tail}", st.uuids(), st.sampled_from(["\n", "\n", " ", "\x00", "/", "?x", "\r\n"])),
    st.builds(lambda head, u: f"{head}{u}", st.sampled_from([" ", "\n", "../", "{"]), st.uuids()),
)
text = st.one_of(
    st.sampled_from(CRITICAL),
    st.sampled_from(NASTY),  # each hostile token alone, often
    st.builds("{}{}{}".format, st.sampled_from(["", "job_", "x-"]), st.sampled_from(NASTY), st.sampled_from(["", "1"])),
    nasty_text,
    long_text,
    uuid_text,
    st.sampled_from(["job_demo_1", "player-005", "ext-cancel-001"]),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=8), text)
anything = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
maybe = st.one_of(st.none(), text, anything)


def huge_uuid_list(count: int) -> list[str]:
    return [f"5e1f0000-0000-4000-8000-{index:012d}" for index in range(count)] * 2  # every id twice


id_lists = st.one_of(
    st.lists(st.one_of(uuid_text, st.sampled_from(CRITICAL)), min_size=1, max_size=5),
    st.lists(st.one_of(uuid_text, st.sampled_from(CRITICAL)), min_size=1, max_size=5).map(json.dumps),
    st.lists(text, max_size=12),
    st.lists(uuid_text, max_size=12),
    st.lists(anything, max_size=6),
    st.lists(text, max_size=12).map(json.dumps),  # a JSON-array string, as rendered with "| tojson"
    st.lists(anything, max_size=6).map(lambda items: json.dumps(items, default=repr)),
    st.sampled_from([1, 3, 900, 5000, 100_000]).map(lambda depth: "[" * depth + "]" * depth),  # past recursion limits
    st.integers(1, 3000).map(huge_uuid_list),
    st.frozensets(text, max_size=5),
    anything,
)


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid three times in four: a side argument refused before any request must not hide what the id does."""
    return st.one_of(valid, valid, valid, hostile)


flags = mostly(st.booleans(), st.one_of(st.sampled_from(["true", "False", "yes", "1", "{{ params.dry_run }}"]), maybe))
#: ``(reward_id, external_id)``: mostly one of the two (the API takes exactly one), sometimes both or neither.
one_id = st.one_of(
    st.tuples(st.one_of(uuid_text, maybe), st.none()),
    st.tuples(st.none(), st.one_of(text, maybe)),
    st.tuples(maybe, maybe),
)
batch_sizes = mostly(st.sampled_from([1, 2, 3, 500]), st.one_of(st.integers(-2, 12_000), maybe))
poll_intervals = mostly(st.sampled_from([0.5, 60]), st.one_of(st.floats(), maybe))


# -------------------------------------------------------------------------------------------------
# Checks
# -------------------------------------------------------------------------------------------------
@contextmanager
def recorded(answer: Callable[[Any, Any], Any]) -> Iterator[requests_mock.Mocker]:
    """Record every request the code makes, to any URL; ``answer(request, context)`` gives the JSON body."""
    with requests_mock.Mocker() as mocker:
        mocker.register_uri(requests_mock.ANY, re.compile(".*"), json=answer)
        yield mocker


def thanx_answer(request, context) -> dict[str, Any]:
    context.status_code = 202 if request.method == "POST" else 200
    return {"issuance_job": {"id": "job", "state": "revoking" if request.method == "POST" else "completed"}}


def hpgames_answer(request, context) -> Any:
    context.status_code = 200
    return [] if request.url.endswith("/readAll") else None


def assert_names(error: Exception, *fields: str) -> None:
    assert any(field in str(error) for field in fields), f"{error!r} names none of {fields}"


def assert_rejected(error: RewardsInputError, mocker: requests_mock.Mocker, *fields: str) -> None:
    """A validation error names one of ``fields`` and comes before any request."""
    if currently_in_test_context():
        event("refused")  # --hypothesis-show-statistics: the share of refused examples (the rest were sent)
    assert_names(error, *fields)
    assert mocker.request_history == [], "a request was made before the input was refused"


def assert_clean_id(value: object, *, path_segment: bool = False) -> str:
    """What the provider accepts as an id: never empty, padded, overlong, unencodable or with control chars."""
    assert isinstance(value, str), f"accepted a {type(value).__name__} as an id: {value!r}"
    assert value, "accepted an empty id"
    assert value == value.strip(), f"accepted a padded id: {value!r}"
    assert len(value) <= 256, f"accepted an id of {len(value)} characters"
    assert not CONTROL.search(value), f"accepted control characters: {value!r}"
    value.encode("utf-8")  # raises for a lone surrogate: such an id could never be sent as it was given
    if path_segment:
        assert value not in (".", ".."), f"accepted the relative path {value!r} as an id"
    return value


def assert_clean_uuid(value: object) -> str:
    assert isinstance(value, str), f"accepted a {type(value).__name__} as a UUID: {value!r}"
    assert UUID.fullmatch(value), f"accepted {value!r} as a UUID"
    return value.lower()


def as_items(value: object) -> list[Any]:
    """How an operator reads a list input: a JSON-array string, or the items of a list, tuple or set."""
    return json.loads(value) if isinstance(value, str) else list(value)  # type: ignore[call-overload]


def unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def thanx_request(mocker: requests_mock.Mocker) -> tuple[Any, Any]:
    (request,) = mocker.request_history
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc) == ("https", THANX_NETLOC), request.url
    return request, url


def assert_job_path(path: str, job_id: str, action: str = "") -> None:
    """Exactly one segment after the prefix, equal to the escaped id (then the action, if any)."""
    assert path == f"{JOBS_PREFIX}{quote(job_id, safe='')}{action}", (path, job_id)
    assert path.removeprefix(JOBS_PREFIX).count("/") == action.count("/")


def hpgames_bodies(mocker: requests_mock.Mocker, action: str) -> list[dict[str, Any]]:
    """The payloads (signature checked and removed) of every recorded request, all POSTs to ``action``."""
    bodies = []
    for request in mocker.request_history:
        url = urlsplit(request.url)
        assert (request.method, url.scheme, url.netloc) == ("POST", "https", HPGAMES_NETLOC), request.url
        assert (url.path, url.query) == (f"{REWARDS_PREFIX}{action}", ""), request.url
        bodies.append(payload(request))
    return bodies


def context() -> dict[str, Any]:
    return {"ti": TaskInstanceStub(), "params": {}}


# -------------------------------------------------------------------------------------------------
# Thanx hook, sync and async
# -------------------------------------------------------------------------------------------------
@PROPERTY
@given(job_id=st.one_of(text, anything), merchant_id=mostly(st.none(), maybe), revoke=st.booleans())
def test_thanx_hook_reaches_only_the_given_job(thanx_conn, job_id, merchant_id, revoke):
    with recorded(thanx_answer) as mocker:
        hook = ThanxHook()
        try:
            if revoke:
                hook.revoke_issuance_job(job_id, merchant_id)
            else:
                hook.get_issuance_job(job_id, merchant_id)
        except RewardsInputError as error:
            assert_rejected(error, mocker, "issuance_job_id", "merchant_id")
            return
    request, url = thanx_request(mocker)
    assert_clean_id(job_id, path_segment=True)
    merchant = assert_clean_id(THANX_MERCHANT if merchant_id is None else merchant_id)
    if revoke:
        assert (request.method, url.query) == ("POST", "")
        assert_job_path(url.path, job_id, "/revoke")
        assert json.loads(request.body) == {"merchant_id": merchant}
    else:
        assert (request.method, request.body) == ("GET", None)
        assert_job_path(url.path, job_id)
        assert parse_qs(url.query, keep_blank_values=True) == {"merchant_id": [merchant]}


@settings(PROPERTY, max_examples=EXAMPLES // 2)
@given(job_id=st.one_of(text, anything), merchant_id=mostly(st.none(), maybe))
def test_thanx_async_read_reaches_only_the_given_job(thanx_conn, job_id, merchant_id):
    """The trigger's path: ``aget_issuance_job`` over httpx (recorded by a mock transport)."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"issuance_job": {"id": "job", "state": "revoking"}})

    async def read() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await ThanxHook().aget_issuance_job(job_id, merchant_id, client=client)

    try:
        asyncio.run(read())
    except RewardsInputError as error:
        event("refused")
        assert_names(error, "issuance_job_id", "merchant_id")
        assert sent == []
        return
    (request,) = sent
    assert (request.method, request.url.scheme, request.url.netloc.decode()) == ("GET", "https", THANX_NETLOC)
    path, _, query = request.url.raw_path.decode("ascii").partition("?")
    assert_job_path(path, assert_clean_id(job_id, path_segment=True))
    merchant = assert_clean_id(THANX_MERCHANT if merchant_id is None else merchant_id)
    assert parse_qs(query, keep_blank_values=True) == {"merchant_id": [merchant]}


# -------------------------------------------------------------------------------------------------
# HPGames hook
# -------------------------------------------------------------------------------------------------
@PROPERTY
@given(ids=one_id)
def test_hpgames_cancel_sends_exactly_the_given_id(hpgames_conn, ids):
    reward_id, external_id = ids
    with recorded(hpgames_answer) as mocker:
        try:
            HPGamesHook().cancel_reward(reward_id=reward_id, external_id=external_id)
        except RewardsInputError as error:
            assert_rejected(error, mocker, "reward_id", "external_id")
            return
    (body,) = hpgames_bodies(mocker, "cancel")
    if reward_id is not None:
        assert body == {"id": assert_clean_uuid(reward_id)}
    else:
        assert body == {"externalId": assert_clean_id(external_id)}


@PROPERTY
@given(field=st.sampled_from(["reward_ids", "external_ids"]), ids=id_lists, other=st.one_of(st.none(), id_lists))
def test_hpgames_bulk_cancel_sends_exactly_the_given_ids(hpgames_conn, field, ids, other):
    others = {"reward_ids": "external_ids", "external_ids": "reward_ids"}
    with recorded(hpgames_answer) as mocker:
        try:
            HPGamesHook().bulk_cancel_rewards(**{field: ids, others[field]: other})
        except RewardsInputError as error:
            assert_rejected(error, mocker, *others)
            return
    (body,) = hpgames_bodies(mocker, "bulkCancel")
    assert other is None
    if field == "reward_ids":
        assert body == {"ids": unique([assert_clean_uuid(item) for item in ids])}
    else:
        assert body == {"externalIds": unique([assert_clean_id(item) for item in ids])}


@PROPERTY
@given(players=id_lists, config=st.one_of(st.none(), uuid_text, anything), external_config=maybe)
def test_hpgames_cancel_by_query_sends_exactly_the_given_players(hpgames_conn, players, config, external_config):
    with recorded(hpgames_answer) as mocker:
        try:
            HPGamesHook().bulk_cancel_rewards_by_query(players, config, external_config)
        except RewardsInputError as error:
            assert_rejected(error, mocker, "player_ids", "reward_configuration_id")
            return
    (body,) = hpgames_bodies(mocker, "bulkCancelByQuery")
    expected: dict[str, Any] = {"playerIds": unique([assert_clean_id(player) for player in players])}
    if config is not None:
        expected["rewardConfigurationId"] = assert_clean_uuid(config)
    if external_config is not None:
        expected["externalRewardConfigurationId"] = assert_clean_id(external_config)
    assert body == expected


@PROPERTY
@given(player=maybe, config=st.one_of(st.none(), uuid_text), external_config=maybe, status=maybe)
def test_hpgames_read_sends_exactly_the_given_filters(hpgames_conn, player, config, external_config, status):
    with recorded(hpgames_answer) as mocker:
        try:
            HPGamesHook().read_rewards(player, config, external_config, status)
        except RewardsInputError as error:
            assert_rejected(error, mocker, "player_id", "reward_configuration_id", "status")
            return
    (body,) = hpgames_bodies(mocker, "readAll")
    expected = {
        "playerId": None if player is None else assert_clean_id(player),
        "rewardConfigurationId": None if config is None else assert_clean_uuid(config),
        "externalRewardConfigurationId": None if external_config is None else assert_clean_id(external_config),
        "status": status,
    }
    assert body == {key: value for key, value in expected.items() if value is not None}


# -------------------------------------------------------------------------------------------------
# Operators and sensor: construction (parse time) and execution (after rendering)
# -------------------------------------------------------------------------------------------------
@PROPERTY
@given(
    job_id=st.one_of(text, anything),
    merchant_id=mostly(st.none(), maybe),
    dry_run=flags,
    poll_interval=poll_intervals,
)
def test_revoke_operator_reaches_only_the_given_job(thanx_conn, job_id, merchant_id, dry_run, poll_interval):
    with recorded(thanx_answer) as mocker:
        try:
            operator = ThanxRevokeIssuanceJobOperator(
                task_id="revoke",
                issuance_job_id=job_id,
                merchant_id=merchant_id,
                dry_run=dry_run,
                poll_interval=poll_interval,
            )
            summary = operator.execute(context())
        except RewardsInputError as error:
            assert_rejected(error, mocker, "issuance_job_id", "merchant_id", "dry_run", "poll_interval")
            return
    assert_clean_id(job_id, path_segment=True)
    merchant = assert_clean_id(THANX_MERCHANT if merchant_id is None else merchant_id)
    expected = [("GET", "")] if summary["outcome"] == "dry_run" else [("GET", ""), ("POST", "/revoke")]
    assert [request.method for request in mocker.request_history] == [method for method, _ in expected]
    for request, (_, action) in zip(mocker.request_history, expected, strict=True):
        url = urlsplit(request.url)
        assert (url.scheme, url.netloc) == ("https", THANX_NETLOC)
        assert_job_path(url.path, job_id, action)
    assert summary["issuance_job_id"] == job_id
    assert summary["merchant_id"] == merchant


@PROPERTY
@given(
    job_id=st.one_of(text, anything),
    merchant_id=mostly(st.none(), maybe),
    target_states=mostly(st.just(["revoked"]), st.one_of(st.lists(text, max_size=3), anything)),
    waiting_states=mostly(st.just(("revoking",)), st.one_of(st.lists(text, max_size=3), anything)),
)
def test_sensor_reaches_only_the_given_job(thanx_conn, job_id, merchant_id, target_states, waiting_states):
    with recorded(thanx_answer) as mocker:
        try:
            sensor = ThanxIssuanceJobSensor(
                task_id="wait",
                issuance_job_id=job_id,
                merchant_id=merchant_id,
                target_states=target_states,
                waiting_states=waiting_states,
            )
            sensor.poke(context())
        except RewardsInputError as error:
            assert_rejected(error, mocker, "issuance_job_id", "merchant_id", "target_states", "waiting_states")
            return
        except RewardsJobStateError as error:  # the job reads "completed": neither a target nor a waiting state
            assert_names(error, "'completed'")
    request, url = thanx_request(mocker)
    assert request.method == "GET"
    assert_job_path(url.path, assert_clean_id(job_id, path_segment=True))
    merchant = assert_clean_id(THANX_MERCHANT if merchant_id is None else merchant_id)
    assert parse_qs(url.query, keep_blank_values=True) == {"merchant_id": [merchant]}


@PROPERTY
@given(
    field=st.sampled_from(["reward_ids", "external_ids"]),
    ids=id_lists,
    batch_size=batch_sizes,
    dry_run=flags,
)
def test_bulk_cancel_operator_sends_exactly_the_given_ids(hpgames_conn, field, ids, batch_size, dry_run):
    with recorded(hpgames_answer) as mocker:
        try:
            operator = HPGamesBulkCancelRewardsOperator(
                task_id="cancel", **{field: ids}, batch_size=batch_size, dry_run=dry_run
            )
            summary = operator.execute(context())
        except RewardsInputError as error:
            assert_rejected(error, mocker, field, "batch_size", "dry_run")
            return
    check = assert_clean_uuid if field == "reward_ids" else assert_clean_id
    expected = unique([check(item) for item in as_items(ids)])
    key = "ids" if field == "reward_ids" else "externalIds"
    batches = [body[key] for body in hpgames_bodies(mocker, "bulkCancel")]
    assert all(set(body) == {key} for body in hpgames_bodies(mocker, "bulkCancel"))
    assert all(0 < len(batch) <= batch_size for batch in batches)
    assert [item for batch in batches for item in batch] == ([] if summary["dry_run"] else expected)
    assert summary["requested"] == len(expected)


@PROPERTY
@given(
    players=id_lists,
    config=st.one_of(st.none(), uuid_text, anything),
    external_config=maybe,
    batch_size=batch_sizes,
)
def test_cancel_by_query_operator_sends_exactly_the_given_players(
    hpgames_conn, players, config, external_config, batch_size
):
    with recorded(hpgames_answer) as mocker:
        try:
            operator = HPGamesCancelRewardsByQueryOperator(
                task_id="cancel",
                player_ids=players,
                reward_configuration_id=config,
                external_reward_configuration_id=external_config,
                batch_size=batch_size,
            )
            operator.execute(context())
        except RewardsInputError as error:
            fields = ("player_ids", "reward_configuration_id", "external_reward_configuration_id", "batch_size")
            assert_rejected(error, mocker, *fields)
            return
    config_filter: dict[str, str] = {}
    if config is not None:
        config_filter["rewardConfigurationId"] = assert_clean_uuid(config)
    if external_config is not None:
        config_filter["externalRewardConfigurationId"] = assert_clean_id(external_config)
    bodies = hpgames_bodies(mocker, "bulkCancelByQuery")
    assert all({key: value for key, value in body.items() if key != "playerIds"} == config_filter for body in bodies)
    assert all(0 < len(body["playerIds"]) <= batch_size for body in bodies)
    sent = [player for body in bodies for player in body["playerIds"]]
    assert sent == unique([assert_clean_id(player) for player in as_items(players)])


@PROPERTY
@given(ids=one_id, dry_run=flags)
def test_cancel_operator_sends_exactly_the_given_id(hpgames_conn, ids, dry_run):
    reward_id, external_id = ids
    with recorded(hpgames_answer) as mocker:
        try:
            operator = HPGamesCancelRewardOperator(
                task_id="cancel", reward_id=reward_id, external_id=external_id, dry_run=dry_run
            )
            summary = operator.execute(context())
        except RewardsInputError as error:
            assert_rejected(error, mocker, "reward_id", "external_id", "dry_run")
            return
    if reward_id is not None:
        expected = {"id": assert_clean_uuid(reward_id)}
    else:
        expected = {"externalId": assert_clean_id(external_id)}
    assert hpgames_bodies(mocker, "cancel") == ([] if summary["dry_run"] else [expected])


# -------------------------------------------------------------------------------------------------
# The inputs that found bugs, pinned (regressions)
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("job_id", ["\ud800", "job_\udfff_1", "a\ud83d"])
def test_a_job_id_with_a_lone_surrogate_is_refused_not_a_crash(thanx_conn, job_id):
    with recorded(thanx_answer) as mocker, pytest.raises(RewardsInputError, match="issuance_job_id") as error:
        ThanxHook().revoke_issuance_job(job_id)
    assert_rejected(error.value, mocker, "issuance_job_id")


def test_an_external_id_with_a_lone_surrogate_is_refused_not_a_crash(hpgames_conn):
    ids = json.loads('["ext-1", "ext-\\ud800"]')  # what a DAG run conf can carry
    with recorded(hpgames_answer) as mocker, pytest.raises(RewardsInputError, match=r"external_ids\[1\]") as error:
        HPGamesBulkCancelRewardsOperator(task_id="cancel", external_ids=ids).execute(context())
    assert_rejected(error.value, mocker, "external_ids")


@pytest.mark.parametrize("tail", ["\n", "\r\n"])
def test_a_uuid_with_a_trailing_newline_is_refused(hpgames_conn, tail):
    with recorded(hpgames_answer) as mocker, pytest.raises(RewardsInputError, match="reward_id") as error:
        HPGamesHook().cancel_reward(reward_id=f"5e1f0000-0000-4000-8000-000000000101{tail}")
    assert_rejected(error.value, mocker, "reward_id")


def test_a_json_array_string_nested_too_deep_is_refused_not_a_crash(hpgames_conn):
    nested = "[" * 100_000 + "]" * 100_000
    with recorded(hpgames_answer) as mocker, pytest.raises(RewardsInputError, match="reward_ids") as error:
        HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=nested)
    assert_rejected(error.value, mocker, "reward_ids")


@pytest.mark.parametrize("states", [None, 7, "revoked", [None], ["revoked", 3], {"revoked": 1}])
def test_sensor_states_of_the_wrong_type_are_refused_naming_the_field(states):
    with pytest.raises(RewardsInputError, match="target_states"):
        ThanxIssuanceJobSensor(task_id="wait", issuance_job_id="job_1", target_states=states)
