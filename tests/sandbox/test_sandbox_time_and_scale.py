"""Reward configurations with dates, the movable sandbox clock, and readAll at scale."""

from __future__ import annotations

import json

import pytest
import requests
from rewards_sandbox import (
    DEMO_HPGAMES_CONFIG_ID,
    DEMO_HPGAMES_ENDED_CONFIG_END_MS,
    DEMO_HPGAMES_ENDED_CONFIG_ID,
    DEMO_HPGAMES_EXTERNAL_CONFIG_ID,
    DEMO_HPGAMES_EXTERNAL_CONFIG_UUID,
    DEMO_HPGAMES_INACTIVE_CONFIG_ID,
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_HPGAMES_RUNNING_CONFIG_END_MS,
    DEMO_HPGAMES_RUNNING_CONFIG_ID,
    DEMO_HPGAMES_UNTOUCHED_REWARD_IDS,
    DEMO_THANX_CAMPAIGN_ID,
    DEMO_THANX_ENDED_CAMPAIGN_ENDS_AT,
    DEMO_THANX_ENDED_CAMPAIGN_ID,
    DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS,
    DEMO_THANX_MERCHANT_ID,
    HpgErrorCode,
    SandboxClock,
    SeedError,
    demo_seed,
    parse_seed,
    running_sandbox,
)
from rewards_sandbox.signing import now_ms
from rewards_sandbox.testing import HPGAMES_REWARDS_PATH, hpgames_body

from tests.sandbox.helpers import FAST, SandboxClient
from tests.sandbox.test_sandbox_hpgames import READ_ALL_FIELDS, UNKNOWN_UUID, assert_error

CONFIG_FIELDS = {
    "id",
    "externalId",
    "name",
    "status",
    "rewardType",
    "numberOfFreeBets",
    "startDate",
    "endDate",
    "duration",
    "merchantId",
    "games",
}
GENERATED = 20_000
GENERATED_PLAYERS = 50


def configs_path(action: str) -> str:
    """The path of a reward-configurations action, relative to the HPGames rewards path."""
    return f"../reward-configurations/{action}"


