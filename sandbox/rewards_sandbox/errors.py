"""Error codes and exceptions of the sandbox, in each vendor's own error shape.

Thanx errors are flat JSON objects ``{"code": ..., "message": ...}`` using the codes the
Thanx docs list (``BAD_REQUEST``, ``FORBIDDEN``, ...). ``TOO_MANY_REQUESTS`` is a sandbox
choice: the docs list no code for 429.

HPGames documents no error format for its integration API, so the sandbox borrows the wallet
API's ``{"errorCode": <int>, "errorText": "..."}`` shape with the codes of :class:`HpgErrorCode`.
"""

from __future__ import annotations

from enum import IntEnum

THANX_BAD_REQUEST = "BAD_REQUEST"
THANX_FORBIDDEN = "FORBIDDEN"
THANX_NOT_FOUND = "RESOURCE_NOT_FOUND"
THANX_AUTHENTICATION = "AUTHENTICATION_GENERIC"
THANX_GENERIC_ERROR = "GENERIC_ERROR"
THANX_TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"


class HpgErrorCode(IntEnum):
    """``errorCode`` values of the sandbox HPGames API (a sandbox choice; see module docstring)."""

    INVALID_SIGNATURE = 1001  # 401: hash does not match
    STALE_TIMESTAMP = 1002  # 401: timestamp outside the allowed window
    VALIDATION = 1003  # 400 (415 for a wrong Content-Type): malformed JSON, missing/invalid fields
    NOT_FOUND = 1004  # 404: reward or reward configuration unknown for this merchant
    NOT_CANCELLABLE = 1005  # 409: reward is CLOSED or EXPIRED
    UNKNOWN_MERCHANT = 1006  # 401: merchantId unknown
    UNKNOWN_ENDPOINT = 1007  # 404 unknown path, 405 wrong method
    DUPLICATE_EXTERNAL_ID = 1008  # 409: externalId already used by this merchant
    CONFIGURATION_INACTIVE = 1009  # 409: assign from an INACTIVE or ended reward configuration
    ALREADY_CANCELLED = 1010  # 409: cancel of a CANCELLED reward (only with already_cancelled="refuse")
    RATE_LIMITED = 1429  # 429 (injected fault)
    INTERNAL_ERROR = 1500  # 500 (injected fault or unexpected error)
    SERVICE_UNAVAILABLE = 1503  # 503 (injected fault)


class ThanxError(Exception):
    """A Thanx API error answered as ``{"code": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        """Return the JSON body of the error."""
        return {"code": self.code, "message": self.message}


class HpgError(Exception):
    """An HPGames API error answered as ``{"errorCode": code, "errorText": text}``."""

    def __init__(self, status: int, error_code: HpgErrorCode, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.error_code = error_code
        self.text = text

    def body(self) -> dict[str, int | str]:
        """Return the JSON body of the error."""
        return {"errorCode": int(self.error_code), "errorText": self.text}
