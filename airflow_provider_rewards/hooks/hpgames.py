"""Hook for the HPGames rewards API (signed bodies): login is the Merchant ID, password the secret, host the URL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypedDict

import requests
from airflow.sdk import Connection

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.auth import HPGamesSignatureAuth
from airflow_provider_rewards.hooks.base import RewardsBaseHook, base_url_from, extra_field, required_field
from airflow_provider_rewards.hooks.transport import TransportSettings, vendor_refusal_code
from airflow_provider_rewards.utils.json_stream import JsonStreamError, iter_array_objects
from airflow_provider_rewards.utils.validation import (
    UUID_EXAMPLE,
    at_most_one,
    exactly_one,
    require_id,
    require_id_list,
    require_uuid,
)

REWARDS_PATH = "/api/v1/integration/rewards"
REWARD_STATUSES = ("IN_PROGRESS", "CLOSED", "EXPIRED", "CANCELLED")
CONNECTION_TEST_PLAYER = "airflow-connection-test"
STREAM_CHUNK_BYTES = 64 * 1024
#: The check of each single-id argument: HPGames ids are UUIDs, external and player ids free text.
ID_CHECKS: dict[str, Callable[[object, str], str]] = {
    "reward_id": require_uuid,
    "external_id": require_id,
    "player_id": require_id,
    "reward_configuration_id": require_uuid,
    "external_reward_configuration_id": require_id,
}
#: Whether the ids of each list argument are UUIDs.
ID_LIST_IS_UUID = {"reward_ids": True, "external_ids": False, "player_ids": False}
#: The connection extra naming the ``errorCode`` values with which HPGames refuses an already-cancelled reward.
ALREADY_CANCELLED_CODES_FIELD = "already_cancelled_codes"
CONFIGURATION_KEYS = {
    "reward_configuration_id": "rewardConfigurationId",
    "external_reward_configuration_id": "externalRewardConfigurationId",
}


def check_id(field: str, value: object) -> str:
    """``value`` checked as the argument ``field`` (a UUID is lowercased)."""
    return ID_CHECKS[field](value, field)


def configuration_payload(
    reward_configuration_id: object = None, external_reward_configuration_id: object = None
) -> dict[str, str]:
    """The request fields of a configuration filter, validated (at most one of the two; ``{}`` for none)."""
    named = {
        "reward_configuration_id": reward_configuration_id,
        "external_reward_configuration_id": external_reward_configuration_id,
    }
    which = at_most_one(**named)
    return {} if which is None else {CONFIGURATION_KEYS[which]: check_id(which, named[which])}


class Reward(TypedDict, total=False):
    """A reward as ``rewards/readAll`` returns it (documented fields)."""

    id: str
    externalId: str
    rewardConfigurationId: str
    playerId: str
    merchantId: str
    assignedDate: int
    expirationDate: int
    assignedFreeBets: int
    remainingFreeBets: int
    status: str


@dataclass(frozen=True)
class HPGamesConfig:
    """A validated ``hpgames`` connection. ``repr`` never shows the secret."""

    base_url: str
    merchant_id: str
    secret: str = field(repr=False)
    settings: TransportSettings = field(default_factory=TransportSettings)
    already_cancelled_codes: frozenset[str] = frozenset()


def parse_already_cancelled_codes(conn_id: str, value: object) -> frozenset[str]:
    """The extra ``already_cancelled_codes``: vendor error codes, as a JSON list or comma-separated text.

    Empty (the default) means no code is trusted to mean "already cancelled": such a refusal is then
    settled only by reading the reward back.
    """
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, str | int) and not isinstance(item, bool) for item in items
    ):
        raise RewardsConnectionConfigError(
            conn_id,
            ALREADY_CANCELLED_CODES_FIELD,
            f'must be the errorCode values HPGames answers for an already-cancelled reward, as "1010,1011" or '
            f'["1010"]; got {type(value).__name__}',
        )
    return frozenset(str(item).strip() for item in items) - {""}


def readall_payload(
    player_id: object = None,
    reward_configuration_id: object = None,
    external_reward_configuration_id: object = None,
    status: object = None,
) -> dict[str, Any]:
    """The validated filter fields of a ``rewards/readAll`` request (``{}`` reads every reward)."""
    payload: dict[str, Any] = {}
    if player_id is not None:
        payload["playerId"] = check_id("player_id", player_id)
    payload.update(configuration_payload(reward_configuration_id, external_reward_configuration_id))
    if status is not None:
        if status not in REWARD_STATUSES:
            raise RewardsInputError(f"status must be one of {', '.join(REWARD_STATUSES)}; got {status!r}")
        payload["status"] = status
    return payload


def _network_errors_as_os_errors(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``iter_content`` with requests' own streaming errors turned into :class:`OSError`."""
    try:
        yield from pieces
    except requests.RequestException as error:
        raise OSError(str(error)) from None


