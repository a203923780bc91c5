"""One request budget per API credential: its settings, sync and async limiters, per-process registries."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, fields
from typing import Any

import httpx

from airflow_provider_rewards.exceptions import RewardsConnectionConfigError

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateBudget:
    """Limits of one credential (defaults under Thanx's 5/s, 2,000/15 min); 0 disables a limit; HA divides."""

    max_requests_per_second: float = 4.0
    max_requests_per_window: int = 1800
    window_seconds: float = 900.0
    triggerer_count: int = 1

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], conn_id: str = "<unknown>") -> RateBudget:
        """Defaults overridden by the extra's fields; raises naming ``extra.<field>`` on a bad value."""
        values: dict[str, Any] = {}
        for spec in (spec for spec in fields(cls) if extra.get(spec.name) not in (None, "")):
            raw, whole, least = extra[spec.name], spec.type == "int", int(spec.name == "triggerer_count")
            try:
                number = math.nan if isinstance(raw, bool) else float(raw)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number >= least and (number.is_integer() or not whole)):
                problem = f"must be a {'whole' if whole else 'finite'} number >= {least}, got {raw!r}"
                raise RewardsConnectionConfigError(conn_id, f"extra.{spec.name}", problem)
            values[spec.name] = int(number) if whole else number
        return cls(**values)

    @property
    def limited(self) -> bool:
        """Whether any limit is set (``False`` when both the rate and the window are 0)."""
        return bool(self.max_requests_per_second or (self.max_requests_per_window and self.window_seconds))

    @property
    def pool_size(self) -> int:
        """Connections (and requests in flight) per credential and process: the per-process rate, 4 to 8.

        More would not go faster: httpcore's pool does work per connection on every request, and at
        16 connections one loop sends fewer requests per second than at 4 (``docs/benchmarks.md``).
        """
        rate = self.max_requests_per_second / self.triggerer_count
        return MAX_POOL_SIZE if not rate else max(MIN_POOL_SIZE, min(MAX_POOL_SIZE, math.ceil(rate)))


MIN_POOL_SIZE, MAX_POOL_SIZE = 4, 8
#: Longest pause one 429 can impose on a credential (a Retry-After beyond it is taken as this).
MAX_PENALTY = 86_400.0


class CredentialPaused(Exception):
    """A caller would have to wait out more of a 429 pause than it allows (:meth:`RateArithmetic.reserve`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the credential is paused for another {seconds:.1f}s after a 429")


class RateArithmetic:
    """Token bucket (capacity 1), sliding window and 429 pause: may a request go now, else how long to wait.

    The one 429 rule of both limiters: :meth:`penalize` pauses every caller of the credential (the
    transports call it on each 429, with its ``Retry-After`` or backoff delay), and :meth:`reserve`
    grants nothing until that pause is over.
    """

    def __init__(self, budget: RateBudget, clock: Clock = time.monotonic) -> None:
        self.budget, self.clock, self._lock = budget, clock, threading.Lock()
        self._next_slot = self._paused_until = -math.inf
        self._grants: deque[float] = deque()

    def reserve(self, max_pause: float = math.inf) -> tuple[float, float]:
        """``(0.0, now)`` after recording a grant at ``now``; else ``(seconds to wait, now)``. Thread-safe.

        Raises :class:`CredentialPaused` (nothing granted) when the 429 pause has more than ``max_pause`` left.
        """
        b, window = self.budget, self.budget.window_seconds
        limit = max(1, b.max_requests_per_window // b.triggerer_count) if b.max_requests_per_window and window else 0
        with self._lock:
            now = self.clock()
            if self._paused_until - now > max_pause:
                raise CredentialPaused(self._paused_until - now)
            wait = max(self._paused_until - now, self._next_slot - now, 0.0)
            while self._grants and (not limit or self._grants[0] <= now - window):
                self._grants.popleft()
            if limit and len(self._grants) >= limit:
                wait = max(wait, self._grants[-limit] + window - now)
            if wait > 0:
                return wait, now
            self._next_slot = now + (b.triggerer_count / b.max_requests_per_second if b.max_requests_per_second else 0)
            self._grants.append(now)
            return 0.0, now

    def refund(self, granted_at: float) -> None:
        """Give back a grant whose request was never sent."""
        with self._lock, suppress(ValueError):
            self._next_slot = min(self._next_slot, granted_at)
            self._grants.remove(granted_at)

    def penalize(self, seconds: float) -> None:
        """Pause every caller of this credential for ``seconds`` from now (e.g. after a 429); never shortens."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"penalty must be a finite number of seconds >= 0, got {seconds!r}")
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def paused_for(self) -> float:
        """Seconds left of the current 429 pause (0 when none)."""
        with self._lock:
            return max(0.0, self._paused_until - self.clock())


