"""Shared hook base: connection parsing helpers, the transport and its closing, connection testing."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook, Connection

from airflow_provider_rewards.exceptions import RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.rate_limit import SyncRateLimiter
from airflow_provider_rewards.hooks.transport import Transport, TransportSettings

ConfigT = TypeVar("ConfigT")
TRANSPORT_ARGUMENTS = frozenset(TransportSettings.__dataclass_fields__)


def extra_field(conn_type: str, extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra field saved by the UI form (``name``) or by older tooling (``extra__<type>__name``)."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def base_url_from(conn: Connection, *, default: str | None) -> str:
    """The API base URL from the connection's host (and port), e.g. ``https://api.thanx.com``.

    A host without a scheme gets ``https://``. Raises naming the connection and field when the
    host is missing (and there is no default) or is not an http(s) URL.
    """
    host = (conn.host or "").strip()
    if not host:
        if default is None:
            raise RewardsConnectionConfigError(
                conn.conn_id, "host (API base URL)", "is required, e.g. https://api.example.com"
            )
        return default
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RewardsConnectionConfigError(
            conn.conn_id,
            "host (API base URL)",
            f"must be an http(s) URL like https://api.example.com, got {host!r}",
        )
    if conn.port and parts.port is None:
        host = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
    return host.rstrip("/")


def required_field(conn: Connection, attribute: str, label: str) -> str:
    """A connection attribute (``login``/``password``) that must be set; never echoes its value."""
    value = getattr(conn, attribute)
    if not value or not str(value).strip():
        raise RewardsConnectionConfigError(conn.conn_id, f"{attribute} ({label})", "is required but empty")
    return str(value)


class RewardsBaseHook(BaseHook, Generic[ConfigT]):
    """Base of the vendor hooks: parses the connection once and owns one :class:`Transport`.

    Subclasses set the discovery attributes (``conn_name_attr``, ``default_conn_name``,
    ``conn_type``, ``hook_name``), ``vendor``, and implement :meth:`parse_connection`,
    :meth:`build_auth` and :meth:`check_connection`.

    The HTTP session opens on the first request; :meth:`close` (or leaving ``with hook:``) closes it.
    """

    vendor: ClassVar[str]

    def __init__(self, conn_id: str, transport_overrides: Mapping[str, Any]) -> None:
        super().__init__()
        unknown = set(transport_overrides) - TRANSPORT_ARGUMENTS
        if unknown:
            raise RewardsInputError(
                f"Unknown hook argument(s) {sorted(unknown)}; transport settings are {sorted(TRANSPORT_ARGUMENTS)}"
            )
        self.conn_id = conn_id
        self.transport_overrides = {k: v for k, v in transport_overrides.items() if v is not None}

    @abstractmethod
    def parse_connection(self, conn: Connection, extra: Mapping[str, Any]) -> ConfigT:
        """Validate the connection and return the vendor's typed configuration."""

    @abstractmethod
    def build_auth(self, config: ConfigT) -> requests.auth.AuthBase:
        """The ``requests`` auth object for this vendor."""

    @abstractmethod
    def check_connection(self) -> str:
        """Make one cheap authenticated call; return a success message or raise."""

    def settings_from(self, extra: Mapping[str, Any]) -> TransportSettings:
        return TransportSettings.resolve(self.conn_id, extra, self.transport_overrides)

    def rate_limiter(self, config: ConfigT) -> SyncRateLimiter | None:
        """The process's limiter for this connection's credential (``None``: no budget, the default)."""
        return None

    @cached_property
    def config(self) -> ConfigT:
        """The validated connection configuration (looked up once per hook instance)."""
        conn = self.get_connection(self.conn_id)
        return self.parse_connection(conn, conn.extra_dejson)

    @cached_property
    def transport(self) -> Transport:
        config: Any = self.config
        return Transport(
            self.vendor, config.base_url, self.build_auth(config), config.settings, limiter=self.rate_limiter(config)
        )

    def get_conn(self) -> requests.Session:
        """The ``requests.Session`` reused for every call of this hook."""
        return self.transport.session

    def close(self) -> None:
        """Close the HTTP session if one was opened; a later request opens a new one."""
        transport = self.__dict__.pop("transport", None)
        if transport is not None:
            transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: ``(True, message)`` if an authenticated call succeeds."""
        try:
            return True, self.check_connection()
        except Exception as exc:
            return False, str(exc)
