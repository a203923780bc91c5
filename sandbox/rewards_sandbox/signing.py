"""HPGames request signing: HMAC-SHA256 over ``merchantId + str(timestamp)``, lowercase hex."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return int(time.time() * 1000)


def hpgames_signature(secret: str, merchant_id: str, timestamp: int | str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``merchant_id + str(timestamp)`` keyed by ``secret``."""
    message = f"{merchant_id}{timestamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_hpgames_signature(secret: str, merchant_id: str, timestamp: int | str, signature: str) -> bool:
    """Check ``signature`` against the expected one in constant time."""
    expected = hpgames_signature(secret, merchant_id, timestamp)
    return hmac.compare_digest(expected.encode(), signature.encode())


def sign_hpgames_body(body: Mapping[str, Any], *, secret: str, timestamp: int | None = None) -> dict:
    """Return a copy of ``body`` (which must hold ``merchantId``) with ``timestamp`` and ``hash`` set."""
    signed = dict(body)
    signed["timestamp"] = now_ms() if timestamp is None else timestamp
    signed["hash"] = hpgames_signature(secret, signed["merchantId"], signed["timestamp"])
    return signed