class SyncRateLimiter(RateArithmetic):
    """Thread-safe limiter for the synchronous transport; threads are not ordered among themselves.

    A 429 pause (:meth:`penalize`) holds back every thread of the process on this credential, not only
    the one that got the 429.
    """

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def acquire(self, max_pause: float = math.inf) -> None:
        """Block until this thread may send one request, a 429 pause of the credential included.

        Raises :class:`CredentialPaused`, holding no grant, rather than wait out more than ``max_pause``
        seconds of a pause (checked after every wait, so a pause another thread extends meanwhile counts).
        """
        while wait := self.reserve(max_pause)[0]:
            self.sleep(wait)


class AsyncRateLimiter(RateArithmetic):
    """Limiter for one event loop: oldest-due waiter first, FIFO on ties; a cancelled waiter keeps no slot."""

    def __init__(self, budget: RateBudget, clock: Clock = time.monotonic) -> None:
        super().__init__(budget, clock)
        self._heap: list[tuple[float, int, asyncio.Future[float]]] = []
        self._order = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        #: Requests of this credential in flight at once (the shared pool's size), so that waiting
        #: requests queue here, in O(1), and never inside httpx's pool (O(queued) per request).
        self.in_flight = asyncio.Semaphore(budget.pool_size)

    async def acquire(self, due_at: float | None = None) -> None:
        """Return once one request may be sent, and not before ``due_at`` (limiter clock; default now).

        With nobody queued and nothing due later, a free slot is taken at once (no queueing).
        """
        if not self._heap and (due_at is None or due_at <= self.clock()) and not self.reserve()[0]:
            return
        loop = asyncio.get_running_loop()
        entry = (self.clock() if due_at is None else due_at, next(self._order), loop.create_future())
        heapq.heappush(self._heap, entry)
        self._wake()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch())
        try:
            await entry[2]
        except asyncio.CancelledError:
            if entry[2].done() and not entry[2].cancelled():  # granted, then cancelled before use
                self.refund(entry[2].result())
                self._wake()
            raise

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _dispatch(self) -> None:
        """Grant the top waiter whenever its due time and the budget allow; ends when none is left."""
        loop = asyncio.get_running_loop()
        while self._heap:
            due_at, _, waiter = self._heap[0]
            wait = 0.0 if waiter.done() else due_at - self.clock()
            if wait <= 0 and not waiter.done():
                wait, granted_at = self.reserve()
                if not wait:
                    waiter.set_result(granted_at)
            if waiter.done():
                heapq.heappop(self._heap)
                continue
            self._wakeup, timer = loop.create_future(), loop.call_later(wait, self._wake)
            await self._wakeup
            timer.cancel()


def credential_key(base_url: str, client_id: str) -> str:
    """Registry key for one vendor credential: a hash of its base URL and client id (no secret)."""
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{client_id}".encode()).hexdigest()[:32]


_sync_limiters: dict[str, SyncRateLimiter] = {}
_sync_lock = threading.Lock()


def sync_limiter(key: str, budget: RateBudget) -> SyncRateLimiter:
    """This process's limiter for ``key`` (shared by every hook and thread); a changed ``budget`` applies from now."""
    with _sync_lock:
        limiter = _sync_limiters.get(key)
        if limiter is None:
            limiter = _sync_limiters[key] = SyncRateLimiter(budget)
        limiter.budget = budget
        return limiter


def reset_sync_limiters() -> None:
    """Forget every sync limiter of this process (a forked child starts afresh; tests call it too)."""
    global _sync_lock
    _sync_lock = threading.Lock()
    _sync_limiters.clear()


os.register_at_fork(after_in_child=reset_sync_limiters)  # a lock held by another thread at fork would never free


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()


def shared_limiter(key: str, budget: RateBudget) -> AsyncRateLimiter:
    """The running loop's limiter for ``key``; a changed ``budget`` applies to it from now on."""
    limiters = _limiters.setdefault(asyncio.get_running_loop(), {})
    limiter: AsyncRateLimiter | None = limiters.get(key)
    if limiter is None:
        limiter = limiters[key] = AsyncRateLimiter(budget)
    limiter.budget = budget
    return limiter


@asynccontextmanager
async def shared_async_client(key: str, factory: Callable[[], httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    """Lend the running loop's client for ``key`` (``factory`` builds it); closed when its last user leaves."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    entry = clients.get(key) or clients.setdefault(key, [factory(), 0])  # [client, users]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if not entry[1]:
            del clients[key]
            await entry[0].aclose()
