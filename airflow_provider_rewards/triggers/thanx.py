"""Trigger that waits, in the triggerer, for a Thanx issuance job to reach a target state.

It only polls: ``GET /partner/issuance_jobs/:id``, with the connection looked up asynchronously.
All triggers of one credential in a triggerer process share one ``httpx.AsyncClient`` (its pool
sized to the budget, closed when the last of them ends) and one rate limiter (the connection's
budget; polls wait their turn oldest-due first, so ``poll_interval`` is a minimum). Each poll uses
the hook's transport (429, 5xx and network errors are retried with backoff or ``Retry-After``); a
poll that still fails counts against ``max_consecutive_failures`` and doubles the wait before the
next poll (up to ten minutes). A rate limit (429) never fails the wait: it only delays the next
poll; only the deadline ends a wait that is still going. Exactly one event is yielded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsError
from airflow_provider_rewards.hooks.rate_limit import RateBudget, shared_async_client
from airflow_provider_rewards.hooks.thanx import (
    DEFAULT_POLL_INTERVAL,
    JobVerdict,
    Observation,
    ThanxHook,
    observe_job,
    summarize_job,
)
from airflow_provider_rewards.hooks.transport import is_rate_limited, ssl_verify

DEFAULT_MAX_CONSECUTIVE_FAILURES = 10
MAX_POLL_BACKOFF = 600.0
# Seconds an idle pooled connection is kept: longer than the default 60 s poll interval, so that even a
# lone trigger's polls reuse one connection (no new TCP and TLS handshake per poll). httpx drops a
# connection the server has closed meanwhile before reusing it.
KEEPALIVE_EXPIRY = DEFAULT_POLL_INTERVAL + 30.0
SERIALIZED_ARGUMENTS = (
    *("issuance_job_id", "merchant_id", "thanx_conn_id", "target_states", "waiting_states"),
    *("poll_interval", "end_time", "max_consecutive_failures"),
)


class ThanxIssuanceJobTrigger(BaseTrigger):
    """Poll an issuance job until its state is one of ``target_states``.

    :param issuance_job_id: the job to watch.
    :param merchant_id: the merchant owning the job (already resolved; never ``None``).
    :param thanx_conn_id: a ``thanx`` connection id; the trigger never holds credentials.
    :param target_states: states that end the wait successfully (default ``revoked``).
    :param waiting_states: states expected on the way (default ``revoking``); any other state,
        including an unknown one, ends the wait with an error naming it.
    :param poll_interval: least seconds between polls (the credential's budget may space them more).
    :param end_time: epoch seconds at which a ``timeout`` event is sent, even mid-poll or while
        rate-limited; ``None`` for no deadline.
    :param max_consecutive_failures: failed polls in a row (after the transport's own retries)
        tolerated before giving up with an error event; a rate-limited poll (429) is not a failure.

    Event payload: ``{"status": "success" | "error" | "timeout", "issuance_job_id", "merchant_id",
    "job": <summary or None>, "message"}``.
    """

    def __init__(
        self,
        issuance_job_id: str,
        merchant_id: str,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        target_states: Sequence[str] = ("revoked",),
        waiting_states: Sequence[str] = ("revoking",),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()
        self.issuance_job_id = issuance_job_id
        self.merchant_id = merchant_id
        self.thanx_conn_id = thanx_conn_id
        self.target_states = list(target_states)
        self.waiting_states = list(waiting_states)
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_failures = int(max_consecutive_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and every ``__init__`` argument (ids, states and timings; never a credential)."""
        arguments = {name: getattr(self, name) for name in SERIALIZED_ARGUMENTS}
        return f"{type(self).__module__}.{type(self).__qualname__}", arguments

    def _event(self, status: str, message: str, job: Any = None) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "issuance_job_id": self.issuance_job_id,
                "merchant_id": self.merchant_id,
                "job": None if job is None else summarize_job(job),
                "message": message,
            }
        )

    sleep = staticmethod(asyncio.sleep)

    @staticmethod
    def _client(budget: RateBudget) -> httpx.AsyncClient:
        """The client every trigger of one credential in this process shares: a pool of ``budget.pool_size``."""
        size = budget.pool_size
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY)
        return httpx.AsyncClient(verify=ssl_verify(), limits=limits)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # anything unforeseen still ends in one event naming it
            event = self._event("error", f"Trigger failed: {type(exc).__name__}: {exc}")
        yield event

    async def _wait(self) -> TriggerEvent:
        """Look the connection up, then poll over the credential's shared client until the wait ends."""
        hook = ThanxHook(self.thanx_conn_id)
        try:
            config = await hook.aget_config()
        except RewardsError as exc:  # a misconfigured or missing connection
            return self._event("error", str(exc))
        progress: list[Observation] = []  # the last read, kept for the timeout message
        remaining = None if self.end_time is None else self.end_time - time.time()
        async with shared_async_client(config.credential_key, lambda: self._client(config.budget)) as client:
            try:
                async with asyncio.timeout(remaining) as deadline:
                    return await self._poll(hook, client, progress)
            except TimeoutError:
                if not deadline.expired():
                    raise
        last = f"still {progress[-1].state}" if progress else "never read successfully"
        return self._event("timeout", f"Issuance job {self.issuance_job_id} was {last} at the deadline")

    async def _poll(self, hook: ThanxHook, client: httpx.AsyncClient, progress: list[Observation]) -> TriggerEvent:
        """Poll until the job is done, goes astray or fails for good (the caller enforces the deadline)."""
        job_id, failures = self.issuance_job_id, 0
        while True:
            try:
                job = await hook.aget_issuance_job(job_id, self.merchant_id, client=client)
            except RewardsApiError as exc:
                if is_rate_limited(exc):  # the credential is paused; the next poll waits its turn
                    self.log.warning("Poll of job %s rate-limited, will poll again: %s", job_id, exc)
                else:
                    failures += 1
                    if exc.is_client_error or failures >= self.max_consecutive_failures:
                        tries = "" if exc.is_client_error else f" ({failures} failed polls in a row)"
                        return self._event("error", f"{exc}{tries}")
                    self.log.warning("Poll %d of job %s failed, will poll again: %s", failures, job_id, exc)
            except RewardsError as exc:  # an invalid id
                return self._event("error", str(exc))
            else:
                failures = 0
                previous = progress[-1] if progress else None
                seen = observe_job(
                    job_id, job, self.target_states, self.waiting_states, log=self.log, previous=previous
                )
                progress[:] = [seen]
                if seen.verdict is not JobVerdict.WAITING:
                    status = "success" if seen.verdict is JobVerdict.DONE else "error"
                    return self._event(status, seen.message, job)
            delay = self.poll_interval if not failures else min(self.poll_interval * 2**failures, MAX_POLL_BACKOFF)
            await self.sleep(delay)
