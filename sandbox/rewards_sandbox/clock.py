"""The sandbox's movable clock: real time plus an offset that tests may set or advance."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class SandboxClock:
    """Epoch-seconds clock of the vendor state (reward expiry, configuration end dates, job timelines).

    It keeps running at real speed; :meth:`set_ms` and :meth:`advance` move it, :meth:`reset`
    puts it back on real time. HPGames timestamp freshness is still checked against real time,
    since clients sign with their own clocks.
    """

    def __init__(self, now_ms: int | None = None, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._offset = 0.0
        if now_ms is not None:
            self.set_ms(now_ms)

    def __call__(self) -> float:
        """Current sandbox time in epoch seconds."""
        with self._lock:
            return self._real() + self._offset

    def now_ms(self) -> int:
        """Current sandbox time in epoch milliseconds."""
        return int(self() * 1000)

    def set_ms(self, now_ms: int) -> None:
        """Make "now" read ``now_ms`` (epoch ms) from this instant on."""
        if isinstance(now_ms, bool) or not isinstance(now_ms, int | float) or now_ms < 0:
            raise ValueError(f"now_ms must be a non-negative epoch-milliseconds number, got {now_ms!r}")
        with self._lock:
            self._offset = now_ms / 1000 - self._real()

    def advance(self, seconds: float) -> None:
        """Move "now" by ``seconds`` (may be negative)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"advance_s must be a number of seconds, got {seconds!r}")
        with self._lock:
            self._offset += float(seconds)

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0

    def as_dict(self) -> dict[str, Any]:
        """``{"now_ms", "offset_ms", "real_time"}`` as ``GET /_sandbox/clock`` answers it."""
        with self._lock:
            offset = self._offset
            now = self._real() + offset
        return {"now_ms": int(now * 1000), "offset_ms": int(offset * 1000), "real_time": offset == 0}
