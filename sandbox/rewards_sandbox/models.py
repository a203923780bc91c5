"""In-memory records of the sandbox (mutable; always used under :class:`SandboxState`'s lock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Thanx issuance job states
PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
REVOKING = "revoking"
REVOKED = "revoked"
JOB_STATES = (PENDING, PROCESSING, COMPLETED, FAILED, REVOKING, REVOKED)
REVOCABLE_STATES = (COMPLETED, FAILED)

# HPGames reward statuses
IN_PROGRESS = "IN_PROGRESS"
CLOSED = "CLOSED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
REWARD_STATUSES = (IN_PROGRESS, CLOSED, EXPIRED, CANCELLED)
CONFIGURATION_STATUSES = ("ACTIVE", "INACTIVE")
REWARD_TYPES = ("FREE_BET",)

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


def iso(ts: float | None) -> str | None:
    """Format an epoch-seconds time as ``2025-06-15T10:30:00Z`` (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 time (``Z`` allowed; naive means UTC) into epoch seconds."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class ThanxMerchant:
    """A Thanx merchant."""

    id: str
    name: str
    handle: str

    def as_dict(self) -> dict[str, str]:
        """Return the Get Merchants representation."""
        return {"id": self.id, "name": self.name, "handle": self.handle}


@dataclass(frozen=True)
class ThanxCredential:
    """A static partner credential: client id + access token, scopes and merchants it may act for."""

    client_id: str
    access_token: str
    merchant_ids: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class ThanxCampaign:
    """A partner-initiated campaign of one merchant with its variant ids."""

    id: str
    merchant_id: str
    variant_ids: tuple[str, ...]
    ends_at: str | None = None


@dataclass
class IssuanceJob:
    """A Thanx issuance job.

    ``state`` is the stored issuance state (pending/processing/completed/failed). The state a
    client reads is derived lazily (see :meth:`view`): a job created through Issue Rewards
    (``issue_seconds`` set) moves pending → processing → completed/failed with time, and a
    revoked job (``revoke_started_at`` set) reads ``revoking`` then ``revoked``.
    """

    id: str
    merchant_id: str
    campaign_id: str
    variant_id: str
    state: str
    total_count: int
    processed_count: int
    success_count: int
    failure_count: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    issue_seconds: float | None = None
    revoke_started_at: float | None = None
    revoke_seconds: float = 0.0

    def view(self, now: float) -> dict[str, Any]:
        """Return the documented ``issuance_job`` object as seen at time ``now``."""
        state = self.state
        processed, success, failure = self.processed_count, self.success_count, self.failure_count
        started_at, completed_at = self.started_at, self.completed_at
        progress = _stored_progress(state, processed, self.total_count)
        if self.issue_seconds is not None:
            state, processed, progress, started_at, completed_at = self._issue_timeline(now)
            failure = sum(1 for f in self.failures if f["identifier_index"] < processed)
            success = processed - failure
        if self.revoke_started_at is not None:
            elapsed = now - self.revoke_started_at
            if self.revoke_seconds <= 0 or elapsed >= self.revoke_seconds:
                state, progress = REVOKED, 100
            else:
                state, progress = REVOKING, min(99, max(0, int(100 * elapsed / self.revoke_seconds)))
        job: dict[str, Any] = {
            "id": self.id,
            "campaign_id": self.campaign_id,
            "variant_id": self.variant_id,
            "state": state,
            "total_count": self.total_count,
            "processed_count": processed,
            "success_count": success,
            "failure_count": failure,
            "progress_percent": progress,
            "created_at": iso(self.created_at),
            "started_at": iso(started_at),
            "completed_at": iso(completed_at),
        }
        if state == COMPLETED:
            summary: dict[str, Any] = {"success_count": success, "failure_count": failure}
            if failure:
                summary["failures"] = [dict(f) for f in self.failures]
            job["summary"] = summary
        return job

    def _issue_timeline(self, now: float) -> tuple[str, int, int, float | None, float | None]:
        """Derive (state, processed, progress, started_at, completed_at) of an API-issued job."""
        duration = self.issue_seconds or 0.0
        elapsed = now - self.created_at
        half = duration / 2
        if duration <= 0 or elapsed >= duration:
            return self.state, self.total_count, 100, self.created_at + half, self.created_at + duration
        if elapsed < half:
            return PENDING, 0, 0, None, None
        fraction = (elapsed - half) / half
        processed = min(self.total_count, int(self.total_count * fraction))
        return PROCESSING, processed, min(99, int(100 * fraction)), self.created_at + half, None


def _stored_progress(state: str, processed: int, total: int) -> int:
    """Progress of a job whose state is stored (seeded): 0 pending, processed/total while processing."""
    if state == PENDING:
        return 0
    if state == PROCESSING:
        return min(99, processed * 100 // total) if total else 0
    return 100


@dataclass(frozen=True)
class HpgMerchant:
    """An HPGames merchant and its signing secret."""

    id: str
    secret: str
    name: str


@dataclass(frozen=True)
class RewardConfiguration:
    """An HPGames reward configuration (free-bet template)."""

    id: str
    merchant_id: str
    name: str
    external_id: str | None
    status: str
    number_of_free_bets: int
    duration_minutes: int
    start_date: int | None = None
    end_date: int | None = None
    games: tuple[dict[str, Any], ...] = ()

    def ended(self, now_ms: int) -> bool:
        """Whether the assignment window closed (``endDate`` at or before ``now_ms``)."""
        return self.end_date is not None and self.end_date <= now_ms

    def assignable(self, now_ms: int) -> bool:
        """Whether ``now_ms`` is inside the ``startDate``..``endDate`` assignment window."""
        started = self.start_date is None or self.start_date <= now_ms
        return started and not self.ended(now_ms)

    def as_dict(self) -> dict[str, Any]:
        """Return the configuration as the vendor names its fields (``read``/``readAll`` item)."""
        return {
            "id": self.id,
            "externalId": self.external_id,
            "merchantId": self.merchant_id,
            "name": self.name,
            "status": self.status,
            "rewardType": "FREE_BET",
            "numberOfFreeBets": self.number_of_free_bets,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "duration": self.duration_minutes,
            "games": [dict(game) for game in self.games],
        }


@dataclass(slots=True)
class Reward:
    """One reward assigned to one player."""

    id: str
    merchant_id: str
    external_id: str
    configuration_id: str
    player_id: str
    status: str
    assigned_free_bets: int
    remaining_free_bets: int
    assigned_date: int
    expiration_date: int
    cancelled_date: int | None = None

    def expire_if_due(self, now_ms: int) -> None:
        """Turn an IN_PROGRESS reward past its expiration date into EXPIRED."""
        if self.status == IN_PROGRESS and self.expiration_date <= now_ms:
            self.status = EXPIRED

    def as_dict(self, *, external_id: bool = False) -> dict[str, Any]:
        """Return the documented readAll item (``externalId`` only when asked: it is undocumented)."""
        item = {
            "id": self.id,
            "rewardConfigurationId": self.configuration_id,
            "playerId": self.player_id,
            "merchantId": self.merchant_id,
            "assignedDate": self.assigned_date,
            "expirationDate": self.expiration_date,
            "assignedFreeBets": self.assigned_free_bets,
            "remainingFreeBets": self.remaining_free_bets,
            "status": self.status,
        }
        if external_id:
            item["externalId"] = self.external_id
        return item
