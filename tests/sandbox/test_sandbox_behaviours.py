"""The vendors' harder answers: rate limits, already-cancelled refusals, errors as HTTP 200, request-log digests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rewards_sandbox import (
    DEFAULT_FAULT_KINDS,
    DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
    DEMO_HPGAMES_CANCELLED_EXTERNAL_ID,
    DEMO_HPGAMES_CANCELLED_REWARD_ID,
    DEMO_HPGAMES_OTHER_MERCHANT_ID,
    DEMO_HPGAMES_OTHER_SECRET,
    DEMO_HPGAMES_QUERY_PLAYER_IDS,
    DEMO_THANX_NOSCOPE_ACCESS_TOKEN,
    DEMO_THANX_NOSCOPE_CLIENT_ID,
    DEMO_THANX_REVOKE_JOB_IDS,
    FAULT_KINDS,
    HpgErrorCode,
    RateWindow,
    SandboxConfig,
    SandboxServer,
    id_set_digest,
    parse_rate_limit,
    running_sandbox,
)
from rewards_sandbox.cli import build_parser, config_from_args
from rewards_sandbox.ratelimit import RateLimiter
from rewards_sandbox.testing import thanx_headers

from tests.sandbox.helpers import FAST, SandboxClient
from tests.sandbox.test_sandbox_hpgames import assert_error, assert_ok_empty

LIVE = DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS


@pytest.fixture
def make_client() -> Iterator:
    """Start sandboxes with extra settings; returns a client of each (all stopped after the test)."""
    started: list[tuple[SandboxServer, SandboxClient]] = []

    def make(**settings) -> SandboxClient:
        manager = running_sandbox(**{**FAST, **settings})
        server = manager.__enter__()
        client = SandboxClient(server)
        started.append((manager, client))
        return client

    yield make
    for manager, client in started:
        client.session.close()
        manager.__exit__(None, None, None)


def statuses_of(response_log: list[dict], path_suffix: str) -> list[int]:
    """Statuses of the logged requests whose path ends with ``path_suffix``."""
    return [entry["status"] for entry in response_log if entry["path"].endswith(path_suffix)]


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "windows"),
    [
        ("5/s", (RateWindow(5, 1.0),)),
        ("5/s,2000/900s", (RateWindow(5, 1.0), RateWindow(2000, 900.0))),
        (" 3/0.5s ", (RateWindow(3, 0.5),)),
        ("", ()),
        (None, ()),
        ([(2, 10)], (RateWindow(2, 10.0),)),
    ],
)
def test_parse_rate_limit(spec, windows):
    assert parse_rate_limit(spec) == windows


@pytest.mark.parametrize("spec", ["5", "5/m", "0/s", "x/s", "5/0s", "5/s;2/s"])
def test_parse_rate_limit_rejects_bad_windows(spec):
    with pytest.raises(ValueError, match="rate limit window"):
        SandboxConfig(rate_limit=spec)


def test_rate_limiter_rejected_requests_take_no_slot():
    now = [100.0]
    limiter = RateLimiter(parse_rate_limit("1/s,3/10s"), clock=lambda: now[0])
    assert limiter.admit("a") is None
    assert limiter.admit("b") is None  # per key
    now[0] = 100.5
    assert limiter.admit("a") == 1  # 0.5 s left, rounded up
    now[0] = 101.0
    assert limiter.admit("a") is None  # the rejected try did not count
    now[0] = 102.0
    assert limiter.admit("a") is None
    now[0] = 103.0
    assert limiter.admit("a") == 7  # the 10 s window is full until 110.0


def test_thanx_rate_limit_answers_429_with_retry_after_and_counts_per_token(make_client):
    client = make_client(rate_limit="3/s")
    assert [client.get_job(DEMO_THANX_REVOKE_JOB_IDS[0]).status_code for _ in range(3)] == [200] * 3
    limited = client.revoke(DEMO_THANX_REVOKE_JOB_IDS[0])
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert set(limited.json()) == {"code", "message"}
    assert limited.json()["code"] == "TOO_MANY_REQUESTS"
    assert client.job_states()[DEMO_THANX_REVOKE_JOB_IDS[0]] == "completed"  # the refused revoke did nothing
    other_token = thanx_headers(DEMO_THANX_NOSCOPE_CLIENT_ID, DEMO_THANX_NOSCOPE_ACCESS_TOKEN)
    assert client.thanx("GET", "/partner/scopes", headers=other_token).status_code == 200
    log = client.server.request_log()
    assert [e["status"] for e in log].count(429) == 1
    assert [e["fault"] for e in log if e["status"] == 429] == ["rate_limit"]


def test_hpgames_rate_limit_is_per_merchant_and_long_windows_say_so(make_client):
    client = make_client(rate_limit="100/s,2/900s")
    assert client.hpg("readAll").status_code == 200
    assert_ok_empty(client.hpg("cancel", {"id": LIVE[0]}))
    refused = client.hpg("cancel", {"id": LIVE[1]})
    assert_error(refused, 429, HpgErrorCode.RATE_LIMITED)
    assert 899 <= int(refused.headers["Retry-After"]) <= 900
    assert client.reward_statuses()[LIVE[1]] == "IN_PROGRESS"
    other = client.hpg("readAll", merchant_id=DEMO_HPGAMES_OTHER_MERCHANT_ID, secret=DEMO_HPGAMES_OTHER_SECRET)
    assert other.status_code == 200
    assert statuses_of(client.server.request_log(), "/cancel") == [200, 429]


def test_retry_after_override_and_runtime_settings(make_client):
    client = make_client(rate_limit="1/s", retry_after_override=900)
    assert client.hpg("readAll").status_code == 200
    assert client.hpg("readAll").headers["Retry-After"] == "900"
    settings = {"rate_limit": None, "retry_after_override": None}
    response = client.session.post(f"{client.url}/_sandbox/faults", json=settings, timeout=10)
    assert response.status_code == 200
    assert response.json()["rate_limit"] is None
    assert response.json()["kinds"] == list(DEFAULT_FAULT_KINDS)
    assert [client.hpg("readAll").status_code for _ in range(5)] == [200] * 5
    response = client.session.post(f"{client.url}/_sandbox/faults", json={"rate_limit": "2/s"}, timeout=10)
    assert response.json()["rate_limit"] == "2/1s"
    assert [client.hpg("readAll").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    "settings",
    [
        {"rate_limit": "fast"},
        {"retry_after_override": 0},
        {"already_cancelled": "maybe"},
        {"colour": "red"},
        {"already_cancelled": "refuse", "rate": 2},
        {"error_200_actions": ["cancel"], "kinds": ["418"]},
    ],
)
def test_bad_runtime_settings_are_refused_and_change_nothing(client, settings):
    before = client.session.get(f"{client.url}/_sandbox/faults", timeout=10).json()
    response = client.session.post(f"{client.url}/_sandbox/faults", json=settings, timeout=10)
    assert response.status_code == 400
    assert client.session.get(f"{client.url}/_sandbox/faults", timeout=10).json() == before


# ---------------------------------------------------------------------------------------------
# Already cancelled
# ---------------------------------------------------------------------------------------------
def test_already_cancelled_ok_is_the_default(client):
    assert_ok_empty(client.hpg("cancel", {"id": DEMO_HPGAMES_CANCELLED_REWARD_ID}))
    assert_ok_empty(client.hpg("bulkCancel", {"ids": [DEMO_HPGAMES_CANCELLED_REWARD_ID, LIVE[0]]}))
    assert client.reward_statuses()[LIVE[0]] == "CANCELLED"


def test_already_cancelled_refuse(make_client):
    client = make_client(already_cancelled="refuse")
    before = client.reward_statuses()
    for response in (
        client.hpg("cancel", {"id": DEMO_HPGAMES_CANCELLED_REWARD_ID}),
        client.hpg("cancel", {"externalId": DEMO_HPGAMES_CANCELLED_EXTERNAL_ID}),
        client.hpg("bulkCancel", {"ids": [LIVE[0], DEMO_HPGAMES_CANCELLED_REWARD_ID, LIVE[1]]}),
    ):
        assert "reward already cancelled" in assert_error(response, 409, HpgErrorCode.ALREADY_CANCELLED)
    assert client.reward_statuses() == before  # the whole bulk request was refused
    assert_ok_empty(client.hpg("cancel", {"id": LIVE[0]}))
    assert_error(client.hpg("cancel", {"id": LIVE[0]}), 409, HpgErrorCode.ALREADY_CANCELLED)
    players = list(DEMO_HPGAMES_QUERY_PLAYER_IDS)
    assert_ok_empty(client.hpg("bulkCancelByQuery", {"playerIds": players}))
    assert_ok_empty(client.hpg("bulkCancelByQuery", {"playerIds": players}))  # nothing live left: still 200


def test_already_cancelled_is_settable_at_runtime(client):
    response = client.session.post(f"{client.url}/_sandbox/faults", json={"already_cancelled": "refuse"}, timeout=10)
    assert response.json()["already_cancelled"] == "refuse"
    assert_error(client.hpg("cancel", {"id": DEMO_HPGAMES_CANCELLED_REWARD_ID}), 409, HpgErrorCode.ALREADY_CANCELLED)


# ---------------------------------------------------------------------------------------------
# Errors answered as HTTP 200
# ---------------------------------------------------------------------------------------------
def assert_error_200(response) -> None:
    """HTTP 200 with an ``errorCode`` body."""
    assert response.status_code == 200
    assert set(response.json()) == {"errorCode", "errorText"}
    assert response.json()["errorCode"] == 1003


def test_error_200_is_a_kind_but_not_a_default_one():
    assert "error_200" in FAULT_KINDS
    assert "error_200" not in DEFAULT_FAULT_KINDS
    assert SandboxConfig().fault_kinds == DEFAULT_FAULT_KINDS


def test_error_200_for_one_action_changes_nothing(make_client):
    client = make_client(error_200_actions=("bulkCancel",))
    before = client.reward_statuses()
    assert_error_200(client.hpg("bulkCancel", {"ids": list(LIVE)}))
    assert client.reward_statuses() == before
    assert_ok_empty(client.hpg("cancel", {"id": LIVE[0]}))
    assert client.server.request_log()[0]["fault"] == "error_200"
    assert [e["fault"] for e in client.server.request_log()] == ["error_200", None]


def test_error_200_actions_settable_over_http(client):
    response = client.session.post(
        f"{client.url}/_sandbox/faults", json={"error_200_actions": ["readAll", "rewards/cancel"]}, timeout=10
    )
    assert response.json()["error_200_actions"] == ["rewards/readAll", "rewards/cancel"]
    assert_error_200(client.hpg("readAll"))
    assert_error_200(client.hpg("cancel", {"id": LIVE[0]}))
    assert client.reward_statuses()[LIVE[0]] == "IN_PROGRESS"
    bad = client.session.post(f"{client.url}/_sandbox/faults", json={"error_200_actions": ["nuke"]}, timeout=10)
    assert bad.status_code == 400


def test_drawn_error_200_hits_hpgames_only(client, sandbox):
    sandbox.set_faults(1.0, seed=1, kinds=["error_200"])
    assert_error_200(client.hpg("cancel", {"id": LIVE[0]}))
    assert client.revoke(DEMO_THANX_REVOKE_JOB_IDS[0]).status_code == 202
    assert client.reward_statuses()[LIVE[0]] == "IN_PROGRESS"
    assert [e["fault"] for e in sandbox.request_log()] == ["error_200", None]


# ---------------------------------------------------------------------------------------------
# Request log of bulk requests
# ---------------------------------------------------------------------------------------------
def test_bulk_cancel_log_has_size_and_digest_never_ids(client, sandbox):
    upper = [rid.upper() for rid in reversed(LIVE)]
    assert_ok_empty(client.hpg("bulkCancel", {"ids": upper}))
    assert_ok_empty(client.hpg("bulkCancelByQuery", {"playerIds": ["player-005"]}))
    cancel, by_query = sandbox.request_log()
    assert (cancel["batch_field"], cancel["batch_size"]) == ("ids", len(LIVE))
    assert cancel["batch_digest"] == id_set_digest(LIVE) == id_set_digest(upper, lower=True)
    assert (by_query["batch_field"], by_query["batch_size"]) == ("playerIds", 1)
    assert by_query["batch_digest"] == id_set_digest(["player-005"])
    assert "body" not in cancel
    assert not any(rid in str(cancel) or rid.upper() in str(cancel) for rid in LIVE)


def test_log_bodies_records_bodies_without_the_hash(make_client):
    client = make_client(log_bodies=True)
    assert_ok_empty(client.hpg("bulkCancel", {"externalIds": ["ext-cancel-001"]}))
    [entry] = client.server.request_log()
    assert entry["body"]["externalIds"] == ["ext-cancel-001"]
    assert entry["body"]["hash"] == "<redacted>"
    assert entry["batch_digest"] == id_set_digest(["ext-cancel-001"])


def test_digest_ignores_order_and_repeats():
    assert id_set_digest(["b", "a", "a"]) == id_set_digest(["a", "b"]) != id_set_digest(["a", "b", "c"])


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_flags_reach_the_config():
    argv = [
        "--rate-limit=5/s,2000/900s",
        "--retry-after-override=900",
        "--already-cancelled=refuse",
        "--error-200-for=bulkCancel,reward-configurations/readAll",
        "--now-ms=1700000000000",
        "--log-bodies",
        "--read-all-external-id",
    ]
    config = config_from_args(build_parser().parse_args(argv), seed={})
    assert config.rate_limit == (RateWindow(5, 1.0), RateWindow(2000, 900.0))
    assert config.retry_after_override == 900
    assert config.already_cancelled == "refuse"
    assert config.error_200_actions == ("rewards/bulkCancel", "reward-configurations/readAll")
    assert (config.now_ms, config.log_bodies, config.read_all_external_id) == (1700000000000, True, True)
    defaults = config_from_args(build_parser().parse_args([]), seed={})
    assert defaults.fault_kinds == DEFAULT_FAULT_KINDS
    assert (defaults.rate_limit, defaults.already_cancelled, defaults.error_200_actions) == ((), "ok", ())


def test_cli_help_documents_every_flag():
    text = build_parser().format_help()
    for flag in (
        "--rate-limit",
        "--retry-after-override",
        "--already-cancelled",
        "--error-200-for",
        "--now-ms",
        "--log-bodies",
        "--read-all-external-id",
    ):
        assert flag in text


def test_rate_limited_requests_do_not_draw_faults():
    def admitted_faults(limit_first: bool) -> list[str | None]:
        settings = {"fault_rate": 0.5, "fault_seed": 11, "fault_kinds": ("500",)}
        with running_sandbox(**FAST, **settings, rate_limit="3/900s" if limit_first else None) as server:
            client = SandboxClient(server)
            for _ in range(6):  # with the limit: 3 admitted, 3 refused
                client.hpg("readAll")
            server.set_behaviours(rate_limit=None)
            for _ in range(3):
                client.hpg("readAll")
            client.session.close()
            return [e["fault"] for e in server.request_log() if e["fault"] != "rate_limit"]

    limited = admitted_faults(limit_first=True)
    assert len(limited) == 6
    assert limited == admitted_faults(limit_first=False)[:6]
    assert set(limited) == {None, "500"}


# ---------------------------------------------------------------------------------------------
# Unknown ids accepted (the benchmarks' sink)
# ---------------------------------------------------------------------------------------------
def test_unknown_ids_are_a_404_unless_accepted(client, make_client):
    unknown = "9e999999-0000-4000-8000-000000000001"
    assert_error(client.hpg("bulkCancel", {"ids": [unknown, LIVE[0]]}), 404, HpgErrorCode.NOT_FOUND)
    assert client.reward_statuses()[LIVE[0]] == "IN_PROGRESS"
    sink = make_client(accept_unknown_ids=True)
    before = sink.reward_statuses()
    assert_ok_empty(sink.hpg("bulkCancel", {"ids": [unknown, LIVE[0]]}))
    assert_ok_empty(sink.hpg("bulkCancel", {"externalIds": ["ext-never-seeded"]}))
    after = sink.reward_statuses()
    assert unknown not in after  # nothing stored for it
    assert after == {**before, LIVE[0]: "CANCELLED"}
    assert config_from_args(build_parser().parse_args(["--accept-unknown-ids"]), {}).accept_unknown_ids
