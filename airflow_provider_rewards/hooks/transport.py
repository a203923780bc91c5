"""The one HTTP transport both vendors share: timeouts, bounded retries, error mapping.

What is retried: connection errors, timeouts, HTTP 408, 429, 500, 502, 503 and 504. Every other
4xx fails at once. Retries wait with exponential backoff and jitter, or exactly as long as a
``Retry-After`` header asks (up to ``retry_after_max``; a longer demand fails at once rather than
hammer the API early). Auth is applied per attempt, so HPGames retries are re-signed with a fresh
timestamp. :class:`Transport` (``requests``) serves the hooks; :class:`AsyncTransport` (``httpx``)
serves the trigger. Both share :class:`TransportSettings`, the CA resolution of :func:`ssl_verify`
and the decisions of :meth:`_RetryingTransport._delay_after` (what a response means) and
:meth:`_RetryingTransport._delay_or_raise` (retry or fail). A 2xx/3xx whose JSON body carries a
non-zero ``errorCode`` (HPGames' way of refusing) is a refusal like a 4xx: raised, never retried
(no HPGames code is documented as transient). Given a limiter (``hooks/rate_limit.py``), each attempt
first waits its turn in the credential's budget, and a 429 pauses that credential for its ``Retry-After``
(or the backoff delay) for every caller of the limiter, sync and async alike; every 429 counts in
``throttle_count``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Literal

import certifi
import httpx
import requests

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.rate_limit import (
    MAX_PENALTY,
    AsyncRateLimiter,
    CredentialPaused,
    RateArithmetic,
    SyncRateLimiter,
)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TOO_MANY_REQUESTS = 429
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
ASYNC_NETWORK_ERRORS = (httpx.TransportError,)
MAX_ERROR_TEXT = 500
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")

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

    def __post_init__(self) -> None:
        for spec in fields(self):
            problem = self.problem(spec.name, getattr(self, spec.name))
            if problem:
                raise RewardsInputError(f"Transport setting {spec.name} {problem}")

    @staticmethod
    def problem(name: str, number: float) -> str | None:
        """Why ``number`` is not a valid value of setting ``name`` (``None`` if it is): finite, >= 0, timeouts > 0."""
        if not math.isfinite(number):
            return f"must be a finite number, got {number!r}"
        if number < 0 or (number == 0 and name.endswith("timeout")):
            return f"must be {'positive' if name.endswith('timeout') else 'zero or more'}, got {number!r}"
        return None

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
            problem = cls.problem(spec.name, number)
            if problem:
                raise RewardsConnectionConfigError(conn_id, where, problem)
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
    """Seconds asked for by a ``Retry-After`` header, or ``None`` when absent or unparseable.

    Delta-seconds may be fractional (``1.5``); an HTTP date counts from now; a negative value or a
    past date means 0. Anything else (``soon``, ``²``, ``nan``) is ignored: the caller backs off.
    """
    text = (value or "").strip()
    if re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", text):
        return max(0.0, float(text))
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def resolve_ca_bundle(verify: bool | str | None = None) -> str | Literal[False]:
    """The CA bundle (file or directory) to trust, or ``False`` to skip verification.

    In order: an explicit ``verify`` (``False``, or a CA bundle path), else ``REQUESTS_CA_BUNDLE``,
    else ``CURL_CA_BUNDLE``, else ``SSL_CERT_FILE``, else certifi's bundle. ``True``/``None`` mean
    "verify with the default". Both transports use this, so the hook and the trigger trust the same CAs.
    """
    if verify is False:
        return False
    if isinstance(verify, str) and verify.strip():
        return verify.strip()
    for variable in CA_BUNDLE_VARIABLES:
        if os.environ.get(variable, "").strip():
            return os.environ[variable].strip()
    return certifi.where()


def ssl_verify(verify: bool | str | None = None) -> ssl.SSLContext | Literal[False]:
    """The ``verify`` argument for an ``httpx`` client: ``False``, or a context trusting :func:`resolve_ca_bundle`.

    Contexts are cached per bundle path (building one costs milliseconds). A missing bundle raises
    :class:`RewardsInputError` naming the path.
    """
    bundle = resolve_ca_bundle(verify)
    return False if bundle is False else _ssl_context(bundle)


@lru_cache(maxsize=16)
def _ssl_context(bundle: str) -> ssl.SSLContext:
    if not os.path.exists(bundle):
        raise RewardsInputError(
            f"CA bundle {bundle} does not exist; fix the connection's verify or {'/'.join(CA_BUNDLE_VARIABLES)}"
        )
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


JSON_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _escaped_forms(char: str) -> str:
    """A regex matching ``char`` written plainly, JSON-escaped (``\\/``, ``\\n``, ``\\u00e9``) or as ``\\xNN``."""
    forms = [re.escape(char)]
    if char in JSON_SHORT_ESCAPES:
        forms.append(re.escape(JSON_SHORT_ESCAPES[char]))
    units = char.encode("utf-16-be")
    forms.append("".join(rf"\\u(?i:{units[i : i + 2].hex()})" for i in range(0, len(units), 2)))
    if ord(char) < 256:
        forms.append(rf"\\x(?i:{ord(char):02x})")
    return f"(?:{'|'.join(forms)})"


@lru_cache(maxsize=64)
def _secret_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    variants = sorted({v for secret in secrets if secret for v in (secret, secret.strip()) if v}, key=len, reverse=True)
    if not variants:
        return None
    return re.compile("|".join("".join(_escaped_forms(char) for char in variant) for variant in variants))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of a secret in ``text`` with ``***``.

    Each secret is matched as given and stripped, with any of its characters written plainly or
    escaped as JSON (``\\/``, ``\\n``, ``\\uXXXX`` in either case) or Python (``\\xNN``) would write it,
    so an echo in a raw body, a decoded body or a ``repr`` is caught alike.
    """
    pattern = _secret_pattern(tuple(secrets))
    return text if pattern is None or not text else pattern.sub("***", text)