def set_clock(client: SandboxClient, **body) -> dict:
    """POST /_sandbox/clock and return its answer."""
    response = client.session.post(f"{client.url}/_sandbox/clock", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------------------------------
# Reward configurations
# ---------------------------------------------------------------------------------------------
def test_read_all_configurations_and_filters(client):
    def names(**fields) -> list[str]:
        response = client.hpg(configs_path("readAll"), fields)
        assert response.status_code == 200, response.text
        assert all(set(c) == CONFIG_FIELDS for c in response.json())
        return sorted(c["name"] for c in response.json())

    everything = names()
    assert len(everything) == 5
    assert names(name="free BETS") == sorted(n for n in everything if "free bets" in n.lower())
    assert names(status="INACTIVE") == ["Retired promo"]
    assert names(rewardType="FREE_BET") == everything
    assert_error(client.hpg(configs_path("readAll"), {"status": "LIVE"}), 400, HpgErrorCode.VALIDATION)
    assert_error(client.hpg(configs_path("readAll"), {"rewardType": "CASH"}), 400, HpgErrorCode.VALIDATION)


def test_read_configuration_by_id_or_external_id(client):
    ended = client.hpg(configs_path("read"), {"id": DEMO_HPGAMES_ENDED_CONFIG_ID})
    assert ended.status_code == 200
    body = ended.json()
    assert set(body) == CONFIG_FIELDS
    assert body["endDate"] == DEMO_HPGAMES_ENDED_CONFIG_END_MS
    assert body["startDate"] < body["endDate"]
    assert body["merchantId"] == DEMO_HPGAMES_MERCHANT_ID
    assert body["games"][0]["gameId"] == 101
    by_external = client.hpg(configs_path("read"), {"externalId": DEMO_HPGAMES_EXTERNAL_CONFIG_ID})
    assert by_external.json()["externalId"] == DEMO_HPGAMES_EXTERNAL_CONFIG_ID
    assert client.hpg(configs_path("read"), {"id": DEMO_HPGAMES_CONFIG_ID}).json()["endDate"] is None
    assert_error(client.hpg(configs_path("read"), {"id": UNKNOWN_UUID}), 404, HpgErrorCode.NOT_FOUND)
    assert_error(client.hpg(configs_path("read"), {}), 400, HpgErrorCode.VALIDATION)


def test_seed_rejects_an_end_before_the_start():
    seed = demo_seed()
    seed["hpgames"]["reward_configurations"][1]["startDate"] = DEMO_HPGAMES_RUNNING_CONFIG_END_MS
    with pytest.raises(SeedError, match="endDate is before startDate"):
        parse_seed(seed)


# ---------------------------------------------------------------------------------------------
# Clock
# ---------------------------------------------------------------------------------------------
def test_sandbox_clock_set_advance_and_reset():
    real = [1_000.0]
    clock = SandboxClock(real=lambda: real[0])
    assert clock.as_dict() == {"now_ms": 1_000_000, "offset_ms": 0, "real_time": True}
    clock.set_ms(5_000_000)
    real[0] += 2
    assert clock.now_ms() == 5_002_000
    clock.advance(-2)
    assert clock.now_ms() == 5_000_000
    clock.reset()
    assert clock.now_ms() == 1_002_000
    with pytest.raises(ValueError, match="now_ms"):
        clock.set_ms("tomorrow")


def test_assignment_window_follows_the_sandbox_clock(client):
    def assign(config_id: str):
        return client.hpg("assign", {"rewardConfigurationId": config_id, "playerIds": ["p-clock"]})

    assert_error(assign(DEMO_HPGAMES_ENDED_CONFIG_ID), 409, HpgErrorCode.CONFIGURATION_INACTIVE)
    assert assign(DEMO_HPGAMES_RUNNING_CONFIG_ID).status_code == 201
    clock = client.session.get(f"{client.url}/_sandbox/clock", timeout=10).json()
    assert clock["real_time"] is True
    assert abs(clock["now_ms"] - now_ms()) < 5_000
    moved = set_clock(client, now_ms=DEMO_HPGAMES_RUNNING_CONFIG_END_MS + 1)
    assert moved["real_time"] is False
    assert moved["now_ms"] >= DEMO_HPGAMES_RUNNING_CONFIG_END_MS + 1
    assert_error(assign(DEMO_HPGAMES_RUNNING_CONFIG_ID), 409, HpgErrorCode.CONFIGURATION_INACTIVE)
    set_clock(client, now_ms=DEMO_HPGAMES_ENDED_CONFIG_END_MS - 60_000)
    assert assign(DEMO_HPGAMES_ENDED_CONFIG_ID).status_code == 201  # signed with real time, still fresh
    assert set_clock(client, real_time=True)["real_time"] is True
    assert_error(assign(DEMO_HPGAMES_INACTIVE_CONFIG_ID), 409, HpgErrorCode.CONFIGURATION_INACTIVE)


def test_advancing_the_clock_expires_rewards(client):
    reward = DEMO_HPGAMES_UNTOUCHED_REWARD_IDS[0]
    assert client.reward_statuses()[reward] == "IN_PROGRESS"
    set_clock(client, advance_s=30 * 24 * 3600)
    assert client.reward_statuses()[reward] == "EXPIRED"
    assert client.snapshot()["clock"]["offset_ms"] >= 30 * 24 * 3600 * 1000


@pytest.mark.parametrize("body", [{"now_ms": "soon"}, {"advance_s": None}, {"when": 1}])
def test_bad_clock_settings_are_400(client, body):
    response = client.session.post(f"{client.url}/_sandbox/clock", json=body, timeout=10)
    assert response.status_code == 400
    assert client.session.get(f"{client.url}/_sandbox/clock", timeout=10).json()["real_time"] is True


def test_start_clock_from_config():
    with running_sandbox(now_ms=DEMO_HPGAMES_RUNNING_CONFIG_END_MS + 1, **FAST) as server:
        assert server.clock.now_ms() > DEMO_HPGAMES_RUNNING_CONFIG_END_MS


def test_thanx_seed_maps_jobs_to_campaigns(client):
    campaigns = client.snapshot()["thanx"]["merchants"][DEMO_THANX_MERCHANT_ID]["campaigns"]
    ended = campaigns[DEMO_THANX_ENDED_CAMPAIGN_ID]
    assert ended["ends_at"] == DEMO_THANX_ENDED_CAMPAIGN_ENDS_AT
    assert ended["issuance_job_ids"] == sorted(DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS)
    assert campaigns[DEMO_THANX_CAMPAIGN_ID]["ends_at"] > ended["ends_at"]
    assert not set(ended["issuance_job_ids"]) & set(campaigns[DEMO_THANX_CAMPAIGN_ID]["issuance_job_ids"])
    assert {client.get_job(job).json()["issuance_job"]["state"] for job in ended["issuance_job_ids"]} == {"completed"}


# ---------------------------------------------------------------------------------------------
# readAll at scale
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_sandbox():
    """A sandbox with GENERATED extra rewards (a tenth of them CANCELLED) on the demo merchant."""
    seed = demo_seed()
    seed["hpgames"]["generated_rewards"] = [
        {
            "merchantId": DEMO_HPGAMES_MERCHANT_ID,
            "rewardConfigurationId": DEMO_HPGAMES_CONFIG_ID,
            "count": GENERATED - GENERATED // 10,
            "playerCount": GENERATED_PLAYERS,
        },
        {
            "merchantId": DEMO_HPGAMES_MERCHANT_ID,
            "rewardConfigurationId": DEMO_HPGAMES_RUNNING_CONFIG_ID,
            "count": GENERATED // 10,
            "status": "CANCELLED",
            "playerIdPrefix": "cancelled-player-",
        },
    ]
    with running_sandbox(seed=seed, **FAST) as server:
        yield server


def read_all(server, **fields) -> requests.Response:
    """POST a signed readAll to ``server``."""
    url = f"{server.base_url}{HPGAMES_REWARDS_PATH}/readAll"
    return requests.post(url, json=hpgames_body(fields), timeout=60)


def test_read_all_streams_chunked_and_honours_filters(big_sandbox):
    everything = read_all(big_sandbox)
    assert everything.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in everything.headers
    items = everything.json()
    assert len(items) == GENERATED + 33
    assert all(set(item) == READ_ALL_FIELDS for item in items)  # the documented item: no externalId
    cancelled = read_all(big_sandbox, status="CANCELLED").json()
    assert len(cancelled) == GENERATED // 10 + 1
    one_player = read_all(big_sandbox, playerId="gen-player-7").json()
    assert len(one_player) == (GENERATED - GENERATED // 10) // GENERATED_PLAYERS
    assert {r["playerId"] for r in one_player} == {"gen-player-7"}
    by_config = read_all(big_sandbox, rewardConfigurationId=DEMO_HPGAMES_RUNNING_CONFIG_ID).json()
    assert len(by_config) == GENERATED // 10
    by_external = read_all(big_sandbox, externalRewardConfigurationId=DEMO_HPGAMES_EXTERNAL_CONFIG_ID).json()
    assert {r["rewardConfigurationId"] for r in by_external} == {DEMO_HPGAMES_EXTERNAL_CONFIG_UUID}
    assert read_all(big_sandbox, status="CLOSED", playerId="gen-player-7").json() == []


def test_read_all_empty_result_is_an_empty_array(client):
    response = client.hpg("readAll", {"playerId": "nobody"})
    assert response.status_code == 200
    assert response.content == b"[]"
    assert json.loads(response.content) == []


def test_read_all_external_id_is_opt_in():
    with running_sandbox(read_all_external_id=True, **FAST) as server:
        items = read_all(server).json()
    assert all(set(item) == READ_ALL_FIELDS | {"externalId"} for item in items)
