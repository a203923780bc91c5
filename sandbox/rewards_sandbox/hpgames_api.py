"""HPGames integration API of the sandbox (``/api/v1/integration/rewards/*`` and
``/api/v1/integration/reward-configurations/{read,readAll}``).

``rewards/readAll`` streams the documented item (no ``externalId`` unless the sandbox is told to
add it) as a chunked JSON array, so a million rewards never sit in memory as one string.

Every request is a POST with a JSON body carrying ``merchantId``, ``timestamp`` (epoch ms
integer) and ``hash`` = HMAC-SHA256(secret, merchantId + str(timestamp)), lowercase hex.
Checks run in this order: route (404/405, errorCode 1007), Content-Type (415, 1003), JSON and
auth fields (400, 1003), merchant (401, 1006), hash (401, 1001), timestamp window (401, 1002),
then the endpoint's own fields (400, 1003) and state rules (404 1004, 409 1005/1008/1009).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards_sandbox.errors import HpgError, HpgErrorCode
from rewards_sandbox.models import CONFIGURATION_STATUSES, REWARD_STATUSES, REWARD_TYPES, HpgMerchant
from rewards_sandbox.protocol import ApiRequest, ApiResponse, BodyError, parse_json_object
from rewards_sandbox.seed import UUID_RE
from rewards_sandbox.signing import now_ms, verify_hpgames_signature
from rewards_sandbox.state import SandboxState

PREFIX = "/api/v1/integration/"
#: Sandbox limit on list fields (the vendor documents none).
MAX_ITEMS = 10_000

Body = dict[str, Any]


def _invalid(text: str) -> HpgError:
    """A 400 validation error."""
    return HpgError(400, HpgErrorCode.VALIDATION, text)


def handle(
    state: SandboxState,
    request: ApiRequest,
    *,
    timestamp_window_s: float,
    clock_ms: Callable[[], int] = now_ms,
) -> ApiResponse:
    """Answer one HPGames request; errors are ``{"errorCode": int, "errorText": str}``."""
    try:
        endpoint = _ENDPOINTS.get(request.path.removeprefix(PREFIX))
        if endpoint is None:
            raise HpgError(404, HpgErrorCode.UNKNOWN_ENDPOINT, f"Unknown endpoint {request.path}")
        if request.method != "POST":
            raise HpgError(405, HpgErrorCode.UNKNOWN_ENDPOINT, f"{request.method} is not allowed; use POST")
        if not request.has_json_content_type():
            raise HpgError(415, HpgErrorCode.VALIDATION, "Content-Type must be application/json")
        try:
            body = parse_json_object(request.body)
        except BodyError as exc:
            raise _invalid(str(exc)) from None
        merchant = _authenticate(state, body, timestamp_window_s, clock_ms())
        return endpoint(state, merchant.id, body)
    except HpgError as exc:
        return ApiResponse.json(exc.status, exc.body())


def _authenticate(state: SandboxState, body: Body, window_s: float, now: int) -> HpgMerchant:
    """Check merchantId, hash and timestamp freshness; return the merchant."""
    merchant_id, timestamp, signature = body.get("merchantId"), body.get("timestamp"), body.get("hash")
    if not isinstance(merchant_id, str) or not merchant_id:
        raise _invalid("merchantId is required")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise _invalid("timestamp is required and must be an integer (epoch milliseconds)")
    if not isinstance(signature, str) or not signature:
        raise _invalid("hash is required")
    merchant = state.hpg_merchant(merchant_id)
    if merchant is None:
        raise HpgError(401, HpgErrorCode.UNKNOWN_MERCHANT, f"Unknown merchantId {merchant_id}")
    if not verify_hpgames_signature(merchant.secret, merchant_id, timestamp, signature):
        raise HpgError(401, HpgErrorCode.INVALID_SIGNATURE, "Invalid hash")
    if abs(now - timestamp) > window_s * 1000:
        raise HpgError(
            401,
            HpgErrorCode.STALE_TIMESTAMP,
            f"Timestamp {timestamp} is stale: more than {window_s:g} s away from server time {now}",
        )
    return merchant


# ---------------------------------------------------------------------------------------------
# Field validation
# ---------------------------------------------------------------------------------------------
def _uuid(value: Any, name: str) -> str:
    """Validate a UUID string (normalised to lower case)."""
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        raise _invalid(f"{name} must be a UUID, got {value!r}")
    return value.lower()


def _opt_str(body: Body, key: str) -> str | None:
    """An optional non-empty string (null means absent)."""
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _invalid(f"{key} must be a non-empty string")
    return value


def _opt_uuid(body: Body, key: str) -> str | None:
    """An optional UUID (null means absent)."""
    value = body.get(key)
    return None if value is None else _uuid(value, key)


def _str_list(body: Body, key: str, *, uuids: bool = False) -> list[str]:
    """A required non-empty list of non-empty strings (or UUIDs), at most MAX_ITEMS long."""
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise _invalid(f"{key} must be a non-empty list")
    if len(value) > MAX_ITEMS:
        raise _invalid(f"{key} may hold at most {MAX_ITEMS} items")
    items = []
    for index, item in enumerate(value):
        if uuids:
            items.append(_uuid(item, f"{key}[{index}]"))
        elif isinstance(item, str) and item:
            items.append(item)
        else:
            raise _invalid(f"{key}[{index}] must be a non-empty string, got {item!r}")
    return items


def _one_of(body: Body, first: str, second: str, *, required: bool) -> None:
    """Require exactly one (``required``) or at most one of two fields."""
    given = [key for key in (first, second) if body.get(key) is not None]
    if len(given) == 2:
        raise _invalid(f"Give only one of {first} and {second}")
    if required and not given:
        raise _invalid(f"One of {first} or {second} is required")


def _configuration(body: Body, *, required: bool) -> tuple[str | None, str | None]:
    """The (rewardConfigurationId, externalRewardConfigurationId) pair, validated."""
    _one_of(body, "rewardConfigurationId", "externalRewardConfigurationId", required=required)
    return _opt_uuid(body, "rewardConfigurationId"), _opt_str(body, "externalRewardConfigurationId")


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------
def _assign(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``rewards/assign`` → 201 ``[{"id", "playerId", "expirationDate"}]``."""
    config_id, external_config_id = _configuration(body, required=True)
    player_ids = _str_list(body, "playerIds")
    if len(set(player_ids)) != len(player_ids):
        raise _invalid("playerIds must not repeat a player")
    scheduled = body.get("scheduledStartDate")
    valid_scheduled = isinstance(scheduled, int) and not isinstance(scheduled, bool) and scheduled >= 0
    if scheduled is not None and not valid_scheduled:
        raise _invalid("scheduledStartDate must be an integer (epoch milliseconds)")
    created = state.assign_rewards(
        merchant_id,
        player_ids=player_ids,
        config_id=config_id,
        external_config_id=external_config_id,
        scheduled_start_date=scheduled,
        external_id=_opt_str(body, "externalId"),
    )
    return ApiResponse.json(201, created)


