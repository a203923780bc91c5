"""Settings of a sandbox server."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Injectable fault kinds: three error answers given before any change, "drop" (change
#: applied, then the connection is closed without a response) and "error_200" (HPGames only:
#: HTTP 200 with an ``errorCode`` body, nothing changed).
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "drop", "error_200")
#: The kinds drawn when none are given (``error_200`` is opt-in, so existing chaos seeds replay).
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "drop")
ALREADY_CANCELLED_MODES: tuple[str, ...] = ("ok", "refuse")
#: HPGames actions (path after ``/api/v1/integration/``) that ``error_200_actions`` may name.
HPGAMES_ACTIONS: tuple[str, ...] = (
    "rewards/assign",
    "rewards/cancel",
    "rewards/bulkCancel",
    "rewards/bulkCancelByQuery",
    "rewards/readAll",
    "reward-configurations/read",
    "reward-configurations/readAll",
)
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*s\s*$")


@dataclass(frozen=True)
class RateWindow:
    """At most ``limit`` requests per ``seconds`` (sliding window), per credential."""

    limit: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"


RateLimitSpec = str | Iterable[RateWindow | tuple[int, float]] | None


def parse_rate_limit(spec: RateLimitSpec) -> tuple[RateWindow, ...]:
    """Parse ``"5/s,2000/900s"`` (or windows / ``(limit, seconds)`` pairs); None or "" means no limit."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        windows = []
        for part in (p for p in spec.split(",") if p.strip()):
            match = _WINDOW_RE.fullmatch(part)
            if match is None:
                raise ValueError(f"rate limit window {part.strip()!r} must look like 5/s or 2000/900s")
            windows.append(RateWindow(int(match[1]), float(match[2] or 1)))
    else:
        windows = [w if isinstance(w, RateWindow) else RateWindow(int(w[0]), float(w[1])) for w in spec]
    for window in windows:
        if window.limit < 1 or window.seconds <= 0:
            raise ValueError(f"rate limit window {window} needs a limit >= 1 and a positive duration")
    return tuple(windows)


def normalize_error_200_actions(actions: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate HPGames actions; ``bulkCancel`` is short for ``rewards/bulkCancel``."""
    if actions is None:
        return ()
    if isinstance(actions, str):
        actions = [a for a in actions.split(",") if a.strip()]
    normalized = []
    for action in actions:
        if not isinstance(action, str):
            raise ValueError(f"error_200 actions must be strings, got {action!r}")
        full = action.strip() if "/" in action else f"rewards/{action.strip()}"
        if full not in HPGAMES_ACTIONS:
            raise ValueError(f"unknown HPGames action {action!r}; use one of {', '.join(HPGAMES_ACTIONS)}")
        normalized.append(full)
    return tuple(dict.fromkeys(normalized))


def check_already_cancelled(mode: str) -> str:
    """Validate the answer to cancelling an already CANCELLED reward."""
    if mode not in ALREADY_CANCELLED_MODES:
        raise ValueError(f"already_cancelled must be one of {ALREADY_CANCELLED_MODES}, got {mode!r}")
    return mode


def normalize_fault_kinds(kinds: Iterable[str | int] | None) -> tuple[str, ...]:
    """Validate fault kinds (ints allowed: ``429``); None means the default kinds (no ``error_200``)."""
    if kinds is None:
        return DEFAULT_FAULT_KINDS
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
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    retry_after_s: int = 1
    latency_ms: float = 0.0
    timestamp_window_s: float = 300.0
    request_log_size: int = 100_000
    log_requests: bool = False
    #: Sliding windows per credential (Thanx access token, HPGames merchant), e.g. "5/s,2000/900s".
    rate_limit: RateLimitSpec = None
    #: Force the Retry-After of every 429 (rate limit and injected fault) to this many seconds.
    retry_after_override: int | None = None
    #: "ok": cancelling a CANCELLED reward is a no-op 200; "refuse": 409, nothing changed.
    already_cancelled: str = "ok"
    #: HPGames actions answered HTTP 200 + ``{"errorCode": 1003, ...}`` every time, nothing changed.
    error_200_actions: tuple[str, ...] = ()
    #: Start the sandbox clock at this epoch-ms time (None: real time); it then runs forward.
    now_ms: int | None = None
    #: Record request bodies (hash redacted) in the request log.
    log_bodies: bool = False
    #: Add the undocumented ``externalId`` to readAll items (the vendor's documented item has none).
    read_all_external_id: bool = False
    #: Answer cancels of ids the sandbox does not hold as done (a no-op 200) instead of a 404, so a
    #: benchmark can send millions of ids without seeding them ("sink" mode; nothing is stored).
    accept_unknown_ids: bool = False

    def __post_init__(self) -> None:
        check_fault_rate(self.fault_rate)
        object.__setattr__(self, "fault_kinds", normalize_fault_kinds(self.fault_kinds))
        object.__setattr__(self, "rate_limit", parse_rate_limit(self.rate_limit))
        object.__setattr__(self, "error_200_actions", normalize_error_200_actions(self.error_200_actions))
        check_already_cancelled(self.already_cancelled)
        if self.retry_after_override is not None and self.retry_after_override < 1:
            raise ValueError("retry_after_override must be >= 1 second")
        if self.seed is not None and self.seed_file is not None:
            raise ValueError("give either seed or seed_file, not both")
        for name in ("revoke_seconds", "issue_seconds", "retry_after_s", "latency_ms", "timestamp_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= self.port <= 65535 or self.request_log_size < 1:
            raise ValueError("port must be 0..65535 and request_log_size positive")
