"""Trigger that waits, in the triggerer, for a Thanx issuance job to reach a target state.

It only polls: ``GET /partner/issuance_jobs/:id`` through one ``httpx.AsyncClient`` per run, with
the connection looked up asynchronously. Each poll uses the hook's transport (so 429, 5xx and
network errors are retried with exponential backoff or ``Retry-After``); a poll that still fails
counts against ``max_consecutive_failures`` and doubles the wait before the next poll (up to
ten minutes). Exactly one event is yielded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsError
from airflow_provider_rewards.hooks.thanx import (
    DEFAULT_POLL_INTERVAL,
    JobVerdict,
    Observation,
    ThanxHook,
    observe_job,
    summarize_job,
)
from airflow_provider_rewards.hooks.transport import ssl_verify

DEFAULT_MAX_CONSECUTIVE_FAILURES = 10
MAX_POLL_BACKOFF = 600.0
# Seconds an idle connection outlives the poll interval, so the next poll reuses it (no new TCP and TLS
# handshake per poll). httpx drops a connection the server has closed meanwhile before reusing it.
KEEPALIVE_MARGIN = 30.0
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
    :param poll_interval: seconds between polls.
    :param end_time: epoch seconds after which a ``timeout`` event is sent; ``None`` for no deadline.
    :param max_consecutive_failures: failed polls in a row (after the transport's own retries)
        tolerated before giving up with an error event.

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

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client for one run (closed when the run ends, however it ends).

        Its connection is kept alive across the sleep between polls: httpx's default 5 s expiry would
        close and reopen it at every poll of any interval over 5 s, at 1.3-1.5x the CPU per poll.
        """
        limits = httpx.Limits(max_connections=1, keepalive_expiry=self.poll_interval + KEEPALIVE_MARGIN)
        return httpx.AsyncClient(verify=ssl_verify(), limits=limits)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # anything unforeseen still ends in one event naming it
            event = self._event("error", f"Trigger failed: {type(exc).__name__}: {exc}")
        yield event

    async def _wait(self) -> TriggerEvent:
        """Poll until the job is done, goes astray, fails for good, or the deadline passes."""
        hook = ThanxHook(self.thanx_conn_id)
        job_id, failures = self.issuance_job_id, 0
        seen: Observation | None = None
        async with self._client() as client:
            while True:
                try:
                    job = await hook.aget_issuance_job(job_id, self.merchant_id, client=client)
                except RewardsApiError as exc:
                    failures += 1
                    if exc.is_client_error or failures >= self.max_consecutive_failures:
                        tries = "" if exc.is_client_error else f" ({failures} failed polls in a row)"
                        return self._event("error", f"{exc}{tries}")
                    self.log.warning("Poll %d of job %s failed, will poll again: %s", failures, job_id, exc)
                except RewardsError as exc:  # a misconfigured connection or an invalid id
                    return self._event("error", str(exc))
                else:
                    failures = 0
                    seen = observe_job(
                        job_id, job, self.target_states, self.waiting_states, log=self.log, previous=seen
                    )
                    if seen.verdict is not JobVerdict.WAITING:
                        status = "success" if seen.verdict is JobVerdict.DONE else "error"
                        return self._event(status, seen.message, job)
                delay = self.poll_interval if not failures else min(self.poll_interval * 2**failures, MAX_POLL_BACKOFF)
                if self.end_time is not None:
                    remaining = self.end_time - time.time()
                    if remaining <= 0:
                        last = f"still {seen.state}" if seen else "never read successfully"
                        return self._event("timeout", f"Issuance job {job_id} was {last} at the deadline")
                    delay = min(delay, remaining)
                await self.sleep(delay)
