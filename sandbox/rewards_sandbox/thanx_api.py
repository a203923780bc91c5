"""Thanx Partner API of the sandbox (``/partner/*``).

Checks run in this order: credentials (401 ``AUTHENTICATION_GENERIC``), ``Accept-Version``
(400 ``BAD_REQUEST``), route (404 ``RESOURCE_NOT_FOUND`` / 405 ``BAD_REQUEST``), scope
(403 ``FORBIDDEN``), JSON body (415 / 400), parameters (400), merchant access (403), lookup (404).
"""

from __future__ import annotations

from typing import Any

from rewards_sandbox.errors import (
    THANX_AUTHENTICATION,
    THANX_BAD_REQUEST,
    THANX_FORBIDDEN,
    THANX_NOT_FOUND,
    ThanxError,
)
from rewards_sandbox.models import ThanxCredential
from rewards_sandbox.protocol import ApiRequest, ApiResponse, BodyError, parse_json_object
from rewards_sandbox.state import SandboxState

PREFIX = "/partner/"
ACCEPT_VERSION = "v4.0"
SCOPE_REWARDS_ISSUE = "rewards.issue"
MAX_IDENTIFIERS = 10_000
IDENTIFIER_TYPES = ("email", "phone")
IDEMPOTENCY_HEADER = "x-idempotency-key"


def handle(state: SandboxState, request: ApiRequest) -> ApiResponse:
    """Answer one ``/partner/*`` request; errors use the flat ``{"code", "message"}`` shape."""
    try:
        return _route(state, request)
    except ThanxError as exc:
        return ApiResponse.json(exc.status, exc.body())


def _route(state: SandboxState, req: ApiRequest) -> ApiResponse:
    """Authenticate, check the version header and dispatch on the path."""
    credential = _authenticate(state, req)
    if req.header("accept-version") != ACCEPT_VERSION:
        raise ThanxError(400, THANX_BAD_REQUEST, f"Accept-Version must be {ACCEPT_VERSION}")
    match req.segments[1:]:
        case ("scopes",):
            _method(req, "GET")
            return ApiResponse.json(200, {"scopes": list(credential.scopes)})
        case ("merchants",):
            _method(req, "GET")
            merchants = state.thanx_merchants(credential.merchant_ids)
            return ApiResponse.json(200, {"merchants": [m.as_dict() for m in merchants]})
        case ("issuance_jobs", job_id):
            _method(req, "GET")
            _scope(credential, SCOPE_REWARDS_ISSUE)
            values = req.query.get("merchant_id") or [None]
            merchant_id = _merchant(credential, values[0])
            return ApiResponse.json(200, {"issuance_job": state.get_job(merchant_id, job_id)})
        case ("issuance_jobs", job_id, "revoke"):
            _method(req, "POST")
            _scope(credential, SCOPE_REWARDS_ISSUE)
            merchant_id = _merchant(credential, _json_body(req).get("merchant_id"))
            return ApiResponse.json(202, {"issuance_job": state.revoke_job(merchant_id, job_id)})
        case ("campaigns", "issue"):
            _method(req, "POST")
            _scope(credential, SCOPE_REWARDS_ISSUE)
            return _issue(state, credential, req)
        case ("campaigns", campaign_id) if req.method == "GET":
            _scope(credential, SCOPE_REWARDS_ISSUE)
            return ApiResponse.json(200, {"campaign": state.get_campaign(credential.merchant_ids, campaign_id)})
    raise ThanxError(404, THANX_NOT_FOUND, f"No route for {req.method} {req.path}")


def _authenticate(state: SandboxState, req: ApiRequest) -> ThanxCredential:
    """Return the credential of ``Authorization: Bearer`` + ``X-ClientId`` (401 otherwise)."""
    scheme, _, token = (req.header("authorization") or "").partition(" ")
    client_id = req.header("x-clientid") or ""
    credential = None
    if scheme.lower() == "bearer" and token.strip() and client_id:
        credential = state.authenticate(client_id, token.strip())
    if credential is None:
        raise ThanxError(401, THANX_AUTHENTICATION, "Invalid or missing credentials")
    return credential


def _method(req: ApiRequest, method: str) -> None:
    """Reject other HTTP methods with 405."""
    if req.method != method:
        raise ThanxError(405, THANX_BAD_REQUEST, f"{req.method} is not allowed on {req.path}; use {method}")


def _scope(credential: ThanxCredential, scope: str) -> None:
    """Require a scope of the credential (403 otherwise)."""
    if scope not in credential.scopes:
        raise ThanxError(403, THANX_FORBIDDEN, f"The credential lacks the scope {scope}")


def _merchant(credential: ThanxCredential, merchant_id: Any) -> str:
    """Validate ``merchant_id`` (400 when missing) and the credential's access to it (403)."""
    if not isinstance(merchant_id, str) or not merchant_id:
        raise ThanxError(400, THANX_BAD_REQUEST, "merchant_id is required")
    if merchant_id not in credential.merchant_ids:
        raise ThanxError(403, THANX_FORBIDDEN, f"The credential may not act for merchant {merchant_id}")
    return merchant_id


def _json_body(req: ApiRequest) -> dict[str, Any]:
    """Parse the JSON object body (415 without a JSON Content-Type, 400 when malformed)."""
    if not req.has_json_content_type():
        raise ThanxError(415, THANX_BAD_REQUEST, "Content-Type must be application/json")
    try:
        return parse_json_object(req.body)
    except BodyError as exc:
        raise ThanxError(400, THANX_BAD_REQUEST, str(exc)) from None


def _required_str(body: dict[str, Any], key: str) -> str:
    """Return a required non-empty string field (400 otherwise)."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ThanxError(400, THANX_BAD_REQUEST, f"{key} is required")
    return value


def _issue(state: SandboxState, credential: ThanxCredential, req: ApiRequest) -> ApiResponse:
    """``POST /partner/campaigns/issue``: validate and create a pending issuance job (202)."""
    body = _json_body(req)
    campaign_id = _required_str(body, "campaign_id")
    variant_id = _required_str(body, "variant_id")
    merchant_id = _merchant(credential, body.get("merchant_id"))
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= MAX_IDENTIFIERS:
        message = f"identifiers must be a list of 1 to {MAX_IDENTIFIERS} items"
        raise ThanxError(400, THANX_BAD_REQUEST, message)
    for index, identifier in enumerate(identifiers):
        if not isinstance(identifier, dict) or identifier.get("type") not in IDENTIFIER_TYPES:
            raise ThanxError(400, THANX_BAD_REQUEST, f"identifiers[{index}].type must be 'email' or 'phone'")
        if not isinstance(identifier.get("value"), str) or not identifier["value"]:
            raise ThanxError(400, THANX_BAD_REQUEST, f"identifiers[{index}].value is required")
    response = state.issue_rewards(
        client_id=credential.client_id,
        merchant_id=merchant_id,
        campaign_id=campaign_id,
        variant_id=variant_id,
        identifiers=[{"type": i["type"], "value": i["value"]} for i in identifiers],
        idempotency_key=req.header(IDEMPOTENCY_HEADER) or None,
    )
    return ApiResponse.json(202, response)
