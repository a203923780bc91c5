"""Hook for the Thanx Partner API (issuance jobs, scopes): login is the Client ID, password the Access Token."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict
from urllib.parse import quote

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.sdk import Connection

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsError, RewardsInputError, RewardsJobStateError
from airflow_provider_rewards.hooks.auth import ThanxAuth
from airflow_provider_rewards.hooks.base import (
    RewardsBaseHook,
    base_url_from,
    extra_field,
    required_field,
)
from airflow_provider_rewards.hooks.rate_limit import (
    RateBudget,
    SyncRateLimiter,
    credential_key,
    shared_limiter,
    sync_limiter,
)
from airflow_provider_rewards.hooks.transport import AsyncTransport, TransportSettings, is_rate_limited
from airflow_provider_rewards.utils.validation import require_id, require_path_id

THANX_PRODUCTION_URL = "https://api.thanx.com"
THANX_SANDBOX_URL = "https://api.thanxsandbox.com"
REVOKE_SCOPE = "rewards.issue"

REVOCABLE_STATES = ("completed", "failed")
ISSUING_STATES = ("pending", "processing")
REVOKED_STATES = ("revoking", "revoked")
DEFAULT_POLL_INTERVAL = 60.0
SUMMARY_FIELDS = ("id", "state", "progress_percent", "total_count", "success_count", "failure_count")


class IssuanceJob(TypedDict, total=False):
    """The issuance job object as the API returns it (documented fields)."""

    id: str
    campaign_id: str
    variant_id: str
    state: str  # pending | processing | completed | failed | revoking | revoked
    total_count: int
    processed_count: int
    success_count: int
    failure_count: int
    progress_percent: int
    created_at: str
    started_at: str | None
    completed_at: str | None


@dataclass(frozen=True)
class ThanxConfig:
    """A validated ``thanx`` connection. ``repr`` never shows the token.

    ``budget`` is the credential's request budget (extra ``max_requests_per_second``,
    ``max_requests_per_window``, ``window_seconds``, ``triggerer_count``; defaults 4/s and 1,800 per
    900 s, under Thanx's published 5/s and 2,000 per 15 minutes).
    """

    base_url: str
    client_id: str
    access_token: str = field(repr=False)
    merchant_id: str | None = None
    settings: TransportSettings = field(default_factory=TransportSettings)
    budget: RateBudget = field(default_factory=RateBudget)

    @property
    def credential_key(self) -> str:
        """The key every limiter and shared client of this credential is registered under (no secret)."""
        return credential_key(self.base_url, self.client_id)


def issuance_job_path(job_id: str, action: str = "") -> str:
    """``/partner/issuance_jobs/<escaped id>[/action]``; the id always stays one path segment."""
    escaped = quote(require_path_id(job_id, "issuance_job_id"), safe="")
    return f"/partner/issuance_jobs/{escaped}{action}"


def summarize_job(job: IssuanceJob) -> dict[str, Any]:
    """The small, XCom-safe view of a job: id, state, progress and counts (never the full payload)."""
    return {name: job.get(name) for name in SUMMARY_FIELDS}


class JobVerdict(StrEnum):
    """What one read of a job means for a wait."""

    DONE = "done"  # the state is a target
    WAITING = "waiting"  # the state is expected on the way
    UNEXPECTED = "unexpected"  # any other state, e.g. back to completed, or undocumented


@dataclass(frozen=True)
class Observation:
    """One read of a job during a wait: the job, the verdict and what the wait accepts."""

    job_id: str
    job: IssuanceJob
    verdict: JobVerdict
    expected: str

    @property
    def state(self) -> str | None:
        return self.job.get("state")

    @property
    def progress(self) -> tuple[Any, Any]:
        return self.job.get("state"), self.job.get("progress_percent")

    @property
    def summary(self) -> dict[str, Any]:
        return summarize_job(self.job)

    def error(self) -> RewardsJobStateError:
        """The error of an unexpected state, naming it and what was expected."""
        return RewardsJobStateError(self.job_id, self.state, self.expected)

    @property
    def message(self) -> str:
        """``Issuance job <id> is <state>``, or the unexpected-state error's text."""
        if self.verdict is JobVerdict.UNEXPECTED:
            return str(self.error())
        return f"Issuance job {self.job_id} is {self.state}"


