"""HPGames side of the sandbox over real HTTP."""

from __future__ import annotations

import pytest
from rewards_sandbox import (
    DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS,
    DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
    DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
    DEMO_HPGAMES_CANCELLED_EXTERNAL_ID,
    DEMO_HPGAMES_CANCELLED_REWARD_ID,
    DEMO_HPGAMES_CLOSED_EXTERNAL_ID,
    DEMO_HPGAMES_CLOSED_REWARD_ID,
    DEMO_HPGAMES_CONFIG_ID,
    DEMO_HPGAMES_ENDED_CONFIG_ID,
    DEMO_HPGAMES_EXPIRED_REWARD_ID,
    DEMO_HPGAMES_EXTERNAL_CONFIG_ID,
    DEMO_HPGAMES_INACTIVE_CONFIG_ID,
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_HPGAMES_OTHER_MERCHANT_EXTERNAL_ID,
    DEMO_HPGAMES_OTHER_MERCHANT_ID,
    DEMO_HPGAMES_OTHER_MERCHANT_REWARD_IDS,
    DEMO_HPGAMES_OTHER_SECRET,
    DEMO_HPGAMES_QUERY_EXTERNAL_CONFIG_ID,
    DEMO_HPGAMES_QUERY_PLAYER_IDS,
    DEMO_HPGAMES_QUERY_REWARD_IDS,
    DEMO_HPGAMES_UNTOUCHED_REWARD_IDS,
    HpgErrorCode,
)
from rewards_sandbox.signing import now_ms

UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
#: The documented readAll item: no ``externalId``.
READ_ALL_FIELDS = {
    "id",
    "rewardConfigurationId",
    "playerId",
    "merchantId",
    "assignedDate",
    "expirationDate",
    "assignedFreeBets",
    "remainingFreeBets",
    "status",
}


