"""Thread-safe in-memory state of both vendors, with their state machines.

All public methods take one re-entrant lock, so every operation (including a bulk cancel) is
atomic. Time-dependent states (issuance progress, revocation, reward expiry) are derived
lazily from a clock on every read; no background thread is involved.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from rewards_sandbox.config import check_already_cancelled
from rewards_sandbox.errors import (
    THANX_BAD_REQUEST,
    THANX_NOT_FOUND,
    HpgError,
    HpgErrorCode,
    ThanxError,
)
from rewards_sandbox.models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    MINUTE_MS,
    REVOCABLE_STATES,
    HpgMerchant,
    IssuanceJob,
    Reward,
    RewardConfiguration,
    ThanxCredential,
    ThanxMerchant,
)
from rewards_sandbox.seed import Seed, parse_seed

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def identifier_error(identifier: Mapping[str, str]) -> str | None:
    """Simulated outcome of issuing to one identifier: None on success, else the failure text.

    Emails without ``@`` and phones that are not E.164 fail with "Invalid identifier"; values
    starting with ``unknown`` fail with "User not found"; everything else succeeds.
    """
    kind, value = identifier["type"], identifier["value"]
    if (kind == "email" and "@" not in value) or (kind == "phone" and not _E164.fullmatch(value)):
        return "Invalid identifier"
    if value.lower().startswith("unknown"):
        return "User not found"
    return None


class SandboxState:
    """In-memory stores of the Thanx and HPGames sandboxes."""

    def __init__(
        self,
        seed: Seed | Mapping[str, Any],
        *,
        revoke_seconds: float = 5.0,
        issue_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        already_cancelled: str = "ok",
        read_all_external_id: bool = False,
        accept_unknown_ids: bool = False,
    ) -> None:
        self._seed = seed if isinstance(seed, Seed) else parse_seed(seed)
        self.revoke_seconds = revoke_seconds
        self.issue_seconds = issue_seconds
        #: "ok": cancelling a CANCELLED reward is a no-op; "refuse": a 409 and nothing changes.
        self.already_cancelled = check_already_cancelled(already_cancelled)
        #: Add the undocumented ``externalId`` to readAll items.
        self.read_all_external_id = read_all_external_id
        #: Cancels of unknown ids are no-ops instead of 404s (benchmark sink).
        self.accept_unknown_ids = accept_unknown_ids
        self._clock = clock
        self._lock = threading.RLock()
        self.reset()

    @property
    def seed(self) -> Seed:
        """The parsed seed this state resets to."""
        return self._seed

    def _now_ms(self) -> int:
        """Current clock time in epoch milliseconds."""
        return int(self._clock() * 1000)

    def reset(self) -> None:
        """Rebuild every store from the seed (also forgets idempotency keys)."""
        seed = self._seed
        with self._lock:
            now = self._clock()
            now_ms = int(now * 1000)
            self._credentials = {c.client_id: c for c in seed.credentials}
            self._thanx_merchants = {m.id: m for m in seed.thanx_merchants}
            self._campaigns = {(c.merchant_id, c.id): c for c in seed.campaigns}
            self._jobs: dict[str, dict[str, IssuanceJob]] = {m.id: {} for m in seed.thanx_merchants}
            for job_seed in seed.jobs:
                job = job_seed.build(now, self.revoke_seconds)
                self._jobs[job.merchant_id][job.id] = job
            self._idempotency: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
            self._hpg_merchants = {m.id: m for m in seed.hpg_merchants}
            self._configs: dict[str, dict[str, RewardConfiguration]] = {m.id: {} for m in seed.hpg_merchants}
            for config in seed.configurations:
                self._configs[config.merchant_id][config.id] = config
            self._rewards: dict[str, dict[str, Reward]] = {m.id: {} for m in seed.hpg_merchants}
            self._reward_ext: dict[str, dict[str, str]] = {m.id: {} for m in seed.hpg_merchants}
            for reward_seed in seed.rewards:
                self._store_reward(reward_seed.build(now_ms))
            for generated in seed.generated_rewards:
                for reward in generated.build(now_ms):
                    if reward.id in self._rewards[reward.merchant_id]:
                        raise ValueError(f"generated reward id {reward.id} is also seeded")
                    self._store_reward(reward)

    # -----------------------------------------------------------------------------------------
    # Thanx
    # -----------------------------------------------------------------------------------------
    def authenticate(self, client_id: str, access_token: str) -> ThanxCredential | None:
        """Return the credential matching both values (token compared in constant time)."""
        with self._lock:
            credential = self._credentials.get(client_id)
        if credential and hmac.compare_digest(credential.access_token.encode(), access_token.encode()):
            return credential
        return None

    def thanx_merchants(self, merchant_ids: Iterable[str]) -> list[ThanxMerchant]:
        """Return the known merchants among ``merchant_ids``, in that order."""
        with self._lock:
            return [self._thanx_merchants[m] for m in merchant_ids if m in self._thanx_merchants]

    def _job(self, merchant_id: str, job_id: str) -> IssuanceJob:
        """Look a job up within one merchant (404 otherwise)."""
        job = self._jobs.get(merchant_id, {}).get(job_id)
        if job is None:
            raise ThanxError(404, THANX_NOT_FOUND, f"Issuance job {job_id} not found")
        return job

    def get_job(self, merchant_id: str, job_id: str) -> dict[str, Any]:
        """Return the ``issuance_job`` object of one merchant's job as it reads now."""
        with self._lock:
            return self._job(merchant_id, job_id).view(self._clock())

    def get_campaign(self, merchant_ids: Iterable[str], campaign_id: str) -> dict[str, Any]:
        """``GET /partner/campaigns/:id``: a campaign of one of ``merchant_ids`` in the documented shape
        (``id``, ``merchant_id``, ``end_at``, ``variants``); 404 otherwise."""
        with self._lock:
            for merchant_id in merchant_ids:
                campaign = self._campaigns.get((merchant_id, campaign_id))
                if campaign is not None:
                    return {
                        "id": campaign.id,
                        "merchant_id": merchant_id,
                        "end_at": campaign.ends_at,
                        "variants": [{"id": variant} for variant in campaign.variant_ids],
                    }
        raise ThanxError(404, THANX_NOT_FOUND, f"Campaign {campaign_id} not found")

    def revoke_job(self, merchant_id: str, job_id: str) -> dict[str, Any]:
        """Start revoking a completed/failed job; 422 from any other state."""
        with self._lock:
            now = self._clock()
            job = self._job(merchant_id, job_id)
            state = job.view(now)["state"]
            if state not in REVOCABLE_STATES:
                message = f"Issuance job {job_id} is {state} and cannot be revoked"
                raise ThanxError(422, THANX_BAD_REQUEST, message)
            job.revoke_started_at = now
            job.revoke_seconds = self.revoke_seconds
            return job.view(now)

    def issue_rewards(
        self,
        *,
        client_id: str,
        merchant_id: str,
        campaign_id: str,
        variant_id: str,
        identifiers: Sequence[Mapping[str, str]],
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a pending issuance job and return the response body ``{"issuance_job": ...}``.

        With an idempotency key (scoped to the client id), the same key and body return the
        original response again; the same key with a different body is a 422.
        """
        request = [merchant_id, campaign_id, variant_id, [dict(i) for i in identifiers]]
        fingerprint = json.dumps(request, sort_keys=True)
        with self._lock:
            if idempotency_key is not None:
                cached = self._idempotency.get((client_id, idempotency_key))
                if cached is not None:
                    if cached[0] != fingerprint:
                        raise ThanxError(
                            422,
                            THANX_BAD_REQUEST,
                            f"Idempotency key {idempotency_key} was already used with a different request",
                        )
                    return json.loads(json.dumps(cached[1]))
            campaign = self._campaigns.get((merchant_id, campaign_id))
            if campaign is None:
                raise ThanxError(404, THANX_NOT_FOUND, f"Campaign {campaign_id} not found")
            if variant_id not in campaign.variant_ids:
                raise ThanxError(
                    400, THANX_BAD_REQUEST, f"Variant {variant_id} does not belong to campaign {campaign_id}"
                )
            now = self._clock()
            failures = []
            for index, identifier in enumerate(identifiers):
                error = identifier_error(identifier)
                if error is not None:
                    kind = identifier["type"]
                    failures.append({"identifier_index": index, "identifier_type": kind, "error": error})
            total = len(identifiers)
            job = IssuanceJob(
                id=f"job_{uuid.uuid4().hex[:16]}",
                merchant_id=merchant_id,
                campaign_id=campaign_id,
                variant_id=variant_id,
                state=FAILED if len(failures) == total else COMPLETED,
                total_count=total,
                processed_count=total,
                success_count=total - len(failures),
                failure_count=len(failures),
                created_at=now,
                started_at=None,
                completed_at=None,
                failures=failures,
                issue_seconds=self.issue_seconds,
            )
            self._jobs.setdefault(merchant_id, {})[job.id] = job
            response = {"issuance_job": job.view(now)}
            if idempotency_key is not None:
                self._idempotency[(client_id, idempotency_key)] = (
                    fingerprint,
                    json.loads(json.dumps(response)),
                )
            return response

    # -----------------------------------------------------------------------------------------
    # HPGames
    # -----------------------------------------------------------------------------------------
    def hpg_merchant(self, merchant_id: str) -> HpgMerchant | None:
        """Return the HPGames merchant with this id (case-insensitive UUID), if any."""
        with self._lock:
            return self._hpg_merchants.get(merchant_id.lower())

    def _store_reward(self, reward: Reward) -> None:
        """Insert a reward and index its externalId."""
        self._rewards[reward.merchant_id][reward.id] = reward
        self._reward_ext[reward.merchant_id][reward.external_id] = reward.id

    def _config(
        self, merchant_id: str, config_id: str | None, external_config_id: str | None
    ) -> RewardConfiguration | None:
        """Find a configuration of a merchant by id or externalId."""
        configs = self._configs.get(merchant_id, {})
        if config_id is not None:
            return configs.get(config_id)
        return next((c for c in configs.values() if c.external_id == external_config_id), None)

    def _find_reward(self, merchant_id: str, reward_id: str | None, external_id: str | None) -> Reward | None:
        """Find a merchant's reward by id or externalId, expiring it if due."""
        if reward_id is None:
            reward_id = self._reward_ext.get(merchant_id, {}).get(external_id or "")
        reward = self._rewards.get(merchant_id, {}).get(reward_id or "")
        if reward is not None:
            reward.expire_if_due(self._now_ms())
        return reward

    def assign_rewards(
        self,
        merchant_id: str,
        *,
        player_ids: Sequence[str],
        config_id: str | None = None,
        external_config_id: str | None = None,
        scheduled_start_date: int | None = None,
        external_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Assign one reward per player; returns ``[{"id", "playerId", "expirationDate"}]``.

        An ``external_id`` is used as is for one player and suffixed ``-<playerId>`` for several;
        without one, ``gen-<reward id>`` is generated.
        """
        with self._lock:
            config = self._config(merchant_id, config_id, external_config_id)
            if config is None:
                ref = config_id if config_id is not None else f"externalId {external_config_id}"
                raise HpgError(404, HpgErrorCode.NOT_FOUND, f"Reward configuration {ref} not found")
            if config.status != "ACTIVE":
                raise HpgError(
                    409, HpgErrorCode.CONFIGURATION_INACTIVE, f"Reward configuration {config.id} is INACTIVE"
                )
            if not config.assignable(self._now_ms()):
                raise HpgError(
                    409,
                    HpgErrorCode.CONFIGURATION_INACTIVE,
                    f"Reward configuration {config.id} is outside its startDate..endDate window",
                )
            reward_ids = [str(uuid.uuid4()) for _ in player_ids]
            if external_id is None:
                external_ids = [f"gen-{rid}" for rid in reward_ids]
            elif len(player_ids) == 1:
                external_ids = [external_id]
            else:
                external_ids = [f"{external_id}-{player}" for player in player_ids]
            taken = self._reward_ext[merchant_id]
            for ext in external_ids:
                if ext in taken:
                    message = f"externalId {ext} is already used"
                    raise HpgError(409, HpgErrorCode.DUPLICATE_EXTERNAL_ID, message)
            now = self._now_ms()
            start = scheduled_start_date if scheduled_start_date is not None else now
            created = []
            for rid, player, ext in zip(reward_ids, player_ids, external_ids, strict=True):
                reward = Reward(
                    id=rid,
                    merchant_id=merchant_id,
                    external_id=ext,
                    configuration_id=config.id,
                    player_id=player,
                    status=IN_PROGRESS,
                    assigned_free_bets=config.number_of_free_bets,
                    remaining_free_bets=config.number_of_free_bets,
                    assigned_date=now,
                    expiration_date=max(start, now) + config.duration_minutes * MINUTE_MS,
                )
                self._store_reward(reward)
                created.append({"id": rid, "playerId": player, "expirationDate": reward.expiration_date})
            return created

    def cancel_rewards(
        self, merchant_id: str, *, reward_ids: Sequence[str] = (), external_ids: Sequence[str] = ()
    ) -> int:
        """Cancel rewards by id or externalId, atomically; returns how many changed state.

        The first unknown item is a 404 and the first CLOSED/EXPIRED one a 409 (in list order);
        then nothing changes. Already CANCELLED rewards are left as they are, unless
        ``already_cancelled`` is "refuse": then the first of them is a 409 and nothing changes.
        With ``accept_unknown_ids`` an unknown item is skipped instead (nothing is stored for it).
        """
        refuse_cancelled = self.already_cancelled == "refuse"
        refs = [("id", r, r, None) for r in reward_ids] + [("externalId", e, None, e) for e in external_ids]
        with self._lock:
            targets = []
            for kind, value, rid, ext in refs:
                reward = self._find_reward(merchant_id, rid, ext)
                if reward is None and self.accept_unknown_ids:
                    continue
                if reward is None:
                    raise HpgError(404, HpgErrorCode.NOT_FOUND, f"Reward with {kind} {value} not found")
                if reward.status == CANCELLED and refuse_cancelled:
                    text = f"Reward with {kind} {value}: reward already cancelled"
                    raise HpgError(409, HpgErrorCode.ALREADY_CANCELLED, text)
                if reward.status not in (IN_PROGRESS, CANCELLED):
                    raise HpgError(
                        409,
                        HpgErrorCode.NOT_CANCELLABLE,
                        f"Reward with {kind} {value} is {reward.status} and cannot be cancelled",
                    )
                targets.append(reward)
            return self._cancel(targets)

    def _cancel(self, rewards: Iterable[Reward]) -> int:
        """Cancel the IN_PROGRESS rewards among ``rewards``; returns how many."""
        now = self._now_ms()
        changed = 0
        for reward in rewards:
            if reward.status == IN_PROGRESS:
                reward.status = CANCELLED
                reward.cancelled_date = now
                changed += 1
        return changed

    def cancel_by_query(
        self,
        merchant_id: str,
        *,
        player_ids: Sequence[str],
        config_id: str | None = None,
        external_config_id: str | None = None,
    ) -> int:
        """Cancel every IN_PROGRESS reward of these players (optionally of one configuration)."""
        with self._lock:
            matches = self._query(merchant_id, set(player_ids), config_id, external_config_id, IN_PROGRESS)
            return self._cancel(matches)

    def _query(
        self,
        merchant_id: str,
        player_ids: set[str] | None,
        config_id: str | None,
        external_config_id: str | None,
        status: str | None,
    ) -> list[Reward]:
        """Rewards of one merchant matching every given filter (an unknown configuration matches nothing)."""
        if config_id is not None or external_config_id is not None:
            config = self._config(merchant_id, config_id, external_config_id)
            if config is None:
                return []
            config_id = config.id
        now = self._now_ms()
        matches = []
        for reward in self._rewards.get(merchant_id, {}).values():
            reward.expire_if_due(now)
            if (
                (player_ids is None or reward.player_id in player_ids)
                and (config_id is None or reward.configuration_id == config_id)
                and (status is None or reward.status == status)
            ):
                matches.append(reward)
        return matches

    def read_rewards(
        self,
        merchant_id: str,
        *,
        player_id: str | None = None,
        config_id: str | None = None,
        external_config_id: str | None = None,
        status: str | None = None,
        external_id: bool = False,
    ) -> list[dict[str, Any]]:
        """Return the merchant's rewards matching the filters, as readAll items."""
        batches = self._read_batches(merchant_id, player_id, config_id, external_config_id, status)
        items = []
        for batch in batches:
            with self._lock:
                items += [reward.as_dict(external_id=external_id) for reward in batch]
        return items

    def _read_batches(
        self,
        merchant_id: str,
        player_id: str | None,
        config_id: str | None,
        external_config_id: str | None,
        status: str | None,
        batch_size: int = 2000,
    ) -> Iterator[list[Reward]]:
        """The matching rewards, in batches, each batch taken under the lock."""
        players = None if player_id is None else {player_id}
        with self._lock:
            matches = self._query(merchant_id, players, config_id, external_config_id, status)
        for start in range(0, len(matches), batch_size):
            yield matches[start : start + batch_size]

    def stream_read_all(
        self,
        merchant_id: str,
        *,
        player_id: str | None = None,
        config_id: str | None = None,
        external_config_id: str | None = None,
        status: str | None = None,
        external_id: bool = False,
    ) -> Iterator[bytes]:
        """The readAll JSON array as byte chunks: only one batch of items is serialized at a time.

        The set of matching rewards is fixed when the call is made; each item is serialized
        under the lock, so it is one consistent reward (a concurrent cancel may show or not).
        """
        batches = self._read_batches(merchant_id, player_id, config_id, external_config_id, status)
        yield b"["
        first = True
        for batch in batches:
            with self._lock:
                items = [json.dumps(r.as_dict(external_id=external_id), separators=(",", ":")) for r in batch]
            text = ",".join(items)
            yield (text if first else "," + text).encode()
            first = False
        yield b"]"

    def read_configurations(
        self,
        merchant_id: str,
        *,
        name: str | None = None,
        status: str | None = None,
        reward_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """The merchant's reward configurations matching every filter (``name``: case-insensitive part)."""
        with self._lock:
            configs = list(self._configs.get(merchant_id, {}).values())
        return [
            config.as_dict()
            for config in configs
            if (name is None or name.lower() in config.name.lower())
            and (status is None or config.status == status)
            and (reward_type is None or reward_type == "FREE_BET")
        ]

    def read_configuration(
        self, merchant_id: str, *, config_id: str | None = None, external_id: str | None = None
    ) -> dict[str, Any]:
        """One reward configuration by id or externalId (404 otherwise)."""
        with self._lock:
            config = self._config(merchant_id, config_id, external_id)
        if config is None:
            ref = config_id if config_id is not None else f"externalId {external_id}"
            raise HpgError(404, HpgErrorCode.NOT_FOUND, f"Reward configuration {ref} not found")
        return config.as_dict()

    # -----------------------------------------------------------------------------------------
    # Inspection
    # -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Return the whole state (no credentials or secrets), keyed by merchant then id."""
        with self._lock:
            now = self._clock()
            now_ms = int(now * 1000)
            thanx = {}
            for mid, merchant in self._thanx_merchants.items():
                jobs = {jid: {**job.view(now), "merchant_id": mid} for jid, job in self._jobs[mid].items()}
                campaigns = {
                    c.id: {
                        "variant_ids": list(c.variant_ids),
                        "ends_at": c.ends_at,
                        "issuance_job_ids": sorted(j for j, job in self._jobs[mid].items() if job.campaign_id == c.id),
                    }
                    for (cmid, _), c in self._campaigns.items()
                    if cmid == mid
                }
                thanx[mid] = {**merchant.as_dict(), "campaigns": campaigns, "issuance_jobs": jobs}
            hpgames = {}
            for mid, merchant in self._hpg_merchants.items():
                rewards = {}
                for rid, reward in self._rewards[mid].items():
                    reward.expire_if_due(now_ms)
                    rewards[rid] = {**reward.as_dict(external_id=True), "cancelledDate": reward.cancelled_date}
                hpgames[mid] = {
                    "id": mid,
                    "name": merchant.name,
                    "reward_configurations": {cid: c.as_dict() for cid, c in self._configs[mid].items()},
                    "rewards": rewards,
                }
            return {"thanx": {"merchants": thanx}, "hpgames": {"merchants": hpgames}}