def is_rate_limited(exc: BaseException) -> bool:
    """Whether ``exc`` is a 429 that outlasted the retries (or asked for a too long ``Retry-After``).

    Waits treat it as a delayed poll, never as a failure: only their deadline ends them.
    """
    return isinstance(exc, RewardsApiError) and exc.status_code == TOO_MANY_REQUESTS


def vendor_refusal_code(data: Any) -> str | None:
    """The non-zero ``errorCode`` of a decoded 2xx body, or ``None`` when it reports success.

    Success: no ``errorCode``, ``null``, ``0``/``false`` or a string of zeros (``"0"``); any other
    value (``1005``, ``"1005"``, ``"E_AUTH"``) is a refusal.
    """
    code = data.get("errorCode") if isinstance(data, dict) else None
    if code is None or code is False or code == 0 or (isinstance(code, str) and code.strip().strip("0") == ""):
        return None
    return str(code)


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
    """What the sync and async transports share: settings, auth, error building, retry decisions, the 429 pause."""

    limiter: RateArithmetic | None

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: Any,
        settings: TransportSettings,
        limiter: RateArithmetic | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.settings = settings
        self.limiter = limiter
        self._secrets: tuple[str, ...] = getattr(auth, "secrets", ())
        #: Every 429 answer seen by this transport, retried or not.
        self.throttle_count = 0

    def api_error(
        self, method: str, path: str, status: int | None, body: str, attempts: int, code: str | None = None
    ) -> RewardsApiError:
        """The error for this answer, its code and message scrubbed of secrets before and after JSON decoding."""
        parsed_code, message = vendor_error(scrub(body, self._secrets))
        code = code or parsed_code
        code = None if code is None else scrub(code, self._secrets)
        message = None if message is None else scrub(message, self._secrets)
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
            raise self.api_error(method, path, status, body, attempt)
        asked = parse_retry_after(retry_after)
        delay = asked if asked is not None else self.settings.backoff_delay(attempt)
        if status == TOO_MANY_REQUESTS:
            self._throttled(min(delay, MAX_PENALTY))
        if attempt > self.settings.max_retries:
            raise self.api_error(method, path, status, body, attempt)
        if asked is not None and asked > self.settings.retry_after_max:
            raise self.api_error(
                method, path, status, f"{body} (Retry-After {asked:.0f}s exceeds retry_after_max)", attempt
            )
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

    def _throttled(self, seconds: float) -> None:
        """A 429 asked for (or backs off by) ``seconds``: pause every caller of the credential's limiter.

        Called even when this request will not be retried (retries spent, ``Retry-After`` too long), so the
        other callers do not send into the throttle either. Without a limiter (no budget) nothing is paused.
        """
        if self.limiter is not None:
            self.limiter.penalize(seconds)

    def _delay_after(
        self,
        method: str,
        path: str,
        attempt: int,
        response: requests.Response | httpx.Response,
        *,
        streamed: bool = False,
    ) -> float | None:
        """``None`` for a success; otherwise the delay before the next attempt, or the error raised.

        Success is a 2xx/3xx whose body is not a JSON object with a non-zero ``errorCode``; such a
        refusal raises at once, as a 4xx does. A ``streamed`` success is not read (nor checked for
        ``errorCode``): its caller reads it. Every 429 counts in :attr:`throttle_count`.
        """
        if response.status_code == TOO_MANY_REQUESTS:
            self.throttle_count += 1
        if response.status_code < 400:
            if streamed or b"errorCode" not in response.content:
                return None
            try:
                refused = vendor_refusal_code(response.json())
            except ValueError:
                return None  # not JSON: request_json reports that
            if refused is None:
                return None
            raise self.api_error(method, path, response.status_code, response.text, attempt, refused)
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
            raise self.api_error(
                method, path, response.status_code, f"response is not JSON: {response.text}", 1
            ) from None

    @staticmethod
    def _network_failure(exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"


class Transport(_RetryingTransport):
    """Synchronous transport over one reused ``requests.Session``.

    ``verify`` is resolved once by :func:`resolve_ca_bundle` and passed to every request, so an
    explicit connection value wins over ``REQUESTS_CA_BUNDLE`` (requests alone would let it override).
    With a ``limiter`` (the process's one for the credential), every attempt first waits for its
    turn, and a 429 pauses the credential for its ``Retry-After`` (or the backoff delay): every hook
    and thread of that credential in the process waits until the pause ends before its next request.
    A call that would have to wait out more of a pause than ``retry_after_max`` fails at once, unsent,
    with a 429 :class:`RewardsApiError` (as the request that got that ``Retry-After`` does). Without a
    limiter (budget 0), a 429 only delays this request's own retry.
    """

    limiter: SyncRateLimiter | None

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: requests.auth.AuthBase,
        settings: TransportSettings,
        session: requests.Session | None = None,
        verify: bool | str | None = None,
        limiter: SyncRateLimiter | None = None,
    ) -> None:
        super().__init__(vendor, base_url, auth, settings, limiter)
        self.session = session or requests.Session()
        self.verify = resolve_ca_bundle(verify)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request, retrying transient failures; return a 2xx/3xx response or raise.

        ``json_body`` is serialized once (compact, UTF-8); every attempt sends those same bytes.
        With ``stream=True`` the 2xx/3xx is returned with its body unread (the caller reads and
        closes it; a ``errorCode`` refusal in it is the caller's to detect); error answers are read,
        retried and mapped as without streaming.
        """
        data = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self._acquire(self.limiter, method, path, attempt)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=self.auth,
                    timeout=self.settings.timeout,
                    verify=self.verify,
                    stream=stream,
                )
            except NETWORK_ERRORS as exc:
                delay = self._delay_or_raise(method, path, attempt, status=None, body=self._network_failure(exc))
            else:
                try:
                    delay = self._delay_after(method, path, attempt, response, streamed=stream)
                except BaseException:
                    response.close()
                    raise
                if delay is None:
                    return response
                response.close()
            self.sleep(delay)

    def _acquire(self, limiter: SyncRateLimiter, method: str, path: str, attempt: int) -> None:
        """Wait for this attempt's turn; raise a 429 error, unsent, if the pause outlasts ``retry_after_max``."""
        try:
            limiter.acquire(max_pause=self.settings.retry_after_max)
        except CredentialPaused as paused:
            body = f"not sent: {paused}, longer than retry_after_max ({self.settings.retry_after_max:g}s)"
            raise self.api_error(method, path, TOO_MANY_REQUESTS, body, attempt - 1) from None

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
    """Asynchronous transport over an ``httpx.AsyncClient`` owned by the caller.

    Build that client with ``verify=ssl_verify(...)`` so it trusts the same CAs as :class:`Transport`.
    With a ``limiter`` (the event loop's one for the credential), every attempt first waits for its
    turn and a free request slot (``limiter.in_flight``), and a 429 pauses the whole credential for
    its ``Retry-After`` (or the backoff delay), even when that is too long to retry this request.
    """

    sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)
    limiter: AsyncRateLimiter | None

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth: httpx.Auth,
        settings: TransportSettings,
        client: httpx.AsyncClient,
        limiter: AsyncRateLimiter | None = None,
    ) -> None:
        super().__init__(vendor, base_url, auth, settings, limiter)
        self.client = client

    async def _send(
        self, method: str, url: str, params: Mapping[str, str] | None, timeout: httpx.Timeout
    ) -> httpx.Response:
        if self.limiter is None:
            return await self.client.request(method, url, params=params, auth=self.auth, timeout=timeout)
        await self.limiter.acquire()
        async with self.limiter.in_flight:
            return await self.client.request(method, url, params=params, auth=self.auth, timeout=timeout)

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a body-less request, retrying transient failures; return a 2xx/3xx response or raise."""
        url = f"{self.base_url}{path}"
        timeout = httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send(method, url, params, timeout)
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
