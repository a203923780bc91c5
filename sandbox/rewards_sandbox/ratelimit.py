"""Sliding-window rate limiter of the sandbox, keyed per credential.

A request is admitted only if every window still has a free slot; an admitted request takes a
slot in every window, a rejected one takes none (so retrying too early changes nothing).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from rewards_sandbox.config import RateWindow


class RateLimiter:
    """Per-key sliding windows; :meth:`admit` returns None or the seconds until a slot frees."""

    def __init__(self, windows: tuple[RateWindow, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self._windows = windows
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, list[deque[float]]] = {}

    @property
    def windows(self) -> tuple[RateWindow, ...]:
        """The configured windows (empty: no limit)."""
        return self._windows

    def configure(self, windows: tuple[RateWindow, ...]) -> None:
        """Replace the windows and forget every counted request."""
        with self._lock:
            self._windows = windows
            self._hits.clear()

    def clear(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._hits.clear()

    def admit(self, key: str) -> int | None:
        """Count one request of ``key``: None if admitted, else the whole seconds (>= 1) to wait."""
        with self._lock:
            if not self._windows:
                return None
            now = self._clock()
            queues = self._hits.setdefault(key, [deque() for _ in self._windows])
            wait = 0.0
            for window, hits in zip(self._windows, queues, strict=True):
                while hits and hits[0] <= now - window.seconds:
                    hits.popleft()
                if len(hits) >= window.limit:
                    wait = max(wait, hits[0] + window.seconds - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            for hits in queues:
                hits.append(now)
            return None