def assert_error(response, status: int, code: HpgErrorCode) -> str:
    """Check an ``{"errorCode", "errorText"}`` error and return its text."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "errorText"}
    assert body["errorCode"] == code
    return body["errorText"]


def assert_ok_empty(response) -> None:
    """200 with no body."""
    assert response.status_code == 200, response.text
    assert response.content == b""


def assert_only_cancelled(client, before: dict[str, str], reward_ids) -> None:
    """Exactly ``reward_ids`` went from IN_PROGRESS to CANCELLED; the other merchant is untouched."""
    assert all(before[rid] == "IN_PROGRESS" for rid in reward_ids)
    assert client.reward_statuses() == {**before, **dict.fromkeys(reward_ids, "CANCELLED")}
    assert set(client.reward_statuses(DEMO_HPGAMES_OTHER_MERCHANT_ID).values()) == {"IN_PROGRESS"}


def test_signed_request_accepted(client):
    response = client.hpg("readAll")
    assert response.status_code == 200
    rewards = response.json()
    assert isinstance(rewards, list)
    assert len(rewards) == 33
    assert all(set(r) == READ_ALL_FIELDS and r["merchantId"] == DEMO_HPGAMES_MERCHANT_ID for r in rewards)


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"hash": "0" * 64}, 401, HpgErrorCode.INVALID_SIGNATURE),
        ({"timestamp": 1709289932725}, 401, HpgErrorCode.INVALID_SIGNATURE),  # hash no longer matches
        ({"merchantId": UNKNOWN_UUID}, 401, HpgErrorCode.UNKNOWN_MERCHANT),
        ({"hash": None}, 400, HpgErrorCode.VALIDATION),
        ({"timestamp": "1709289932725"}, 400, HpgErrorCode.VALIDATION),
        ({"merchantId": None}, 400, HpgErrorCode.VALIDATION),
    ],
    ids=[
        "wrong-hash",
        "tampered-timestamp",
        "unknown-merchant",
        "no-hash",
        "string-timestamp",
        "no-merchant",
    ],
)
def test_authentication_failures(client, overrides, status, code):
    before = client.reward_statuses()
    response = client.hpg("cancel", {"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]}, **overrides)
    assert_error(response, status, code)
    assert client.reward_statuses() == before


@pytest.mark.parametrize("skew_ms", [-301_000, 301_000])
def test_stale_timestamp_rejected(client, skew_ms):
    from rewards_sandbox.testing import hpgames_body

    body = hpgames_body({"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]}, timestamp=now_ms() + skew_ms)
    response = client.session.post(f"{client.url}/api/v1/integration/rewards/cancel", json=body, timeout=10)
    assert "stale" in assert_error(response, 401, HpgErrorCode.STALE_TIMESTAMP)
    assert client.reward_statuses()[DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]] == "IN_PROGRESS"


def test_malformed_requests(client):
    url = f"{client.url}/api/v1/integration/rewards/cancel"
    json_headers = {"Content-Type": "application/json"}
    assert_error(client.session.post(url, data="{oops", headers=json_headers), 400, HpgErrorCode.VALIDATION)
    assert_error(client.session.post(url, data="[]", headers=json_headers), 400, HpgErrorCode.VALIDATION)
    assert_error(client.session.post(url, data="{}", headers={"Content-Type": "text/plain"}), 415, 1003)
    assert_error(client.session.get(url), 405, HpgErrorCode.UNKNOWN_ENDPOINT)
    assert_error(client.hpg("nope"), 404, HpgErrorCode.UNKNOWN_ENDPOINT)


def test_cancel_by_id_and_external_id(client):
    before = client.reward_statuses()
    assert_ok_empty(client.hpg("cancel", {"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]}))
    assert_ok_empty(client.hpg("cancel", {"externalId": DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS[0]}))
    expected = (DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0], DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS[0])
    assert_only_cancelled(client, before, expected)
    # cancelling again is an idempotent no-op, by either reference
    assert_ok_empty(client.hpg("cancel", {"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]}))
    assert_ok_empty(client.hpg("cancel", {"externalId": DEMO_HPGAMES_CANCELLED_EXTERNAL_ID}))
    assert_only_cancelled(client, before, expected)


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"id": DEMO_HPGAMES_CLOSED_REWARD_ID}, 409, HpgErrorCode.NOT_CANCELLABLE),
        ({"externalId": DEMO_HPGAMES_CLOSED_EXTERNAL_ID}, 409, HpgErrorCode.NOT_CANCELLABLE),
        ({"id": DEMO_HPGAMES_EXPIRED_REWARD_ID}, 409, HpgErrorCode.NOT_CANCELLABLE),
        ({"id": UNKNOWN_UUID}, 404, HpgErrorCode.NOT_FOUND),
        ({"id": DEMO_HPGAMES_OTHER_MERCHANT_REWARD_IDS[0]}, 404, HpgErrorCode.NOT_FOUND),
        ({"id": "not-a-uuid"}, 400, HpgErrorCode.VALIDATION),
        ({"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0] + "\n"}, 400, HpgErrorCode.VALIDATION),
        ({}, 400, HpgErrorCode.VALIDATION),
        ({"id": DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0], "externalId": "x"}, 400, HpgErrorCode.VALIDATION),
    ],
    ids=["closed", "closed-ext", "expired", "unknown", "other-merchant", "not-uuid", "uuid-newline", "neither", "both"],
)
def test_cancel_rejections_change_nothing(client, fields, status, code):
    before = client.snapshot()
    assert_error(client.hpg("cancel", fields), status, code)
    assert client.snapshot()["hpgames"] == before["hpgames"]


def test_external_ids_are_scoped_by_merchant(client):
    before = client.reward_statuses()
    other = client.hpg(
        "cancel",
        {"externalId": DEMO_HPGAMES_OTHER_MERCHANT_EXTERNAL_ID},
        merchant_id=DEMO_HPGAMES_OTHER_MERCHANT_ID,
        secret=DEMO_HPGAMES_OTHER_SECRET,
    )
    assert_ok_empty(other)
    assert client.reward_statuses() == before
    other_statuses = client.reward_statuses(DEMO_HPGAMES_OTHER_MERCHANT_ID)
    assert other_statuses[DEMO_HPGAMES_OTHER_MERCHANT_REWARD_IDS[0]] == "CANCELLED"


def test_bulk_cancel_by_ids_and_external_ids(client):
    before = client.reward_statuses()
    ids = [*DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS, DEMO_HPGAMES_CANCELLED_REWARD_ID]  # cancelled one: no-op
    assert_ok_empty(client.hpg("bulkCancel", {"ids": ids}))
    assert_ok_empty(client.hpg("bulkCancel", {"externalIds": list(DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS)}))
    expected = DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS + DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS
    assert_only_cancelled(client, before, expected)


@pytest.mark.parametrize(
    ("fields", "status", "code", "named"),
    [
        (
            {"ids": [*DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS, UNKNOWN_UUID]},
            404,
            HpgErrorCode.NOT_FOUND,
            UNKNOWN_UUID,
        ),
        (
            {"ids": [*DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS, DEMO_HPGAMES_CLOSED_REWARD_ID]},
            409,
            HpgErrorCode.NOT_CANCELLABLE,
            DEMO_HPGAMES_CLOSED_REWARD_ID,
        ),
        ({"ids": [*DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS, "bad-id"]}, 400, HpgErrorCode.VALIDATION, "ids[5]"),
        (
            {"externalIds": [*DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS, "ext-missing"]},
            404,
            HpgErrorCode.NOT_FOUND,
            "ext-missing",
        ),
        ({"ids": []}, 400, HpgErrorCode.VALIDATION, "ids"),
        ({"ids": [UNKNOWN_UUID], "externalIds": ["x"]}, 400, HpgErrorCode.VALIDATION, "only one"),
    ],
    ids=["unknown", "closed", "malformed", "unknown-external", "empty", "both"],
)
def test_bulk_cancel_is_atomic(client, fields, status, code, named):
    before = client.snapshot()
    assert named in assert_error(client.hpg("bulkCancel", fields), status, code)
    assert client.snapshot()["hpgames"] == before["hpgames"]


def test_bulk_cancel_by_query_narrowed_by_configuration(client):
    before = client.reward_statuses()
    fields = {
        "playerIds": list(DEMO_HPGAMES_QUERY_PLAYER_IDS),
        "externalRewardConfigurationId": DEMO_HPGAMES_QUERY_EXTERNAL_CONFIG_ID,
    }
    assert_ok_empty(client.hpg("bulkCancelByQuery", fields))
    assert_only_cancelled(client, before, DEMO_HPGAMES_QUERY_REWARD_IDS)
    assert client.reward_statuses()[DEMO_HPGAMES_CLOSED_REWARD_ID] == "CLOSED"


def test_bulk_cancel_by_query_without_configuration(client):
    before = client.reward_statuses()
    player = DEMO_HPGAMES_QUERY_PLAYER_IDS[1]
    targets = [r["id"] for r in client.hpg("readAll", {"playerId": player, "status": "IN_PROGRESS"}).json()]
    assert set(DEMO_HPGAMES_QUERY_REWARD_IDS) & set(targets)
    assert set(DEMO_HPGAMES_UNTOUCHED_REWARD_IDS) & set(targets)
    assert_ok_empty(client.hpg("bulkCancelByQuery", {"playerIds": [player]}))
    assert_only_cancelled(client, before, targets)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"playerIds": []},
        {"playerIds": ["p"], "rewardConfigurationId": "nope"},
        {
            "playerIds": ["p"],
            "rewardConfigurationId": DEMO_HPGAMES_CONFIG_ID,
            "externalRewardConfigurationId": "x",
        },
    ],
    ids=["no-players", "empty-players", "bad-config-uuid", "both-configs"],
)
def test_bulk_cancel_by_query_validation(client, fields):
    assert_error(client.hpg("bulkCancelByQuery", fields), 400, HpgErrorCode.VALIDATION)


def test_read_all_filters(client):
    def ids(**fields):
        response = client.hpg("readAll", fields)
        assert response.status_code == 200
        return {r["id"] for r in response.json()}

    by_query_config = ids(
        externalRewardConfigurationId=DEMO_HPGAMES_EXTERNAL_CONFIG_ID,
        status="IN_PROGRESS",
        playerId="player-005",
    )
    assert by_query_config == set(DEMO_HPGAMES_QUERY_REWARD_IDS[:3])
    assert ids(status="CLOSED") == {DEMO_HPGAMES_CLOSED_REWARD_ID}
    assert ids(status="EXPIRED") == {DEMO_HPGAMES_EXPIRED_REWARD_ID}
    assert ids(rewardConfigurationId=DEMO_HPGAMES_CONFIG_ID) == ids() - ids(
        externalRewardConfigurationId=DEMO_HPGAMES_EXTERNAL_CONFIG_ID
    ) - ids(rewardConfigurationId=DEMO_HPGAMES_ENDED_CONFIG_ID)
    assert ids(externalRewardConfigurationId="cfg-unknown") == set()
    assert_error(client.hpg("readAll", {"status": "DONE"}), 400, HpgErrorCode.VALIDATION)


def test_assign(client):
    single = client.hpg("assign", {"rewardConfigurationId": DEMO_HPGAMES_CONFIG_ID, "playerIds": ["p-1"]})
    assert single.status_code == 201
    [item] = single.json()
    assert set(item) == {"id", "playerId", "expirationDate"}
    assert item["playerId"] == "p-1"
    fields = {"externalRewardConfigurationId": DEMO_HPGAMES_EXTERNAL_CONFIG_ID, "playerIds": ["p-2", "p-3"]}
    several = client.hpg("assign", {**fields, "externalId": "promo-7"})
    assert several.status_code == 201
    assert {r["id"]: r["status"] for r in client.hpg("readAll").json()}[item["id"]] == "IN_PROGRESS"
    rewards = client.snapshot()["hpgames"]["merchants"][DEMO_HPGAMES_MERCHANT_ID]["rewards"]
    assert rewards[item["id"]]["externalId"] == f"gen-{item['id']}"
    assert {rewards[r["id"]]["externalId"] for r in several.json()} == {"promo-7-p-2", "promo-7-p-3"}
    assert_ok_empty(client.hpg("cancel", {"externalId": "promo-7-p-3"}))
    duplicate = client.hpg("assign", {**fields, "externalId": "promo-7"})
    assert_error(duplicate, 409, HpgErrorCode.DUPLICATE_EXTERNAL_ID)
    inactive_fields = {"rewardConfigurationId": DEMO_HPGAMES_INACTIVE_CONFIG_ID, "playerIds": ["p"]}
    inactive = client.hpg("assign", inactive_fields)
    assert_error(inactive, 409, HpgErrorCode.CONFIGURATION_INACTIVE)
    unknown = client.hpg("assign", {"rewardConfigurationId": UNKNOWN_UUID, "playerIds": ["p"]})
    assert_error(unknown, 404, HpgErrorCode.NOT_FOUND)
    assert_error(client.hpg("assign", {"playerIds": ["p"]}), 400, HpgErrorCode.VALIDATION)
