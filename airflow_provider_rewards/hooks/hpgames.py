"""Hook for the HPGames rewards integration API: cancel rewards and read them back.

Every request body is signed (:class:`~.auth.HPGamesSignatureAuth`): the connection's login is
the Merchant ID (a UUID), its password the merchant's secret key, its host the API base URL that
HPGames issues per environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from airflow.sdk import Connection

from airflow_provider_rewards.exceptions import RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.auth import HPGamesSignatureAuth
from airflow_provider_rewards.hooks.base import RewardsBaseHook, base_url_from, required_field
from airflow_provider_rewards.hooks.transport import TransportSettings
from airflow_provider_rewards.utils.validation import (
    UUID_EXAMPLE,
    at_most_one,
    exactly_one,
    require_id,
    require_uuid,
    unique_ids,
)

REWARDS_PATH = "/api/v1/integration/rewards"
REWARD_STATUSES = ("IN_PROGRESS", "CLOSED", "EXPIRED", "CANCELLED")
CONNECTION_TEST_PLAYER = "airflow-connection-test"


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


def _id_list(values: Sequence[str] | None, field: str, *, uuid: bool) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise RewardsInputError(f"{field} must be a list of ids, got {type(values).__name__}")
    ids = unique_ids(values, field, uuid=uuid)
    if not ids:
        raise RewardsInputError(f"{field} must not be empty")
    return ids


def _flatten(rows: Any) -> list[Reward]:
    """readAll's documented example is a nested array (``[[{...}]]``); accept flat or nested."""
    if not isinstance(rows, list):
        return []
    flat: list[Reward] = []
    for row in rows:
        flat.extend(_flatten(row) if isinstance(row, list) else [row] if isinstance(row, dict) else [])
    return flat


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
                f"must be the UUID HPGames issued (like {UUID_EXAMPLE}), got {merchant_id!r}",
            ) from None
        return HPGamesConfig(
            base_url=base_url_from(conn, default=None),
            merchant_id=merchant_id,
            secret=required_field(conn, "password", "Secret key"),
            settings=self.settings_from(extra),
        )

    def build_auth(self, config: HPGamesConfig) -> HPGamesSignatureAuth:
        return HPGamesSignatureAuth(config.merchant_id, config.secret)

    def _post(self, action: str, payload: Mapping[str, Any]) -> Any:
        return self.transport.request_json("POST", f"{REWARDS_PATH}/{action}", json_body=payload)

    def cancel_reward(self, reward_id: str | None = None, external_id: str | None = None) -> None:
        """Cancel one reward by its HPGames id (UUID) or its external id (``rewards/cancel``)."""
        if exactly_one(reward_id=reward_id, external_id=external_id) == "reward_id":
            self._post("cancel", {"id": require_uuid(reward_id, "reward_id")})
        else:
            self._post("cancel", {"externalId": require_id(external_id, "external_id")})

    def bulk_cancel_rewards(
        self, reward_ids: Sequence[str] | None = None, external_ids: Sequence[str] | None = None
    ) -> None:
        """Cancel many rewards in one request (``rewards/bulkCancel``), by ids or by external ids.

        The API answers 200 with no per-item result; a 4xx refuses the request as a whole.
        Duplicates are dropped. Batching is the caller's (or the operator's) concern.
        """
        if exactly_one(reward_ids=reward_ids, external_ids=external_ids) == "reward_ids":
            self._post("bulkCancel", {"ids": _id_list(reward_ids, "reward_ids", uuid=True)})
        else:
            self._post("bulkCancel", {"externalIds": _id_list(external_ids, "external_ids", uuid=False)})

    def bulk_cancel_rewards_by_query(
        self,
        player_ids: Sequence[str],
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
    ) -> None:
        """Cancel the rewards of the given players (``rewards/bulkCancelByQuery``).

        With ``reward_configuration_id`` (UUID) or ``external_reward_configuration_id`` (not both)
        only that configuration's rewards are cancelled; without, all the players' rewards.
        """
        players = _id_list(player_ids, "player_ids", uuid=False)
        if players is None:  # never a query without players: it could match every player's rewards
            raise RewardsInputError("player_ids is required: the players whose rewards are cancelled")
        payload: dict[str, Any] = {"playerIds": players}
        payload.update(self._configuration_filter(reward_configuration_id, external_reward_configuration_id))
        self._post("bulkCancelByQuery", payload)

    def read_rewards(
        self,
        player_id: str | None = None,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        status: str | None = None,
    ) -> list[Reward]:
        """List rewards matching every given filter (``rewards/readAll``); no pagination is documented."""
        payload: dict[str, Any] = {}
        if player_id is not None:
            payload["playerId"] = require_id(player_id, "player_id")
        payload.update(self._configuration_filter(reward_configuration_id, external_reward_configuration_id))
        if status is not None:
            if status not in REWARD_STATUSES:
                raise RewardsInputError(f"status must be one of {', '.join(REWARD_STATUSES)}; got {status!r}")
            payload["status"] = status
        return _flatten(self._post("readAll", payload))

    @staticmethod
    def _configuration_filter(
        reward_configuration_id: str | None, external_reward_configuration_id: str | None
    ) -> dict[str, str]:
        which = at_most_one(
            reward_configuration_id=reward_configuration_id,
            external_reward_configuration_id=external_reward_configuration_id,
        )
        if which == "reward_configuration_id":
            return {"rewardConfigurationId": require_uuid(reward_configuration_id, which)}
        if which == "external_reward_configuration_id":
            return {"externalRewardConfigurationId": require_id(external_reward_configuration_id, which)}
        return {}

    def check_connection(self) -> str:
        self.read_rewards(player_id=CONNECTION_TEST_PLAYER)
        return f"Connected to {self.config.base_url}; the request signature was accepted"
