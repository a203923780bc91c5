"""Settings of a sandbox server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Injectable fault kinds: three error answers given before any change, and "drop" (change
#: applied, then the connection is closed without a response).
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "drop")


def normalize_fault_kinds(kinds: Iterable[str | int] | None) -> tuple[str, ...]:
    """Validate fault kinds (ints allowed: ``429``); None means all kinds."""
    if kinds is None:
        return FAULT_KINDS
    normalized = tuple(dict.fromkeys(str(kind) for kind in kinds))
    unknown = [kind for kind in normalized if kind not in FAULT_KINDS]
    if unknown or not normalized:
        raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {list(kinds)}")
    return normalized


def check_fault_rate(rate: float) -> float:
    """Validate a fault probability."""
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
    return float(rate)


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of :class:`~rewards_sandbox.server.SandboxServer`.

    ``seed`` (a mapping in the seed JSON format) or ``seed_file`` (a path) replaces the demo seed.
    Times are in seconds unless the name says otherwise.
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: Mapping[str, Any] | None = None
    seed_file: str | None = None
    revoke_seconds: float = 5.0
    issue_seconds: float = 2.0
    fault_rate: float = 0.0
    fault_seed: int | None = None
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_s: int = 1
    latency_ms: float = 0.0
    timestamp_window_s: float = 300.0
    request_log_size: int = 100_000
    log_requests: bool = False

    def __post_init__(self) -> None:
        check_fault_rate(self.fault_rate)
        object.__setattr__(self, "fault_kinds", normalize_fault_kinds(self.fault_kinds))
        if self.seed is not None and self.seed_file is not None:
            raise ValueError("give either seed or seed_file, not both")
        for name in ("revoke_seconds", "issue_seconds", "retry_after_s", "latency_ms", "timestamp_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= self.port <= 65535 or self.request_log_size < 1:
            raise ValueError("port must be 0..65535 and request_log_size positive")