def _cancel(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``rewards/cancel`` by ``id`` xor ``externalId`` → 200, no body."""
    _one_of(body, "id", "externalId", required=True)
    reward_id, external_id = _opt_uuid(body, "id"), _opt_str(body, "externalId")
    state.cancel_rewards(
        merchant_id,
        reward_ids=[reward_id] if reward_id else [],
        external_ids=[external_id] if external_id else [],
    )
    return ApiResponse.empty(200)


def _bulk_cancel(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``rewards/bulkCancel`` by ``ids`` xor ``externalIds``, all or nothing → 200, no body."""
    _one_of(body, "ids", "externalIds", required=True)
    if body.get("ids") is not None:
        state.cancel_rewards(merchant_id, reward_ids=_str_list(body, "ids", uuids=True))
    else:
        state.cancel_rewards(merchant_id, external_ids=_str_list(body, "externalIds"))
    return ApiResponse.empty(200)


def _bulk_cancel_by_query(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``rewards/bulkCancelByQuery``: cancel the players' IN_PROGRESS rewards → 200, no body."""
    player_ids = _str_list(body, "playerIds")
    config_id, external_config_id = _configuration(body, required=False)
    state.cancel_by_query(
        merchant_id, player_ids=player_ids, config_id=config_id, external_config_id=external_config_id
    )
    return ApiResponse.empty(200)


def _read_all(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``rewards/readAll`` with optional filters → 200, a flat JSON array."""
    config_id, external_config_id = _configuration(body, required=False)
    status = body.get("status")
    if status is not None and status not in REWARD_STATUSES:
        raise _invalid(f"status must be one of {', '.join(REWARD_STATUSES)}")
    chunks = state.stream_read_all(
        merchant_id,
        player_id=_opt_str(body, "playerId"),
        config_id=config_id,
        external_config_id=external_config_id,
        status=status,
        external_id=state.read_all_external_id,
    )
    return ApiResponse.stream(200, chunks)


def _read_configurations(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``reward-configurations/readAll`` with optional ``name`` (partial), ``status``, ``rewardType``."""
    status = body.get("status")
    if status is not None and status not in CONFIGURATION_STATUSES:
        raise _invalid(f"status must be one of {', '.join(CONFIGURATION_STATUSES)}")
    reward_type = body.get("rewardType")
    if reward_type is not None and reward_type not in REWARD_TYPES:
        raise _invalid(f"rewardType must be one of {', '.join(REWARD_TYPES)}")
    configs = state.read_configurations(
        merchant_id, name=_opt_str(body, "name"), status=status, reward_type=reward_type
    )
    return ApiResponse.json(200, configs)


def _read_configuration(state: SandboxState, merchant_id: str, body: Body) -> ApiResponse:
    """``reward-configurations/read`` by ``id`` xor ``externalId`` → 200, the configuration."""
    _one_of(body, "id", "externalId", required=True)
    config = state.read_configuration(
        merchant_id, config_id=_opt_uuid(body, "id"), external_id=_opt_str(body, "externalId")
    )
    return ApiResponse.json(200, config)


_ENDPOINTS: dict[str, Callable[[SandboxState, str, Body], ApiResponse]] = {
    "rewards/assign": _assign,
    "rewards/cancel": _cancel,
    "rewards/bulkCancel": _bulk_cancel,
    "rewards/bulkCancelByQuery": _bulk_cancel_by_query,
    "rewards/readAll": _read_all,
    "reward-configurations/read": _read_configuration,
    "reward-configurations/readAll": _read_configurations,
}