class HPGamesHook(RewardsBaseHook[HPGamesConfig]):
    """Talks to the HPGames rewards integration API with signed request bodies.

    :param hpgames_conn_id: a connection of type ``hpgames`` (default ``hpgames_default``).
    :param transport_overrides: ``connect_timeout``, ``read_timeout``, ``max_retries``,
        ``retry_backoff``, ``retry_backoff_max``, ``retry_after_max`` (override the connection extra).
    """

    conn_name_attr = "hpgames_conn_id"
    default_conn_name = "hpgames_default"
    conn_type = "hpgames"
    hook_name = "HPGames Rewards API"
    vendor = "HPGames"

    def __init__(self, hpgames_conn_id: str = default_conn_name, **transport_overrides: Any) -> None:
        super().__init__(hpgames_conn_id, transport_overrides)

    def parse_connection(self, conn: Connection, extra: Mapping[str, Any]) -> HPGamesConfig:
        merchant_id = required_field(conn, "login", "Merchant ID")
        try:
            require_uuid(merchant_id, "login")
        except RewardsInputError:
            raise RewardsConnectionConfigError(
                conn.conn_id,
                "login (Merchant ID)",
                f"must be the UUID HPGames issued (like {UUID_EXAMPLE}) (value not shown: it may be the secret)",
            ) from None
        return HPGamesConfig(
            base_url=base_url_from(conn, default=None),
            merchant_id=merchant_id,
            secret=required_field(conn, "password", "Secret key"),
            settings=self.settings_from(extra),
            already_cancelled_codes=parse_already_cancelled_codes(
                conn.conn_id, extra_field(self.conn_type, extra, ALREADY_CANCELLED_CODES_FIELD)
            ),
        )

    def means_already_cancelled(self, error: Exception) -> bool:
        """True when ``error`` is a refusal whose ``errorCode`` the connection's ``already_cancelled_codes`` lists.

        Such a refusal of a single reward settles it as already cancelled without a read-back; for a request
        of several rewards it only says that some of them are.
        """
        codes = self.config.already_cancelled_codes
        return bool(codes) and isinstance(error, RewardsApiError) and error.vendor_code in codes

    def build_auth(self, config: HPGamesConfig) -> HPGamesSignatureAuth:
        return HPGamesSignatureAuth(config.merchant_id, config.secret)

    def _post(self, action: str, payload: Mapping[str, Any]) -> Any:
        return self.transport.request_json("POST", f"{REWARDS_PATH}/{action}", json_body=payload)

    def cancel_reward(self, reward_id: str | None = None, external_id: str | None = None) -> None:
        """Cancel one reward by its HPGames id (UUID) or its external id (``rewards/cancel``)."""
        field = exactly_one(reward_id=reward_id, external_id=external_id)
        value = check_id(field, reward_id if field == "reward_id" else external_id)
        self._post("cancel", {"id" if field == "reward_id" else "externalId": value})

    def bulk_cancel_rewards(
        self, reward_ids: Sequence[str] | None = None, external_ids: Sequence[str] | None = None
    ) -> None:
        """Cancel many rewards in one request (``rewards/bulkCancel``), by ids or by external ids.

        The API answers 200 with no per-item result; a 4xx refuses the request as a whole.
        Duplicates are dropped. Batching is the caller's (or the operator's) concern; a
        :class:`~.validation.ValidatedIds` list (checked once by the caller) is sent without re-checking.
        """
        field = exactly_one(reward_ids=reward_ids, external_ids=external_ids)
        ids = require_id_list(reward_ids if field == "reward_ids" else external_ids, field, uuid=ID_LIST_IS_UUID[field])
        self._post("bulkCancel", {"ids" if field == "reward_ids" else "externalIds": ids})

    def bulk_cancel_rewards_by_query(
        self,
        player_ids: Sequence[str],
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
    ) -> None:
        """Cancel the rewards of the given players (``rewards/bulkCancelByQuery``).

        With ``reward_configuration_id`` (UUID) or ``external_reward_configuration_id`` (not both)
        only that configuration's rewards are cancelled; without, all the players' rewards.
        A :class:`~.validation.ValidatedIds` list of players is sent without re-checking.
        """
        if player_ids is None:  # never a query without players: it could match every player's rewards
            raise RewardsInputError("player_ids is required: the players whose rewards are cancelled")
        payload: dict[str, Any] = {"playerIds": require_id_list(player_ids, "player_ids", uuid=False)}
        payload.update(configuration_payload(reward_configuration_id, external_reward_configuration_id))
        self._post("bulkCancelByQuery", payload)

    def read_rewards(
        self,
        player_id: str | None = None,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        status: str | None = None,
    ) -> list[Reward]:
        """List rewards matching every given filter (``rewards/readAll``); no pagination is documented.

        The whole answer is held in memory: use :meth:`iter_rewards` for a merchant-wide read.
        """
        return list(
            self.iter_rewards(
                player_id=player_id,
                reward_configuration_id=reward_configuration_id,
                external_reward_configuration_id=external_reward_configuration_id,
                status=status,
            )
        )

    def iter_rewards(
        self,
        player_id: str | None = None,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        status: str | None = None,
    ) -> Iterator[Reward]:
        """Stream ``rewards/readAll`` (filters as :meth:`read_rewards`), yielding items as they arrive.

        Memory holds one item and one chunk, whatever the answer's size; flat or nested arrays are
        accepted. Error answers are retried and mapped by the transport before the body is read. A body
        that is not an array (such as 200 with ``errorCode``), an item with a non-zero ``errorCode``, a
        truncated body or a connection broken mid-body raises :class:`RewardsApiError`: a half-read
        stream cannot be resumed, so the caller retries the whole read.
        """
        payload = readall_payload(player_id, reward_configuration_id, external_reward_configuration_id, status)
        path = f"{REWARDS_PATH}/readAll"
        transport = self.transport
        response = transport.request("POST", path, json_body=payload, stream=True)

        def failure(body: str, code: str | None = None) -> RewardsApiError:
            return transport.api_error("POST", path, response.status_code, body, 1, code)  # scrubbed

        with response:
            try:
                for item in iter_array_objects(_network_errors_as_os_errors(response.iter_content(STREAM_CHUNK_BYTES))):
                    refused = vendor_refusal_code(item)
                    if refused is not None:
                        raise failure(json.dumps(item)[:2000], refused)
                    yield item  # type: ignore[misc]  # a readAll item: a JSON object
            except JsonStreamError as error:
                raise failure(
                    json.dumps(error.value) if error.value is not None else f"unreadable readAll answer: {error}"
                ) from None
            except OSError as error:  # the connection broke mid-body
                raise failure(f"{type(error).__name__}: {error}") from None

    def check_connection(self) -> str:
        self.read_rewards(player_id=CONNECTION_TEST_PLAYER)
        return f"Connected to {self.config.base_url}; the request signature was accepted"

    # ---------------------------------------------------------------------------------------------
    # Reward configurations (``reward-configurations/readAll``): discovery of what has ended
    # ---------------------------------------------------------------------------------------------
    CONFIGURATIONS_PATH = "/api/v1/integration/reward-configurations"
    CONFIGURATION_STATUSES = ("ACTIVE", "INACTIVE")
    REWARD_TYPES = ("FREE_BET",)

    def read_reward_configurations(
        self, name: str | None = None, status: str | None = None, reward_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The merchant's reward configurations matching every given filter (``reward-configurations/readAll``).

        ``name`` is a partial match (vendor docs §2.5), ``status`` ``ACTIVE``/``INACTIVE``, ``reward_type``
        ``FREE_BET``. No pagination is documented; the answer (one object per configuration, flat or nested
        array) is returned as a list. Arguments are validated before the request.
        """
        payload: dict[str, Any] = {}
        if name is not None:
            payload["name"] = require_id(name, "name")
        for field_name, value, allowed, key in (
            ("status", status, self.CONFIGURATION_STATUSES, "status"),
            ("reward_type", reward_type, self.REWARD_TYPES, "rewardType"),
        ):
            if value is not None:
                if value not in allowed:
                    raise RewardsInputError(f"{field_name} must be one of {', '.join(allowed)}; got {value!r:.60}")
                payload[key] = value
        data = self.transport.request_json("POST", f"{self.CONFIGURATIONS_PATH}/readAll", json_body=payload)
        found: list[dict[str, Any]] = []
        pending = [data] if isinstance(data, list) else []
        while pending:  # the documented readAll examples nest arrays ([[{...}]]); accept flat or nested
            for item in pending.pop():
                if isinstance(item, list):
                    pending.append(item)
                elif isinstance(item, dict):
                    found.append(item)
        return found

    def ended_reward_configurations(
        self,
        before_ms: int,
        grace: timedelta = timedelta(0),
        *,
        after_ms: int | None = None,
        name: str | None = None,
        status: str | None = None,
        reward_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """The configurations whose ``endDate`` lies in ``[after_ms - grace, before_ms - grace)`` (epoch ms).

        ``grace`` (a ``timedelta``, default zero) delays "ended": a configuration counts as ended ``grace``
        after its ``endDate``. Half-open windows tile: consecutive runs with ``after_ms`` = the previous
        ``before_ms`` see every configuration exactly once. A configuration without an integer ``endDate``
        never ends. Sorted by ``endDate``, then id. Every argument is checked before the request.
        """
        if not isinstance(grace, timedelta) or grace < timedelta(0):
            raise RewardsInputError(f"grace must be a timedelta of zero or more, got {grace!r:.60}")
        for field_name, value in (("before_ms", before_ms), ("after_ms", after_ms)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise RewardsInputError(f"{field_name} must be epoch milliseconds (an int >= 0), got {value!r:.60}")
        if after_ms is not None and after_ms >= before_ms:
            raise RewardsInputError(
                f"after_ms ({after_ms}) must be before before_ms ({before_ms}): the window would be empty"
            )
        grace_ms = int(grace.total_seconds() * 1000)
        low = None if after_ms is None else after_ms - grace_ms
        high = before_ms - grace_ms

        def ended(config: Mapping[str, Any]) -> bool:
            end = config.get("endDate")
            if isinstance(end, bool) or not isinstance(end, int):
                return False
            return end < high and (low is None or end >= low)

        configs = self.read_reward_configurations(name=name, status=status, reward_type=reward_type)
        return sorted(filter(ended, configs), key=lambda config: (config["endDate"], str(config.get("id"))))