def observe_job(
    job_id: str,
    job: IssuanceJob,
    target_states: Sequence[str],
    waiting_states: Sequence[str],
    *,
    log: Any,
    previous: Observation | None = None,
) -> Observation:
    """Judge one read of a job for a wait (hook, sensor and trigger alike); log it unless unchanged since ``previous``.

    Any state that is neither a target nor a waiting state (e.g. ``completed`` again) is ``UNEXPECTED``.
    """
    state = job.get("state")
    if state in target_states:
        verdict = JobVerdict.DONE
    else:
        verdict = JobVerdict.WAITING if state in waiting_states else JobVerdict.UNEXPECTED
    expected = f"{' or '.join(target_states)} (or {' or '.join(waiting_states)} on the way)"
    observation = Observation(job_id, job, verdict, expected)
    if previous is None or previous.progress != observation.progress:
        log.info("Issuance job %s: state %s, %s%% done", job_id, *observation.progress)
    return observation


def job_from_response(data: Any, method: str, path: str) -> IssuanceJob:
    """The ``issuance_job`` object of a response body, or an error saying the body was unexpected."""
    job = data.get("issuance_job") if isinstance(data, dict) else None
    if not isinstance(job, dict) or "state" not in job:
        raise RewardsApiError(
            vendor=ThanxHook.vendor,
            method=method,
            path=path,
            status_code=200,
            vendor_message="response has no issuance_job object with a state",
        )
    return job  # type: ignore[return-value]


