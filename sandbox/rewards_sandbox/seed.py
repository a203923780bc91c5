"""Seed data of the sandbox: the demo seed, its ids as constants, and JSON seed loading.

Seed file format (JSON object; every top-level key is optional)::

    {
      "thanx": {
        "merchants":   [{"id": "k2lye10h32l5wzo", "name": "Pizza Company", "handle": "pizzacompany"}],
        "credentials": [{"client_id": "...", "access_token": "...",
                         "merchant_ids": ["k2lye10h32l5wzo"], "scopes": ["rewards.issue"]}],
        "campaigns":   [{"id": "camp_1", "merchant_id": "k2lye10h32l5wzo",
                         "variant_ids": ["var_treat", "var_ctrl"],
                         "ends_at": "2025-08-31T23:59:59Z"}],   # optional; shown in /_sandbox/state
        "issuance_jobs": [{
          "id": "job_1", "merchant_id": "k2lye10h32l5wzo", "campaign_id": "camp_1",
          "variant_id": "var_treat",
          "state": "completed",            # pending|processing|completed|failed|revoking|revoked
          "total_count": 10,               # default 1
          "processed_count": 10,           # default total_count, 0 when pending
          "failure_count": 1,              # default len(failures)
          "success_count": 9,              # default processed_count - failure_count
          "failures": [{"identifier_index": 3, "identifier_type": "email", "error": "User not found"}],
          "created_at": "2025-06-15T10:30:00Z",   # default: load time
          "started_at": "...", "completed_at": "...",   # defaults: created_at when reached, else null
          "revoked_from": "completed"      # only for revoking/revoked: the state before the revoke
        }]
      },
      "hpgames": {
        "merchants": [{"id": "<uuid>", "secret": "...", "name": "..."}],
        "reward_configurations": [{"id": "<uuid>", "merchantId": "<uuid>", "externalId": null,
                                   "name": "...", "status": "ACTIVE", "numberOfFreeBets": 5,
                                   "duration": 10080,        # duration in minutes
                                   "startDate": null, "endDate": 1756684799000,  # epoch ms, optional
                                   "games": [{"gameId": 1, "betConstraints": {"EUR": {"betAmount": 1}}}]}],
        "rewards": [{"id": "<uuid>", "merchantId": "<uuid>", "rewardConfigurationId": "<uuid>",
                     "playerId": "player-001", "externalId": "ext-1",   # default "gen-<id>"
                     "status": "IN_PROGRESS",                         # default IN_PROGRESS
                     "assignedFreeBets": 5, "remainingFreeBets": 5,   # default: the configuration's
                     "assignedDate": 1754495931035,                   # epoch ms; default: load - 1 h
                     "expirationDate": 1755100731035}],               # default: assigned + duration
        "generated_rewards": [{"merchantId": "<uuid>", "rewardConfigurationId": "<uuid>",
                               "count": 1000000, "playerCount": 1000,   # player ids gen-player-<n>
                               "status": "IN_PROGRESS"}]    # bulk rewards, built at reset
      }
    }

A seeded ``revoking`` job starts revoking at load (reset) time; a seeded ``revoked`` job is revoked.
Seeded ``pending``/``processing`` jobs stay in that state forever (useful for error paths); only
jobs created through Issue Rewards advance with time. An ``EXPIRED`` reward without dates gets an
expiration date one minute before load time. Relative dates make every reset start from the same
picture. Ids are checked for uniqueness per merchant; references are checked to exist.
Assignment from a configuration is refused (409) outside its ``startDate``..``endDate``, judged
by the sandbox clock (``/_sandbox/clock``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rewards_sandbox.models import (
    CANCELLED,
    CLOSED,
    COMPLETED,
    CONFIGURATION_STATUSES,
    EXPIRED,
    FAILED,
    HOUR_MS,
    IN_PROGRESS,
    JOB_STATES,
    MINUTE_MS,
    PENDING,
    PROCESSING,
    REVOCABLE_STATES,
    REVOKED,
    REVOKING,
    REWARD_STATUSES,
    HpgMerchant,
    IssuanceJob,
    Reward,
    RewardConfiguration,
    ThanxCampaign,
    ThanxCredential,
    ThanxMerchant,
    parse_iso,
)

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")  # use fullmatch

# ---------------------------------------------------------------------------------------------
# Demo seed constants: Thanx
# ---------------------------------------------------------------------------------------------
DEMO_THANX_CLIENT_ID = "sandbox_demo_client"
DEMO_THANX_ACCESS_TOKEN = "sandbox_demo_access_token_7f3c9a21"
DEMO_THANX_SCOPES = ("rewards.issue",)
DEMO_THANX_NOSCOPE_CLIENT_ID = "sandbox_subscribers_client"
DEMO_THANX_NOSCOPE_ACCESS_TOKEN = "sandbox_subscribers_access_token_1b2d"
DEMO_THANX_MERCHANT_ID = "k2lye10h32l5wzo"
DEMO_THANX_OTHER_MERCHANT_ID = "m_other_merchant"
DEMO_THANX_FORBIDDEN_MERCHANT_ID = "m_not_opted_in"
DEMO_THANX_CAMPAIGN_ID = "camp_demo_1"
DEMO_THANX_VARIANT_ID = "var_demo_treat"
DEMO_THANX_CONTROL_VARIANT_ID = "var_demo_ctrl"
DEMO_THANX_OTHER_CAMPAIGN_ID = "camp_other_1"
DEMO_THANX_OTHER_VARIANT_ID = "var_other_treat"

DEMO_THANX_COMPLETED_JOB_IDS = ("job_demo_1", "job_demo_2", "job_demo_3")
DEMO_THANX_FAILED_JOB_ID = "job_demo_failed"
#: The jobs the demo revokes: three completed and one failed.
DEMO_THANX_REVOKE_JOB_IDS = (*DEMO_THANX_COMPLETED_JOB_IDS, DEMO_THANX_FAILED_JOB_ID)
#: A completed job no demo action touches.
DEMO_THANX_UNTOUCHED_JOB_ID = "job_demo_untouched"
DEMO_THANX_PENDING_JOB_ID = "job_demo_pending"
DEMO_THANX_PROCESSING_JOB_ID = "job_demo_processing"
DEMO_THANX_REVOKED_JOB_ID = "job_demo_revoked"
DEMO_THANX_OTHER_MERCHANT_JOB_ID = "job_other_1"
#: A second campaign of the demo merchant that has ended (``ends_at`` in the past), with its jobs.
DEMO_THANX_ENDED_CAMPAIGN_ID = "camp_demo_ended"
DEMO_THANX_ENDED_VARIANT_ID = "var_demo_ended"
DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS = ("job_ended_1", "job_ended_2")
DEMO_THANX_CAMPAIGN_ENDS_AT = "2099-12-31T23:59:59Z"
DEMO_THANX_ENDED_CAMPAIGN_ENDS_AT = "2025-08-31T23:59:59Z"
DEMO_THANX_FORBIDDEN_MERCHANT_JOB_ID = "job_noaccess_1"

# ---------------------------------------------------------------------------------------------
# Demo seed constants: HPGames
# ---------------------------------------------------------------------------------------------
DEMO_HPGAMES_MERCHANT_ID = "1387a6cc-3651-4473-ae52-e415caea3395"
DEMO_HPGAMES_SECRET = "sandbox_hpgames_demo_secret_5d41"
DEMO_HPGAMES_OTHER_MERCHANT_ID = "7c2d9a4e-5b1f-4e8a-9c3d-2f6b8a1e4d70"
DEMO_HPGAMES_OTHER_SECRET = "sandbox_hpgames_other_secret_9e07"

DEMO_HPGAMES_CONFIG_ID = "c0f1a000-0000-4000-8000-000000000001"
DEMO_HPGAMES_EXTERNAL_CONFIG_UUID = "c0f1a000-0000-4000-8000-000000000002"
DEMO_HPGAMES_EXTERNAL_CONFIG_ID = "cfg-weekend-freebets"
DEMO_HPGAMES_INACTIVE_CONFIG_ID = "c0f1a000-0000-4000-8000-000000000003"
DEMO_HPGAMES_OTHER_CONFIG_ID = "c0f1a000-0000-4000-8000-000000000009"
#: A configuration whose assignment window ended on 2025-08-31 (2 live rewards of player-007) ...
DEMO_HPGAMES_ENDED_CONFIG_ID = "c0f1a000-0000-4000-8000-000000000004"
DEMO_HPGAMES_ENDED_CONFIG_END_MS = 1756684799000  # 2025-08-31T23:59:59Z
#: ... and one whose window runs until 2099-12-31 (ended only if the sandbox clock is moved past it).
DEMO_HPGAMES_RUNNING_CONFIG_ID = "c0f1a000-0000-4000-8000-000000000005"
DEMO_HPGAMES_RUNNING_CONFIG_END_MS = 4102444799000  # 2099-12-31T23:59:59Z
DEMO_HPGAMES_CONFIG_START_MS = 1748736000000  # 2025-06-01T00:00:00Z
DEMO_HPGAMES_ENDED_CONFIG_PLAYER_ID = "player-007"
DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS = ("5e1f0000-0000-4000-8000-000000000601", "5e1f0000-0000-4000-8000-000000000602")

DEMO_HPGAMES_PLAYER_IDS = tuple(f"player-00{n}" for n in range(1, 7))
_P1, _P2, _P3, _P4, _P5, _P6 = DEMO_HPGAMES_PLAYER_IDS


def _rid(n: int) -> str:
    """Readable, valid UUID of demo reward number ``n``."""
    return f"5e1f0000-0000-4000-8000-{n:012d}"


#: IN_PROGRESS rewards the demo cancels by id (``rewards/cancel`` / ``bulkCancel`` with ``ids``).
DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS = tuple(_rid(n) for n in range(101, 106))
#: IN_PROGRESS rewards the demo cancels by externalId, and their reward ids.
DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS = tuple(f"ext-cancel-00{n}" for n in range(1, 6))
DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS = tuple(_rid(n) for n in range(201, 206))
#: The demo's ``bulkCancelByQuery``: these players, narrowed to this configuration ...
DEMO_HPGAMES_QUERY_PLAYER_IDS = (_P5, _P6)
DEMO_HPGAMES_QUERY_EXTERNAL_CONFIG_ID = DEMO_HPGAMES_EXTERNAL_CONFIG_ID
#: ... cancels exactly these rewards.
DEMO_HPGAMES_QUERY_REWARD_IDS = tuple(_rid(n) for n in range(301, 307))
DEMO_HPGAMES_CLOSED_REWARD_ID = _rid(501)
DEMO_HPGAMES_CLOSED_EXTERNAL_ID = "ext-closed-001"
DEMO_HPGAMES_EXPIRED_REWARD_ID = _rid(502)
DEMO_HPGAMES_EXPIRED_EXTERNAL_ID = "ext-expired-001"
DEMO_HPGAMES_CANCELLED_REWARD_ID = _rid(503)
DEMO_HPGAMES_CANCELLED_EXTERNAL_ID = "ext-cancelled-001"
#: IN_PROGRESS rewards of the demo merchant that no demo action targets.
DEMO_HPGAMES_UNTOUCHED_REWARD_IDS = tuple(_rid(n) for n in range(401, 413))
#: Rewards of the second merchant (same player ids and one same externalId as the demo merchant).
DEMO_HPGAMES_OTHER_MERCHANT_REWARD_IDS = tuple(_rid(n) for n in range(901, 905))
DEMO_HPGAMES_OTHER_MERCHANT_EXTERNAL_ID = DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS[0]


def _job(job_id: str, merchant_id: str, campaign: str, variant: str, state: str, **extra: Any) -> dict:
    """A demo issuance job seed entry."""
    return {
        "id": job_id,
        "merchant_id": merchant_id,
        "campaign_id": campaign,
        "variant_id": variant,
        "state": state,
        "created_at": "2025-06-15T10:30:00Z",
        **extra,
    }


def _user_not_found(*indexes: int) -> list[dict[str, Any]]:
    """Failures entries for the given identifier indexes."""
    return [
        {"identifier_index": i, "identifier_type": "email" if i % 2 else "phone", "error": "User not found"}
        for i in indexes
    ]


def _demo_rewards() -> list[dict[str, Any]]:
    """The demo HPGames rewards (33 for the demo merchant, 4 for the other one)."""
    m, a, b = DEMO_HPGAMES_MERCHANT_ID, DEMO_HPGAMES_CONFIG_ID, DEMO_HPGAMES_EXTERNAL_CONFIG_UUID

    def reward(n: int, player: str, config: str, **extra: Any) -> dict[str, Any]:
        entry = {"id": _rid(n), "merchantId": m, "rewardConfigurationId": config, "playerId": player}
        return {**entry, "externalId": f"hpg-gen-{n}", **extra}

    rewards = [
        reward(n, player, cfg)
        for n, player, cfg in zip(range(101, 106), (_P1, _P1, _P2, _P3, _P4), (a, b, a, b, a), strict=True)
    ]
    rewards += [
        reward(200 + i, player, cfg, externalId=ext)
        for i, (player, cfg, ext) in enumerate(
            zip((_P1, _P2, _P2, _P3, _P4), (b, a, b, a, b), DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS, strict=True),
            1,
        )
    ]
    query_players = (_P5,) * 3 + (_P6,) * 3
    rewards += [reward(n, player, b) for n, player in zip(range(301, 307), query_players, strict=True)]
    untouched = (_P1, _P2, _P3, _P4, _P1, _P2, _P5, _P5, _P6, _P6, _P3, _P4)
    configs = (a, a, b, b, b, a, a, a, a, a, a, b)
    rewards += [reward(n, p, cfg) for n, p, cfg in zip(range(401, 413), untouched, configs, strict=True)]
    ended = DEMO_HPGAMES_ENDED_CONFIG_ID
    rewards += [reward(n, DEMO_HPGAMES_ENDED_CONFIG_PLAYER_ID, ended) for n in (601, 602)]
    rewards += [
        reward(501, _P5, b, externalId=DEMO_HPGAMES_CLOSED_EXTERNAL_ID, status=CLOSED, remainingFreeBets=0),
        reward(502, _P1, a, externalId=DEMO_HPGAMES_EXPIRED_EXTERNAL_ID, status=EXPIRED),
        reward(503, _P2, a, externalId=DEMO_HPGAMES_CANCELLED_EXTERNAL_ID, status=CANCELLED),
    ]
    other = DEMO_HPGAMES_OTHER_MERCHANT_ID
    rewards += [
        {
            "id": rid,
            "merchantId": other,
            "rewardConfigurationId": DEMO_HPGAMES_OTHER_CONFIG_ID,
            "playerId": player,
            "externalId": ext,
        }
        for rid, player, ext in zip(
            DEMO_HPGAMES_OTHER_MERCHANT_REWARD_IDS,
            (_P1, _P5, _P5, _P6),
            (DEMO_HPGAMES_OTHER_MERCHANT_EXTERNAL_ID, "other-ext-2", "other-ext-3", "other-ext-4"),
            strict=True,
        )
    ]
    return rewards


def demo_seed() -> dict[str, Any]:
    """Return the demo seed, in the JSON seed format of this module."""
    m, other, forbidden = (
        DEMO_THANX_MERCHANT_ID,
        DEMO_THANX_OTHER_MERCHANT_ID,
        DEMO_THANX_FORBIDDEN_MERCHANT_ID,
    )
    camp, var = DEMO_THANX_CAMPAIGN_ID, DEMO_THANX_VARIANT_ID
    done = {"started_at": "2025-06-15T10:30:05Z", "completed_at": "2025-06-15T10:30:15Z"}
    one_failure = _user_not_found(4)
    return {
        "thanx": {
            "merchants": [
                {"id": m, "name": "Pizza Company", "handle": "pizzacompany"},
                {"id": other, "name": "Burger Barn", "handle": "burgerbarn"},
                {"id": forbidden, "name": "Taco Town", "handle": "tacotown"},
            ],
            "credentials": [
                {
                    "client_id": DEMO_THANX_CLIENT_ID,
                    "access_token": DEMO_THANX_ACCESS_TOKEN,
                    "merchant_ids": [m, other],
                    "scopes": list(DEMO_THANX_SCOPES),
                },
                {
                    "client_id": DEMO_THANX_NOSCOPE_CLIENT_ID,
                    "access_token": DEMO_THANX_NOSCOPE_ACCESS_TOKEN,
                    "merchant_ids": [m],
                    "scopes": ["subscribers.write"],
                },
            ],
            "campaigns": [
                {
                    "id": camp,
                    "merchant_id": m,
                    "variant_ids": [var, DEMO_THANX_CONTROL_VARIANT_ID],
                    "ends_at": DEMO_THANX_CAMPAIGN_ENDS_AT,
                },
                {
                    "id": DEMO_THANX_ENDED_CAMPAIGN_ID,
                    "merchant_id": m,
                    "variant_ids": [DEMO_THANX_ENDED_VARIANT_ID],
                    "ends_at": DEMO_THANX_ENDED_CAMPAIGN_ENDS_AT,
                },
                {
                    "id": DEMO_THANX_OTHER_CAMPAIGN_ID,
                    "merchant_id": other,
                    "variant_ids": [DEMO_THANX_OTHER_VARIANT_ID],
                },
            ],
            "issuance_jobs": [
                _job(
                    "job_demo_1",
                    m,
                    camp,
                    var,
                    COMPLETED,
                    total_count=120,
                    failures=_user_not_found(17, 42),
                    **done,
                ),
                _job("job_demo_2", m, camp, var, COMPLETED, total_count=50, **done),
                _job("job_demo_3", m, camp, var, COMPLETED, total_count=10, failures=one_failure, **done),
                _job(DEMO_THANX_FAILED_JOB_ID, m, camp, var, FAILED, total_count=25, success_count=3, **done),
                _job(DEMO_THANX_UNTOUCHED_JOB_ID, m, camp, var, COMPLETED, total_count=40, **done),
                _job(DEMO_THANX_PENDING_JOB_ID, m, camp, var, PENDING, total_count=5),
                _job(
                    DEMO_THANX_PROCESSING_JOB_ID,
                    m,
                    camp,
                    var,
                    PROCESSING,
                    total_count=200,
                    processed_count=80,
                ),
                _job(DEMO_THANX_REVOKED_JOB_ID, m, camp, var, REVOKED, total_count=30, **done),
                *(
                    _job(job_id, m, DEMO_THANX_ENDED_CAMPAIGN_ID, DEMO_THANX_ENDED_VARIANT_ID, COMPLETED, **done)
                    for job_id in DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS
                ),
                _job(
                    DEMO_THANX_OTHER_MERCHANT_JOB_ID,
                    other,
                    DEMO_THANX_OTHER_CAMPAIGN_ID,
                    DEMO_THANX_OTHER_VARIANT_ID,
                    COMPLETED,
                    total_count=7,
                    **done,
                ),
                _job(
                    DEMO_THANX_FORBIDDEN_MERCHANT_JOB_ID,
                    forbidden,
                    "camp_taco_1",
                    "var_taco",
                    COMPLETED,
                    **done,
                ),
            ],
        },
        "hpgames": {
            "merchants": [
                {"id": DEMO_HPGAMES_MERCHANT_ID, "secret": DEMO_HPGAMES_SECRET, "name": "Demo Casino"},
                {
                    "id": DEMO_HPGAMES_OTHER_MERCHANT_ID,
                    "secret": DEMO_HPGAMES_OTHER_SECRET,
                    "name": "Other Casino",
                },
            ],
            "reward_configurations": [
                _config(DEMO_HPGAMES_CONFIG_ID, DEMO_HPGAMES_MERCHANT_ID, "Daily free bets", None, 5, 10080),
                {
                    **_config(
                        DEMO_HPGAMES_ENDED_CONFIG_ID,
                        DEMO_HPGAMES_MERCHANT_ID,
                        "Summer 2025 free bets",
                        "cfg-summer-2025",
                        5,
                        10080,
                    ),
                    "startDate": DEMO_HPGAMES_CONFIG_START_MS,
                    "endDate": DEMO_HPGAMES_ENDED_CONFIG_END_MS,
                    "games": [{"gameId": 101, "betConstraints": {"EUR": {"betAmount": 1}}}],
                },
                {
                    **_config(
                        DEMO_HPGAMES_RUNNING_CONFIG_ID,
                        DEMO_HPGAMES_MERCHANT_ID,
                        "Season pass free bets",
                        "cfg-season-pass",
                        3,
                        10080,
                    ),
                    "startDate": DEMO_HPGAMES_CONFIG_START_MS,
                    "endDate": DEMO_HPGAMES_RUNNING_CONFIG_END_MS,
                    "games": [{"gameId": 102, "betConstraints": {"EUR": {"betAmount": 0.5}}}],
                },
                _config(
                    DEMO_HPGAMES_EXTERNAL_CONFIG_UUID,
                    DEMO_HPGAMES_MERCHANT_ID,
                    "Weekend 10 free bets",
                    DEMO_HPGAMES_EXTERNAL_CONFIG_ID,
                    10,
                    20160,
                ),
                _config(
                    DEMO_HPGAMES_INACTIVE_CONFIG_ID,
                    DEMO_HPGAMES_MERCHANT_ID,
                    "Retired promo",
                    "cfg-retired",
                    3,
                    1440,
                    status="INACTIVE",
                ),
                _config(
                    DEMO_HPGAMES_OTHER_CONFIG_ID,
                    DEMO_HPGAMES_OTHER_MERCHANT_ID,
                    "Other promo",
                    None,
                    5,
                    10080,
                ),
            ],
            "rewards": _demo_rewards(),
        },
    }


def _config(
    cid: str, merchant: str, name: str, ext: str | None, bets: int, duration: int, status: str = "ACTIVE"
) -> dict[str, Any]:
    """A reward configuration seed entry."""
    return {
        "id": cid,
        "merchantId": merchant,
        "externalId": ext,
        "name": name,
        "status": status,
        "numberOfFreeBets": bets,
        "duration": duration,
    }


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
class SeedError(ValueError):
    """The seed data is invalid; the message names the offending entry."""


@dataclass(frozen=True)
class JobSeed:
    """A seeded issuance job; ``revoke`` is ``"revoking"``/``"revoked"`` for revoked seeds."""

    job: IssuanceJob
    revoke: str | None
    anchor_times: bool = False

    def build(self, now: float, revoke_seconds: float) -> IssuanceJob:
        """Return a fresh mutable job: revoke timing (and times not given in the seed) anchored at ``now``."""
        job = replace(self.job, failures=[dict(f) for f in self.job.failures])
        if self.anchor_times:
            job.created_at = now
            job.started_at = None if job.started_at is None else now
            job.completed_at = None if job.completed_at is None else now
        if self.revoke is not None:
            job.revoke_started_at = now
            job.revoke_seconds = revoke_seconds if self.revoke == REVOKING else 0.0
        return job


@dataclass(frozen=True)
class RewardSeed:
    """A seeded reward; missing dates are filled relative to load time by :meth:`build`."""

    reward: Reward
    assigned_date: int | None
    expiration_date: int | None
    duration_minutes: int

    def build(self, now_ms: int) -> Reward:
        """Return a fresh mutable reward with its dates resolved."""
        duration_ms = self.duration_minutes * MINUTE_MS
        expiration, assigned = self.expiration_date, self.assigned_date
        if expiration is None and assigned is None and self.reward.status == EXPIRED:
            expiration = now_ms - MINUTE_MS
        if assigned is None:
            assigned = now_ms - HOUR_MS if expiration is None else expiration - duration_ms
        if expiration is None:
            expiration = assigned + duration_ms
        return replace(self.reward, assigned_date=assigned, expiration_date=expiration)


@dataclass(frozen=True)
class GeneratedRewards:
    """``count`` rewards of one configuration, built at reset (for scale tests: no per-reward seed).

    Reward ``n`` (0-based) of entry ``entry`` has id ``9e<entry:06d>-0000-4000-8000-<n:012d>``,
    externalId ``gen-<id>`` and player ``<player_prefix><n % player_count>``.
    """

    entry: int
    merchant_id: str
    configuration: RewardConfiguration
    count: int
    player_count: int
    player_prefix: str
    status: str

    def reward_id(self, n: int) -> str:
        """The id of reward ``n``."""
        return f"9e{self.entry:06d}-0000-4000-8000-{n:012d}"

    def build(self, now_ms: int) -> Iterator[Reward]:
        """Yield the rewards, assigned an hour before ``now_ms``."""
        config = self.configuration
        assigned = now_ms - HOUR_MS
        expiration = assigned + config.duration_minutes * MINUTE_MS
        if self.status == EXPIRED:
            expiration = now_ms - MINUTE_MS
        bets = config.number_of_free_bets
        for n in range(self.count):
            rid = self.reward_id(n)
            yield Reward(
                rid,
                self.merchant_id,
                f"gen-{rid}",
                config.id,
                f"{self.player_prefix}{n % self.player_count}",
                self.status,
                bets,
                bets,
                assigned,
                expiration,
            )


@dataclass(frozen=True)
class Seed:
    """Parsed, validated seed data (immutable templates; see :class:`SandboxState`)."""

    thanx_merchants: tuple[ThanxMerchant, ...]
    credentials: tuple[ThanxCredential, ...]
    campaigns: tuple[ThanxCampaign, ...]
    jobs: tuple[JobSeed, ...]
    hpg_merchants: tuple[HpgMerchant, ...]
    configurations: tuple[RewardConfiguration, ...]
    rewards: tuple[RewardSeed, ...]
    generated_rewards: tuple[GeneratedRewards, ...] = ()


def load_seed_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON seed file (validated by :func:`parse_seed` when the server uses it)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SeedError(f"{path}: the seed must be a JSON object")
    return data


def _get(entry: Mapping[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    """Fetch ``entry[key]`` checking its type; ``default`` (if given) applies when missing or null."""
    value = entry.get(key)
    if value is None:
        if default is ...:
            raise SeedError(f"{where}: '{key}' is required")
        return default
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise SeedError(f"{where}: '{key}' has the wrong type")
    return value


def _entries(section: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    """Return the list of objects ``section[key]`` (empty when missing)."""
    entries = section.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SeedError(f"{where}.{key} must be a list of objects")
    return entries


def _unique(keys: list[Any], what: str) -> None:
    """Raise on the first duplicate key."""
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            raise SeedError(f"duplicate {what}: {key!r}")
        seen.add(key)


def _uuid(value: str, where: str) -> str:
    """Check and normalise (lower-case) a UUID string."""
    if not UUID_RE.fullmatch(value):
        raise SeedError(f"{where}: {value!r} is not a UUID")
    return value.lower()


def parse_seed(data: Mapping[str, Any]) -> Seed:
    """Validate seed data (the JSON format above) into a :class:`Seed`."""
    thanx = data.get("thanx") or {}
    hpg = data.get("hpgames") or {}
    if not isinstance(thanx, dict) or not isinstance(hpg, dict):
        raise SeedError("'thanx' and 'hpgames' must be objects")
    merchants, credentials, campaigns, jobs = _parse_thanx(thanx)
    hpg_merchants, configurations, rewards = _parse_hpgames(hpg)
    generated = _parse_generated(hpg, configurations)
    return Seed(merchants, credentials, campaigns, jobs, hpg_merchants, configurations, rewards, generated)


#: Upper bound of ``generated_rewards[].count`` (memory: roughly 0.5 kB per reward).
MAX_GENERATED_REWARDS = 5_000_000


def _parse_generated(
    section: Mapping[str, Any], configurations: tuple[RewardConfiguration, ...]
) -> tuple[GeneratedRewards, ...]:
    """Parse ``hpgames.generated_rewards``."""
    by_key = {(c.merchant_id, c.id): c for c in configurations}
    generated = []
    for i, e in enumerate(_entries(section, "generated_rewards", "hpgames")):
        where = f"hpgames.generated_rewards[{i}]"
        merchant_id = _uuid(_get(e, "merchantId", str, where), where)
        config_id = _uuid(_get(e, "rewardConfigurationId", str, where), where)
        config = by_key.get((merchant_id, config_id))
        if config is None:
            raise SeedError(f"{where}: unknown reward configuration {config_id!r} for merchant {merchant_id!r}")
        count = _get(e, "count", int, where)
        player_count = _get(e, "playerCount", int, where, 1000)
        status = _get(e, "status", str, where, IN_PROGRESS)
        if not 0 <= count <= MAX_GENERATED_REWARDS or player_count < 1:
            raise SeedError(f"{where}: count must be 0..{MAX_GENERATED_REWARDS} and playerCount >= 1")
        if status not in REWARD_STATUSES:
            raise SeedError(f"{where}: status must be one of {REWARD_STATUSES}")
        prefix = _get(e, "playerIdPrefix", str, where, "gen-player-")
        generated.append(GeneratedRewards(i, merchant_id, config, count, player_count, prefix, status))
    return tuple(generated)


ThanxSeed = tuple[
    tuple[ThanxMerchant, ...], tuple[ThanxCredential, ...], tuple[ThanxCampaign, ...], tuple[JobSeed, ...]
]


def _parse_thanx(section: Mapping[str, Any]) -> ThanxSeed:
    """Parse the ``thanx`` section."""
    merchants = tuple(
        ThanxMerchant(
            id=_get(e, "id", str, f"thanx.merchants[{i}]"),
            name=_get(e, "name", str, f"thanx.merchants[{i}]", ""),
            handle=_get(e, "handle", str, f"thanx.merchants[{i}]", ""),
        )
        for i, e in enumerate(_entries(section, "merchants", "thanx"))
    )
    _unique([m.id for m in merchants], "Thanx merchant id")
    known = {m.id for m in merchants}
    credentials = []
    for i, e in enumerate(_entries(section, "credentials", "thanx")):
        where = f"thanx.credentials[{i}]"
        merchant_ids = tuple(_get(e, "merchant_ids", list, where, []))
        if unknown := [mid for mid in merchant_ids if mid not in known]:
            raise SeedError(f"{where}: unknown merchant ids {unknown}")
        credentials.append(
            ThanxCredential(
                client_id=_get(e, "client_id", str, where),
                access_token=_get(e, "access_token", str, where),
                merchant_ids=merchant_ids,
                scopes=tuple(_get(e, "scopes", list, where, [])),
            )
        )
    _unique([c.client_id for c in credentials], "Thanx client id")
    campaigns = []
    for i, e in enumerate(_entries(section, "campaigns", "thanx")):
        where = f"thanx.campaigns[{i}]"
        campaign = ThanxCampaign(
            id=_get(e, "id", str, where),
            merchant_id=_get(e, "merchant_id", str, where),
            variant_ids=tuple(_get(e, "variant_ids", list, where, [])),
            ends_at=_get(e, "ends_at", str, where, None),
        )
        if campaign.ends_at is not None:
            try:
                parse_iso(campaign.ends_at)
            except ValueError as exc:
                raise SeedError(f"{where}: bad ISO 8601 ends_at: {exc}") from None
        if campaign.merchant_id not in known:
            raise SeedError(f"{where}: unknown merchant {campaign.merchant_id!r}")
        campaigns.append(campaign)
    _unique([(c.merchant_id, c.id) for c in campaigns], "campaign (merchant, id)")
    jobs = tuple(
        _parse_job(e, f"thanx.issuance_jobs[{i}]", known)
        for i, e in enumerate(_entries(section, "issuance_jobs", "thanx"))
    )
    _unique([(j.job.merchant_id, j.job.id) for j in jobs], "issuance job (merchant, id)")
    return merchants, tuple(credentials), tuple(campaigns), jobs


def _parse_job(e: Mapping[str, Any], where: str, known_merchants: set[str]) -> JobSeed:
    """Parse one seeded issuance job."""
    state = _get(e, "state", str, where)
    if state not in JOB_STATES:
        raise SeedError(f"{where}: state must be one of {JOB_STATES}")
    merchant_id = _get(e, "merchant_id", str, where)
    if merchant_id not in known_merchants:
        raise SeedError(f"{where}: unknown merchant {merchant_id!r}")
    revoke = None
    if state in (REVOKING, REVOKED):
        revoke = state
        state = _get(e, "revoked_from", str, where, COMPLETED)
        if state not in REVOCABLE_STATES:
            raise SeedError(f"{where}: revoked_from must be one of {REVOCABLE_STATES}")
    failures = _get(e, "failures", list, where, [])
    if not all(isinstance(f, dict) for f in failures):
        raise SeedError(f"{where}: failures must be a list of objects")
    total = _get(e, "total_count", int, where, 1)
    processed = _get(e, "processed_count", int, where, 0 if state == PENDING else total)
    failure_count = _get(e, "failure_count", int, where, len(failures))
    success = _get(e, "success_count", int, where, processed - failure_count)
    if state == FAILED and "failure_count" not in e:
        failure_count = processed - success
    if not 0 <= processed <= total or success + failure_count > processed or min(success, failure_count) < 0:
        raise SeedError(f"{where}: inconsistent counts")
    created_text = _get(e, "created_at", str, where, None)
    started_text = _get(e, "started_at", str, where, None)
    completed_text = _get(e, "completed_at", str, where, None)
    if created_text is None and (started_text or completed_text):
        raise SeedError(f"{where}: created_at is required when started_at or completed_at is given")
    try:
        created = parse_iso(created_text) if created_text else 0.0
        default_started = created if state != PENDING else None
        default_completed = created if state in REVOCABLE_STATES else None
        started = parse_iso(started_text) if started_text else default_started
        completed = parse_iso(completed_text) if completed_text else default_completed
    except ValueError as exc:
        raise SeedError(f"{where}: bad ISO 8601 time: {exc}") from None
    job = IssuanceJob(
        id=_get(e, "id", str, where),
        merchant_id=merchant_id,
        campaign_id=_get(e, "campaign_id", str, where),
        variant_id=_get(e, "variant_id", str, where),
        state=state,
        total_count=total,
        processed_count=processed,
        success_count=success,
        failure_count=failure_count,
        created_at=created,
        started_at=started,
        completed_at=completed,
        failures=[dict(f) for f in failures],
    )
    return JobSeed(job=job, revoke=revoke, anchor_times=created_text is None)


def _parse_hpgames(
    section: Mapping[str, Any],
) -> tuple[tuple[HpgMerchant, ...], tuple[RewardConfiguration, ...], tuple[RewardSeed, ...]]:
    """Parse the ``hpgames`` section."""
    merchants = tuple(
        HpgMerchant(
            id=_uuid(_get(e, "id", str, f"hpgames.merchants[{i}]"), f"hpgames.merchants[{i}]"),
            secret=_get(e, "secret", str, f"hpgames.merchants[{i}]"),
            name=_get(e, "name", str, f"hpgames.merchants[{i}]", ""),
        )
        for i, e in enumerate(_entries(section, "merchants", "hpgames"))
    )
    _unique([m.id for m in merchants], "HPGames merchant id")
    known = {m.id for m in merchants}
    configurations = []
    for i, e in enumerate(_entries(section, "reward_configurations", "hpgames")):
        where = f"hpgames.reward_configurations[{i}]"
        config = RewardConfiguration(
            id=_uuid(_get(e, "id", str, where), where),
            merchant_id=_uuid(_get(e, "merchantId", str, where), where),
            name=_get(e, "name", str, where, ""),
            external_id=_get(e, "externalId", str, where, None),
            status=_get(e, "status", str, where, "ACTIVE"),
            number_of_free_bets=_get(e, "numberOfFreeBets", int, where, 1),
            duration_minutes=_get(e, "duration", int, where, 10080),
            start_date=_get(e, "startDate", int, where, None),
            end_date=_get(e, "endDate", int, where, None),
            games=tuple(_games(e, where)),
        )
        if None not in (config.start_date, config.end_date) and config.end_date < config.start_date:
            raise SeedError(f"{where}: endDate is before startDate")
        if config.merchant_id not in known:
            raise SeedError(f"{where}: unknown merchant {config.merchant_id!r}")
        if config.status not in CONFIGURATION_STATUSES:
            raise SeedError(f"{where}: status must be one of {CONFIGURATION_STATUSES}")
        configurations.append(config)
    _unique([(c.merchant_id, c.id) for c in configurations], "reward configuration (merchant, id)")
    external_keys = [(c.merchant_id, c.external_id) for c in configurations if c.external_id]
    _unique(external_keys, "configuration (merchant, externalId)")
    by_key = {(c.merchant_id, c.id): c for c in configurations}
    entries = _entries(section, "rewards", "hpgames")
    rewards = tuple(_parse_reward(e, f"hpgames.rewards[{i}]", by_key) for i, e in enumerate(entries))
    _unique([(r.reward.merchant_id, r.reward.id) for r in rewards], "reward (merchant, id)")
    _unique([(r.reward.merchant_id, r.reward.external_id) for r in rewards], "reward (merchant, externalId)")
    return merchants, tuple(configurations), rewards


def _games(entry: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The ``games`` of a configuration: objects with an integer ``gameId`` (``id`` defaults to it)."""
    games = []
    for index, game in enumerate(_get(entry, "games", list, where, [])):
        if not isinstance(game, dict) or not isinstance(game.get("gameId"), int):
            raise SeedError(f"{where}: games[{index}] must be an object with an integer gameId")
        games.append({"id": game.get("id", game["gameId"]), **game})
    return games


