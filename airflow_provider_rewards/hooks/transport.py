"""The one HTTP transport both vendors share: timeouts, bounded retries, error mapping.

What is retried: connection errors, timeouts, HTTP 408, 429, 500, 502, 503 and 504. Every other
4xx fails at once. Retries wait with exponential backoff and jitter, or exactly as long as a
``Retry-After`` header asks (up to ``retry_after_max``; a longer demand fails at once rather than
hammer the API early). Auth is applied per attempt, so HPGames retries are re-signed with a fresh
timestamp. :class:`Transport` (``requests``) serves the hooks; :class:`AsyncTransport` (``httpx``)
serves the trigger. Both share :class:`TransportSettings` and the decision in
:meth:`_RetryingTransport._delay_or_raise`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import requests

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsConnectionConfigError

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
ASYNC_NETWORK_ERRORS = (httpx.TransportError,)
MAX_ERROR_TEXT = 500

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransportSettings:
    """Timeouts and retry limits; each field can be set in the connection extra or as a hook argument.

    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for a response once connected.
    :param max_retries: retries after the first attempt (0 disables retrying).
    :param retry_backoff: delay before the first retry, doubled for each further retry.
    :param retry_backoff_max: upper bound of one backoff delay.
    :param retry_after_max: longest ``Retry-After`` the transport will honour by waiting.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retries: int = 5
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    retry_after_max: float = 300.0

    @classmethod
    def resolve(
        cls, conn_id: str, extra: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> TransportSettings:
        """Build settings from defaults, then the connection extra, then explicit hook arguments."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            source = overrides.get(spec.name) if overrides else None
            where = f"hook argument {spec.name}"
            if source is None and extra.get(spec.name) not in (None, ""):
                source, where = extra[spec.name], f"extra.{spec.name}"
            if source is None:
                continue
            kind = int if spec.type in ("int", int) else float
            try:
                number = kind(source)
            except (TypeError, ValueError):
                raise RewardsConnectionConfigError(
                    conn_id, where, f"must be a {kind.__name__}, got {source!r}"
                ) from None
            if number < 0 or (number == 0 and spec.name.endswith("timeout")):
                raise RewardsConnectionConfigError(conn_id, where, f"must be positive, got {source!r}")
            values[spec.name] = number
        return cls(**values)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def backoff_delay(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based): exponential, capped, with equal jitter."""
        ceiling = min(self.retry_backoff_max, self.retry_backoff * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of a secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def vendor_error(body: str) -> tuple[str | None, str | None]:
    """Extract ``(code, message)`` from an error body in any shape either vendor uses.

    Thanx: ``{"code", "message"}``, possibly wrapped in ``{"error": {...}}`` or ``{"errors": [...]}``.
    HPGames: ``{"errorCode", "errorText"}``. Anything else: ``(None, raw text)``.
    """
    text = body.strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error") or data.get("errors") or data
        if isinstance(inner, list) and inner:
            inner = inner[0]
        if isinstance(inner, dict):
            code = inner.get("code", inner.get("errorCode"))
            message = inner.get("message", inner.get("errorText"))
            if code is not None or message is not None:
                return (None if code is None else str(code), None if message is None else str(message))
    return None, text or None


class _RetryingTransport:
    """What the sync and async transports share: settings, auth, error building and retry decisions."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: Any,
        settings: TransportSettings,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.settings = settings
        self._secrets: tuple[str, ...] = getattr(auth, "secrets", ())

    def _error(self, method: str, path: str, status: int | None, body: str, attempts: int) -> RewardsApiError:
        code, message = vendor_error(scrub(body, self._secrets))
        if message and len(message) > MAX_ERROR_TEXT:
            message = f"{message[:MAX_ERROR_TEXT]}... (truncated)"
        return RewardsApiError(
            vendor=self.vendor,
            method=method,
            path=path,
            status_code=status,
            vendor_code=code,
            vendor_message=message,
            attempts=attempts,
        )

    def _delay_or_raise(
        self,
        method: str,
        path: str,
        attempt: int,
        *,
        status: int | None,
        body: str,
        retry_after: str | None = None,
    ) -> float:
        """Return how long to wait before the next attempt, or raise the error if there is none."""
        if status is not None and status not in RETRYABLE_STATUSES:
            raise self._error(method, path, status, body, attempt)
        if attempt > self.settings.max_retries:
            raise self._error(method, path, status, body, attempt)
        asked = parse_retry_after(retry_after)
        if asked is not None and asked > self.settings.retry_after_max:
            raise self._error(
                method, path, status, f"{body} (Retry-After {asked:.0f}s exceeds retry_after_max)", attempt
            )
        delay = asked if asked is not None else self.settings.backoff_delay(attempt)
        outcome = f"HTTP {status}" if status is not None else scrub(body, self._secrets)
        log.warning(
            "%s API %s %s: %s; retry %d of %d in %.1fs",
            self.vendor,
            method,
            path,
            outcome,
            attempt,
            self.settings.max_retries,
            delay,
        )
        return delay

    def _delay_after(
        self, method: str, path: str, attempt: int, response: requests.Response | httpx.Response
    ) -> float | None:
        """``None`` for a 2xx/3xx response; otherwise the delay before the next attempt, or the error raised."""
        if response.status_code < 400:
            return None
        return self._delay_or_raise(
            method,
            path,
            attempt,
            status=response.status_code,
            body=response.text,
            retry_after=response.headers.get("Retry-After"),
        )

    def _decode(self, response: requests.Response | httpx.Response, method: str, path: str) -> Any:
        """The response's JSON (``None`` for an empty body); a non-JSON body is an API error."""
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise self._error(method, path, response.status_code, f"response is not JSON: {response.text}", 1) from None

    @staticmethod
    def _network_failure(exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"


class Transport(_RetryingTransport):
    """Synchronous transport over one reused ``requests.Session``."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: requests.auth.AuthBase,
        settings: TransportSettings,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(vendor, base_url, auth, settings)
        self.session = session or requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Send a request, retrying transient failures; return a 2xx/3xx response or raise.

        ``json_body`` is serialized once (compact, UTF-8); every attempt sends those same bytes.
        """
        data = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=self.auth,
                    timeout=self.settings.timeout,
                )
            except NETWORK_ERRORS as exc:
                delay = self._delay_or_raise(method, path, attempt, status=None, body=self._network_failure(exc))
            else:
                delay = self._delay_after(method, path, attempt, response)
                if delay is None:
                    return response
            self.sleep(delay)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """:meth:`request`, then the decoded JSON body (``None`` when the body is empty)."""
        return self._decode(self.request(method, path, params=params, json_body=json_body), method, path)

    def close(self) -> None:
        self.session.close()


class AsyncTransport(_RetryingTransport):
    """Asynchronous transport over an ``httpx.AsyncClient`` owned by the caller."""

    sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: httpx.Auth,
        settings: TransportSettings,
        client: httpx.AsyncClient,
    ) -> None:
        super().__init__(vendor, base_url, auth, settings)
        self.client = client

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a body-less request, retrying transient failures; return a 2xx/3xx response or raise."""
        url = f"{self.base_url}{path}"
        timeout = httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.request(method, url, params=params, auth=self.auth, timeout=timeout)
            except ASYNC_NETWORK_ERRORS as exc:
                delay = self._delay_or_raise(method, path, attempt, status=None, body=self._network_failure(exc))
            else:
                delay = self._delay_after(method, path, attempt, response)
                if delay is None:
                    return response
            await self.sleep(delay)

    async def request_json(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """:meth:`request`, then the decoded JSON body (``None`` when the body is empty)."""
        return self._decode(await self.request(method, path, params=params), method, path)