class ThanxHook(RewardsBaseHook[ThanxConfig]):
    """Talks to the Thanx Partner API.

    :param thanx_conn_id: a connection of type ``thanx`` (default ``thanx_default``).
    :param transport_overrides: ``connect_timeout``, ``read_timeout``, ``max_retries``,
        ``retry_backoff``, ``retry_backoff_max``, ``retry_after_max`` (override the connection extra).
    """

    conn_name_attr = "thanx_conn_id"
    default_conn_name = "thanx_default"
    conn_type = "thanx"
    hook_name = "Thanx Partner API"
    vendor = "Thanx"

    def __init__(self, thanx_conn_id: str = default_conn_name, **transport_overrides: Any) -> None:
        super().__init__(thanx_conn_id, transport_overrides)

    def parse_connection(self, conn: Connection, extra: Mapping[str, Any]) -> ThanxConfig:
        merchant_id = extra_field(self.conn_type, extra, "merchant_id")
        return ThanxConfig(
            base_url=base_url_from(conn, default=THANX_PRODUCTION_URL),
            client_id=required_field(conn, "login", "Client ID"),
            access_token=required_field(conn, "password", "Access Token"),
            merchant_id=None if merchant_id is None else str(merchant_id),
            settings=self.settings_from(extra),
            budget=RateBudget.from_extra(extra, conn.conn_id),
        )

    def build_auth(self, config: ThanxConfig) -> ThanxAuth:
        return ThanxAuth(config.client_id, config.access_token)

    def rate_limiter(self, config: ThanxConfig) -> SyncRateLimiter | None:
        """The process's limiter for the credential, shared by every hook of it; ``None`` when unlimited."""
        return sync_limiter(config.credential_key, config.budget) if config.budget.limited else None

    def resolve_merchant_id(self, merchant_id: str | None = None) -> str:
        """``merchant_id`` if given, else the connection's default; raises if neither is set."""
        if merchant_id is None:
            merchant_id = self.config.merchant_id
        if merchant_id is None:
            raise RewardsInputError(
                f"merchant_id is required: pass it to the task or set extra.merchant_id on connection {self.conn_id!r}"
            )
        return require_id(merchant_id, "merchant_id")

    def get_scopes(self) -> list[str]:
        """The scopes granted to the credential (``GET /partner/scopes``)."""
        data = self.transport.request_json("GET", "/partner/scopes")
        scopes = data.get("scopes") if isinstance(data, dict) else None
        return [str(scope) for scope in scopes] if isinstance(scopes, list) else []

    def get_issuance_job(self, job_id: str, merchant_id: str | None = None) -> IssuanceJob:
        """Read an issuance job (``GET /partner/issuance_jobs/:id?merchant_id=``)."""
        path = issuance_job_path(job_id)
        merchant = self.resolve_merchant_id(merchant_id)
        data = self.transport.request_json("GET", path, params={"merchant_id": merchant})
        return job_from_response(data, "GET", path)

    def revoke_issuance_job(self, job_id: str, merchant_id: str | None = None) -> IssuanceJob:
        """Start revoking every reward an issuance job issued (``POST …/:id/revoke``).

        The API answers 202 with the job in state ``revoking``; revocation then proceeds in the
        background until the job reads ``revoked``. A job that is ``pending``, ``processing``,
        ``revoking`` or ``revoked`` is refused with 422, raised as ``RewardsApiError``.
        """
        path = issuance_job_path(job_id, "/revoke")
        merchant = self.resolve_merchant_id(merchant_id)
        data = self.transport.request_json("POST", path, json_body={"merchant_id": merchant})
        return job_from_response(data, "POST", path)

    def wait_for_job_state(
        self,
        job_id: str,
        merchant_id: str | None = None,
        *,
        target_states: Sequence[str] = ("revoked",),
        waiting_states: Sequence[str] = ("revoking",),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,
    ) -> IssuanceJob:
        """Poll the job (blocking) until its state is a target; return the job.

        Raises ``RewardsJobStateError`` if the job reaches a state that is neither a target nor a
        waiting state, and ``TimeoutError`` (stating the real elapsed time) when the job still waits
        at a poll made at or after ``timeout`` seconds: the last sleep is shortened to end at the deadline.
        A rate-limited poll (429 after the retries) is a delayed poll, not a failure.
        """
        started, slept = time.monotonic(), 0.0
        seen: Observation | None = None
        while True:
            try:
                job = self.get_issuance_job(job_id, merchant_id)
            except RewardsApiError as exc:
                if not is_rate_limited(exc):
                    raise
                self.log.warning("Poll of job %s rate-limited, will poll again: %s", job_id, exc)
            else:
                seen = observe_job(job_id, job, target_states, waiting_states, log=self.log, previous=seen)
                if seen.verdict is JobVerdict.DONE:
                    return job
                if seen.verdict is JobVerdict.UNEXPECTED:
                    raise seen.error()
            elapsed = max(slept, time.monotonic() - started)
            if timeout is not None and elapsed >= timeout:
                raise TimeoutError(
                    f"Issuance job {job_id} still {seen.state if seen else 'unread (rate-limited)'} after "
                    f"{elapsed:.0f}s (waiting for {' or '.join(target_states)})"
                )
            delay = poll_interval if timeout is None else min(poll_interval, timeout - elapsed)
            self.transport.sleep(delay)
            slept += delay

    def check_connection(self) -> str:
        scopes = self.get_scopes()
        if REVOKE_SCOPE not in scopes:
            raise RewardsError(
                f"Connected to {self.config.base_url}, but the credential lacks scope {REVOKE_SCOPE}, needed to "
                f"revoke issuance jobs (granted: {', '.join(scopes) or 'none'}); ask Thanx to grant it"
            )
        return f"Connected to {self.config.base_url}; scope {REVOKE_SCOPE} is granted"

    async def aget_config(self) -> ThanxConfig:
        """The connection configuration, looked up without blocking the event loop."""
        if "config" not in self.__dict__:
            conn = await get_async_connection(self.conn_id, self)
            self.__dict__["config"] = self.parse_connection(conn, await get_async_extra_dejson(conn))
        return self.config

    async def aget_issuance_job(
        self, job_id: str, merchant_id: str | None = None, *, client: httpx.AsyncClient
    ) -> IssuanceJob:
        """Async :meth:`get_issuance_job` over ``client``, with the same headers and retry rules.

        Every attempt waits its turn in the event loop's limiter of the credential (shared by all
        triggers of it in this process), and a 429 pauses that whole credential.
        """
        config = await self.aget_config()
        path = issuance_job_path(job_id)
        merchant = self.resolve_merchant_id(merchant_id)
        limiter = shared_limiter(config.credential_key, config.budget)
        transport = AsyncTransport(
            self.vendor, config.base_url, self.build_auth(config), config.settings, client, limiter
        )
        data = await transport.request_json("GET", path, params={"merchant_id": merchant})
        return job_from_response(data, "GET", path)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        """Read a partner-initiated campaign (``GET /partner/campaigns/:id``); returns the ``campaign`` object.

        Documented with the path id only (no ``merchant_id``, unlike the job endpoints), so none is sent.
        The campaign's end is its ``end_at`` (ISO 8601, may be null). The id is escaped into one path segment.
        """
        path = f"/partner/campaigns/{quote(require_path_id(campaign_id, 'campaign_id'), safe='')}"
        data = self.transport.request_json("GET", path)
        campaign = data.get("campaign") if isinstance(data, dict) else None
        if not isinstance(campaign, dict):
            raise RewardsApiError(
                vendor=self.vendor, method="GET", path=path, status_code=200, vendor_message="response has no campaign"
            )
        return campaign