def _parse_reward(
    e: Mapping[str, Any], where: str, configurations: Mapping[tuple[str, str], RewardConfiguration]
) -> RewardSeed:
    """Parse one seeded reward."""
    rid = _uuid(_get(e, "id", str, where), where)
    merchant_id = _uuid(_get(e, "merchantId", str, where), where)
    config_id = _uuid(_get(e, "rewardConfigurationId", str, where), where)
    config = configurations.get((merchant_id, config_id))
    if config is None:
        raise SeedError(f"{where}: unknown reward configuration {config_id!r} for merchant {merchant_id!r}")
    status = _get(e, "status", str, where, IN_PROGRESS)
    if status not in REWARD_STATUSES:
        raise SeedError(f"{where}: status must be one of {REWARD_STATUSES}")
    assigned = _get(e, "assignedFreeBets", int, where, config.number_of_free_bets)
    reward = Reward(
        id=rid,
        merchant_id=merchant_id,
        external_id=_get(e, "externalId", str, where, f"gen-{rid}"),
        configuration_id=config_id,
        player_id=_get(e, "playerId", str, where),
        status=status,
        assigned_free_bets=assigned,
        remaining_free_bets=_get(e, "remainingFreeBets", int, where, assigned),
        assigned_date=0,
        expiration_date=0,
    )
    return RewardSeed(
        reward=reward,
        assigned_date=_get(e, "assignedDate", int, where, None),
        expiration_date=_get(e, "expirationDate", int, where, None),
        duration_minutes=config.duration_minutes,
    )
