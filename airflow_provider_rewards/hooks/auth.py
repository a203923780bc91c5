"""The two authentication schemes, each written once.

* :class:`ThanxAuth`: static bearer token and client id headers. It is both a
  ``requests.auth.AuthBase`` (hook) and an ``httpx.Auth`` (trigger), so the headers are defined
  in one place for the sync and async paths.
* :class:`HPGamesSignatureAuth`: HMAC-SHA256 body signing. Each attempt of a request is signed
  with a fresh timestamp; the payload is serialized once by the transport and only the signed
  prefix is written per attempt, so the bytes sent are exactly the bytes signed.

Neither class exposes its secret through ``repr`` or ``str``. Credentials (login and secret) have
leading and trailing whitespace stripped; one holding an inner non-printable character (a newline,
a tab) is refused without quoting it. A login that :func:`looks_like_secret` is scrubbed and hidden too, since a login
and password saved swapped would put the secret in the login, which Airflow does not mask.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Generator

import httpx
import requests

from airflow_provider_rewards import __version__
from airflow_provider_rewards.exceptions import RewardsInputError

USER_AGENT = f"airflow-provider-rewards/{__version__}"
THANX_ACCEPT_VERSION = "v4.0"
JSON_CONTENT_TYPE = "application/json"


def clean_credential(value: str, label: str) -> str:
    """``value`` stripped of surrounding whitespace; raises, without quoting it, on an inner non-printable character."""
    cleaned = value.strip()
    if not cleaned.isprintable():
        raise RewardsInputError(
            f"{label} contains a non-printable character (such as a newline or tab) inside it; "
            "save it again without (leading and trailing whitespace is stripped). The value is not shown."
        )
    return cleaned


def looks_like_secret(login: str) -> bool:
    """True for a login that may be a secret saved in the wrong field: 12+ characters and not a UUID."""
    try:
        uuid.UUID(login.strip())
    except ValueError:
        return len(login.strip()) >= 12
    return False


def epoch_millis() -> int:
    """Milliseconds since the Unix epoch; looked up at call time so tests can freeze it."""
    return time.time_ns() // 1_000_000


def hpgames_signature(secret: str, merchant_id: str, timestamp: int) -> str:
    """Lowercase hex HMAC-SHA256 of ``merchant_id + str(timestamp)`` keyed with ``secret``."""
    message = f"{merchant_id}{timestamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class ThanxAuth(requests.auth.AuthBase, httpx.Auth):
    """Thanx Partner API headers: bearer token, client id, API version, JSON, user agent."""

    def __init__(self, client_id: str, access_token: str) -> None:
        self.secrets: tuple[str, ...] = (access_token, client_id) if looks_like_secret(client_id) else (access_token,)
        client_id = clean_credential(client_id, "Thanx Client ID (connection login)")
        access_token = clean_credential(access_token, "Thanx Access Token (connection password)")
        self._headers = {
            "Authorization": f"Bearer {access_token}",
            "X-ClientId": client_id,
            "Accept-Version": THANX_ACCEPT_VERSION,
            "Content-Type": JSON_CONTENT_TYPE,
            "User-Agent": USER_AGENT,
        }

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._headers)
        yield request

    def __repr__(self) -> str:
        client_id = self._headers["X-ClientId"]
        return f"ThanxAuth(client_id={'***' if looks_like_secret(client_id) else repr(client_id)}, access_token=***)"


class HPGamesSignatureAuth(requests.auth.AuthBase):
    """HPGames request signing: prepends ``merchantId``, ``timestamp`` and ``hash`` to the JSON body.

    The transport serializes the payload once (a compact JSON object). Each time ``requests``
    prepares an attempt, this takes a new timestamp, signs ``merchantId + timestamp`` and writes
    ``{"merchantId":…,"timestamp":…,"hash":…,`` in front of the payload's members.
    """

    def __init__(self, merchant_id: str, secret: str) -> None:
        self.secrets: tuple[str, ...] = (secret, merchant_id) if looks_like_secret(merchant_id) else (secret,)
        self.merchant_id = clean_credential(merchant_id, "HPGames Merchant ID (connection login)")
        self._secret = clean_credential(secret, "HPGames Secret key (connection password)")

    def signed_fields(self, timestamp: int) -> dict[str, object]:
        """The three authentication fields for a request made at ``timestamp`` (epoch ms)."""
        return {
            "merchantId": self.merchant_id,
            "timestamp": timestamp,
            "hash": hpgames_signature(self._secret, self.merchant_id, timestamp),
        }

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        payload = request.body or b"{}"
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, bytes) or not payload.startswith(b"{"):
            raise TypeError("HPGames requests must carry a JSON object body")
        head = json.dumps(self.signed_fields(epoch_millis()), separators=(",", ":")).encode()
        members = payload[1:]
        request.body = head[:-1] + (members if members == b"}" else b"," + members)
        request.headers["Content-Type"] = JSON_CONTENT_TYPE
        request.headers["User-Agent"] = USER_AGENT
        request.prepare_content_length(request.body)
        return request

    def __repr__(self) -> str:
        shown = "***" if looks_like_secret(self.merchant_id) else repr(self.merchant_id)
        return f"HPGamesSignatureAuth(merchant_id={shown}, secret=***)"
