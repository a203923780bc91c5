"""Scheduled campaign teardown: find what has ended, plan it, guard the blast radius, tear down exactly the plan.

Discovery:
- :class:`HPGamesEndedConfigurationsOperator`: reward configurations whose ``endDate`` lies in a window.
- :class:`ThanxEndedCampaignJobsOperator`: the recorded Thanx issuance jobs (:mod:`~.utils.job_record`) of
  campaigns whose ``end_at`` lies in the same window (``GET /partner/campaigns/:id`` once per campaign), and
  those recorded in the window (``recorded_at``) for campaigns that ended before it (see
  :func:`ended_campaign_jobs`).
- :class:`HPGamesCancelRewardsOfConfigurationOperator`: snapshot a configuration's live rewards to a file, then
  cancel them through :class:`~.operators.hpgames.HPGamesBulkCancelRewardsOperator`.

The nightly pipeline (``dags/rewards_nightly_teardown.py``):
:class:`RewardsTeardownPlanOperator` (the dry run: discovery, snapshot files, ``plan.json``) →
:class:`RewardsTeardownApprovalOperator` (Airflow's human-in-the-loop approval above a threshold) →
:class:`HPGamesCancelPlannedRewardsOperator` and :class:`ThanxPlannedJobsOperator` (they read the plan's
files, never a fresh discovery) → :class:`RewardsTeardownRecordOperator` (``report.json``, the watermark and
an Asset event).

The window: ``[ended_after - grace, ended_before - grace)``, with ``ended_before`` the run's data interval
end (or logical date) and ``ended_after`` the earliest of the previous successful run's data interval end
(or start date) and the watermark of the last real teardown (ignored when it is not before ``ended_before``:
it was written by a later run); with neither, ``ended_before - lookback``.
A dry run or a rejected run never moves the watermark forward (with none yet, it writes its window's start),
so what it did not tear down is planned again although the run itself succeeded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import AssetAlias, Context, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import RewardsError, RewardsInputError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook, configuration_payload
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from airflow_provider_rewards.operators.hpgames import DEFAULT_BATCH_SIZE, HPGamesBulkCancelRewardsOperator
from airflow_provider_rewards.utils.job_record import (
    JobRecordEntry,
    display_location,
    make_parent_dirs,
    read_job_record,
    record_path,
)
from airflow_provider_rewards.utils.record import RESULTS_ASSET_ALIAS
from airflow_provider_rewards.utils.validation import at_most_one, parse_bool, require_id, require_int

LIVE = "IN_PROGRESS"
PLAN_FILE = "plan.json"
REPORT_FILE = "report.json"
WATERMARK_FILE = "watermark.json"
HPGAMES_TARGETS_FILE = "hpgames_reward_ids.jsonl"
THANX_TARGETS_FILE = "thanx_issuance_jobs.jsonl"
SNAPSHOT_FILE = "targets.jsonl"
HPGAMES_RESULTS_DIR = "hpgames_results"
DEFAULT_LOOKBACK = timedelta(days=7)
DEFAULT_SAMPLE_SIZE = 5
#: Configurations and campaigns listed in a plan's XCom (all of them are in plan.json).
XCOM_LIST_LIMIT = 20
#: The XCom key under which the approval task records a rejection (for the record task).
APPROVAL_XCOM_KEY = "approval"
NULL_TEXT = frozenset({"", "None", "none", "null"})


# ---------------------------------------------------------------------------------------------
# Rendered-argument parsing (each error names the argument)
# ---------------------------------------------------------------------------------------------
def _is_null(value: object) -> bool:
    """``None``, or text a rendered template gives for none (``""``, ``None``, ``null``; blanks around ignored)."""
    return value is None or (isinstance(value, str) and value.strip() in NULL_TEXT)


def _from_digits(value: object) -> object:
    """Digits as text (what a rendered template gives) as an int; anything else unchanged."""
    return int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value


def parse_instant(value: object, field: str) -> datetime | None:
    """A timezone-aware datetime from a datetime or ISO 8601 text (``Z`` allowed); ``None``/empty for none."""
    if _is_null(value):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise RewardsInputError(
                f"{field} must be an ISO 8601 date-time such as 2025-09-01T00:00:00Z, got {value!r:.60}"
            ) from None
    if not isinstance(value, datetime):
        raise RewardsInputError(f"{field} must be a date-time (ISO 8601 text or datetime), got {type(value).__name__}")
    if value.tzinfo is None:
        raise RewardsInputError(f"{field} must carry a timezone (e.g. 2025-09-01T00:00:00Z), got {value.isoformat()}")
    # A plain datetime in UTC: pendulum's DateTime (Airflow's context) loses the zone in arithmetic.
    return datetime.fromtimestamp(value.timestamp(), UTC)


def parse_duration(value: object, field: str) -> timedelta:
    """A duration of zero or more: a timedelta, or seconds as a number or numeric text; ``None`` is zero."""
    if _is_null(value):
        return timedelta(0)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RewardsInputError(f"{field} must be a number of seconds or a timedelta, got {value!r:.60}") from None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise RewardsInputError(f"{field} must be a number of seconds or a timedelta, got {type(value).__name__}")
    duration = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if duration < timedelta(0):
        raise RewardsInputError(f"{field} must not be negative, got {duration}")
    return duration


def parse_threshold(value: object, field: str = "approval_threshold") -> int | None:
    """A whole number of targets of zero or more, or ``None`` (no limit)."""
    return None if _is_null(value) else require_int(_from_digits(value), field, minimum=0, maximum=10**12)


def check_batch_size(value: object) -> int:
    """Ids per ``bulkCancel`` request, 1 to 10,000 (a rendered template may give digits as text); ``None``: 500."""
    if _is_null(value):
        return DEFAULT_BATCH_SIZE
    return require_int(_from_digits(value), "batch_size", minimum=1, maximum=10_000)


def iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _safe_segment(text: str) -> str:
    """A run id as one path segment on any object store."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _read_json(path: ObjectStoragePath) -> Any:
    with path.open("rt", encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: ObjectStoragePath, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_text(path: ObjectStoragePath, text: str) -> None:
    make_parent_dirs(path)
    path.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Window:
    """What "ended" means for one run: ``end`` in ``[after - grace, before - grace)``."""

    after: datetime | None
    before: datetime
    grace: timedelta
    after_source: str

    def contains(self, end: datetime) -> bool:
        """Whether something that ended at ``end`` counts as ended in this window (the grace period applied)."""
        return self._within(end, self.grace)

    def holds_record(self, recorded_at: datetime) -> bool:
        """Whether a line written at ``recorded_at`` reached the record in this window: ``[after, before)``,
        without the grace period (the grace delays when a campaign counts as ended, not when a line was written)."""
        return self._within(recorded_at, timedelta(0))

    def _within(self, instant: datetime, shift: timedelta) -> bool:
        low = None if self.after is None else self.after - shift
        return instant < self.before - shift and (low is None or instant >= low)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ended_after": iso(self.after),
            "ended_before": iso(self.before),
            "grace_period_s": self.grace.total_seconds(),
            "ended_after_from": self.after_source,
        }

    def describe(self) -> str:
        grace = f" minus a grace period of {self.grace}" if self.grace else ""
        return f"between {iso(self.after) or 'the beginning'} and {iso(self.before)}{grace} ({self.after_source})"


def _context_instant(context: Context, *keys: str) -> datetime | None:
    """The first of ``keys`` that the context holds as a date-time (``prev_*`` values are lazy and may be None)."""
    for key in keys:
        value = context.get(key)
        if isinstance(value, datetime):  # a lazy proxy of None is not one
            return parse_instant(value, key)
    return None


def resolve_window(
    context: Context,
    *,
    ended_before: object = None,
    ended_after: object = None,
    grace_period: object = None,
    lookback: object = DEFAULT_LOOKBACK,
    watermark: datetime | None = None,
) -> Window:
    """The run's window: explicit bounds win; then the context (see the module docstring)."""
    grace = parse_duration(grace_period, "grace_period")
    before = parse_instant(ended_before, "ended_before") or _context_instant(
        context, "data_interval_end", "logical_date"
    )
    if before is None:
        raise RewardsInputError("ended_before is required when the run has no logical date or data interval")
    after = parse_instant(ended_after, "ended_after")
    source = "ended_after given"
    if after is None:
        previous = _context_instant(context, "prev_data_interval_end_success", "prev_start_date_success")
        candidates = [
            (instant, name)
            for instant, name in ((previous, "last successful run"), (watermark, "watermark of the last teardown"))
            if instant is not None and instant < before  # a later run's watermark says nothing about this window
        ]
        if candidates:
            after, source = min(candidates, key=lambda pair: pair[0])
        else:
            span = DEFAULT_LOOKBACK if _is_null(lookback) else parse_duration(lookback, "lookback")
            after, source = before - span, f"no earlier run: lookback of {span}"
    if after >= before:
        raise RewardsInputError(
            f"ended_after ({iso(after)}) must be before ended_before ({iso(before)}); pass an earlier ended_after"
        )
    return Window(after, before, grace, source)


# ---------------------------------------------------------------------------------------------
# HPGames: ended configurations, live-reward snapshots, cancelling a snapshot
# ---------------------------------------------------------------------------------------------
def ended_configurations(hook: HPGamesHook, window: Window, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{"id", "externalId", "name", "endDate"}`` of every configuration ended in ``window``."""
    configs = hook.ended_reward_configurations(
        epoch_ms(window.before),
        window.grace,
        after_ms=None if window.after is None else epoch_ms(window.after),
        **filters,
    )
    return [{key: config.get(key) for key in ("id", "externalId", "name", "endDate")} for config in configs]


def snapshot_live_rewards(
    hook: HPGamesHook, destination: ObjectStoragePath, configurations: Iterable[Mapping[str, str]]
) -> int:
    """Stream every live reward of each configuration filter into ``destination`` (JSON Lines: ``id``,
    ``rewardConfigurationId``, ``playerId``); return how many. Written under a temporary name, then renamed,
    so a reader never sees half a snapshot. Each item's status and configuration are checked again: a vendor
    that ignores a filter cannot widen the teardown."""
    make_parent_dirs(destination)
    partial = destination.parent / f".{destination.name}.partial"
    count = 0
    with partial.open("wt", encoding="utf-8") as out:
        for config_filter in configurations:
            wanted = next(iter(config_filter.values()))
            key = "rewardConfigurationId" if "reward_configuration_id" in config_filter else None
            for reward in hook.iter_rewards(status=LIVE, **config_filter):
                if reward.get("status", LIVE) != LIVE:
                    continue
                if key is not None and str(reward.get(key, "")).lower() != wanted:
                    continue
                line = {
                    "id": reward.get("id"),
                    "rewardConfigurationId": reward.get("rewardConfigurationId"),
                    "playerId": reward.get("playerId"),
                }
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                count += 1
    partial.rename(destination)
    return count


def fingerprint(path: ObjectStoragePath) -> str:
    """sha256 hex of the file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_fingerprint(path: ObjectStoragePath, expected: object, field: str) -> None:
    """Fail (no retry) when the plan's file is not the one the plan wrote (and a person may have approved)."""
    if expected in (None, *NULL_TEXT):
        return
    if fingerprint(path) != expected:
        raise AirflowFailException(
            f"{display_location(path)} changed since the plan wrote it ({field} does not match): nothing was sent; "
            "run the plan again"
        )


def count_lines(path: ObjectStoragePath) -> int:
    with path.open("rt", encoding="utf-8") as lines:
        return sum(1 for line in lines if line.strip())


def with_results_alias(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the results record's AssetAlias added to ``outlets``, as the bulk cancel operator declares
    it: the composed bulk cancel emits its results file's Asset event through this task."""
    outlets = kwargs.pop("outlets", None)
    outlets = [] if outlets is None else list(outlets) if isinstance(outlets, list | tuple) else [outlets]
    return {**kwargs, "outlets": [*outlets, AssetAlias(RESULTS_ASSET_ALIAS)]}


def cancel_snapshot(
    context: Context,
    *,
    task_id: str,
    snapshot: ObjectStoragePath,
    results_path: ObjectStoragePath,
    batch_size: int,
    resume: bool,
    dry_run: bool,
    hpgames_conn_id: str,
) -> dict[str, Any]:
    """Cancel the reward ids of ``snapshot`` through :class:`HPGamesBulkCancelRewardsOperator` (its engine,
    record and XCom summary): ``reward_ids_path`` = the snapshot (``ids_column="id"``) and ``results_path``.
    An empty snapshot cancels nothing. Nothing beyond the snapshot's ids can be cancelled."""
    if count_lines(snapshot) == 0:
        return {"requested": 0, "cancelled": 0, "dry_run": dry_run, "results_path": None, "nothing_to_do": True}
    common: dict[str, Any] = {
        "task_id": task_id,
        "batch_size": batch_size,
        "dry_run": dry_run,
        "hpgames_conn_id": hpgames_conn_id,
        "fail_on_rejected": True,
    }
    inner = HPGamesBulkCancelRewardsOperator(
        reward_ids_path=str(snapshot), ids_column="id", results_path=str(results_path), resume=resume, **common
    )
    try:
        return inner.cancel(context)
    finally:
        inner.hook.close()


class _EndedWindowOperator(RewardsBaseOperator):
    """What the discovery operators share: the window's arguments, checked once, and the run's window.

    :param ended_before: the window's cut-off (templated); see :func:`resolve_window`.
    :param ended_after: the window's lower bound (templated).
    :param grace_period: how long after its end a configuration or campaign counts as ended (templated).
    :param lookback: the lower bound's distance when there is no earlier successful run (templated).
    """

    template_fields: Sequence[str] = ("ended_before", "ended_after", "grace_period", "lookback")

    def __init__(
        self,
        *,
        ended_before: object = None,
        ended_after: object = None,
        grace_period: object = None,
        lookback: object = DEFAULT_LOOKBACK,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ended_before, self.ended_after, self.grace_period = ended_before, ended_after, grace_period
        self.lookback = lookback
        if not isinstance(lookback, str):
            parse_duration(lookback, "lookback")

    def window(self, context: Context, watermark: datetime | None = None) -> Window:
        """The run's window from the rendered arguments, the context and ``watermark`` (see :func:`resolve_window`)."""
        return resolve_window(
            context,
            ended_before=self.ended_before,
            ended_after=self.ended_after,
            grace_period=self.grace_period,
            lookback=self.lookback,
            watermark=watermark,
        )


class _SnapshotCancelOperator(RewardsBaseOperator):
    """What the two snapshot cancels share: the bulk cancel's arguments, checked once, and the cancel itself
    (:func:`cancel_snapshot`). Each heir documents the arguments where users read them."""

    def __init__(
        self,
        *,
        results_path: object = None,
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        resume: bool = True,
        dry_run: bool | str = False,
        hpgames_conn_id: str = HPGamesHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_results_alias(kwargs))
        self.results_path = results_path
        self.batch_size = batch_size if isinstance(batch_size, str) else check_batch_size(batch_size)
        self.resume, self.dry_run = resume, dry_run
        self.hpgames_conn_id = require_id(hpgames_conn_id, "hpgames_conn_id")

    def cancel(
        self, context: Context, snapshot: ObjectStoragePath, results_path: ObjectStoragePath, dry_run: bool
    ) -> dict[str, Any]:
        """Cancel the reward ids of ``snapshot`` with this task's batch size, resume and connection, recording
        into ``results_path``; the bulk cancel's summary (see :func:`cancel_snapshot`)."""
        return cancel_snapshot(
            context,
            task_id=self.task_id,
            snapshot=snapshot,
            results_path=results_path,
            batch_size=check_batch_size(self.batch_size),
            resume=self.resume,
            dry_run=dry_run,
            hpgames_conn_id=self.hpgames_conn_id,
        )


class HPGamesEndedConfigurationsOperator(_EndedWindowOperator):
    """List the HPGames reward configurations that ended in the run's window (``reward-configurations/readAll``).

    :param ended_before: the cut-off (templated; ISO 8601 or datetime); default the run's data interval end,
        else its logical date.
    :param ended_after: the lower bound (templated); default the previous successful run's data interval end
        (or start date), else ``ended_before - lookback``.
    :param grace_period: a configuration counts as ended this long after its ``endDate`` (templated;
        timedelta or seconds; default none).
    :param lookback: the lower bound's distance when there is no earlier successful run (templated; timedelta
        or seconds; default 7 days).
    :param name: ``readAll``'s partial name filter (templated, default none).
    :param status: ``ACTIVE`` or ``INACTIVE`` (templated, default none).
    :param reward_type: ``FREE_BET`` (templated, default none).
    :param hpgames_conn_id: connection of type ``hpgames``.

    Returns (small XCom) ``[{"id", "externalId", "name", "endDate"}]``, sorted by ``endDate``. Read only.
    """

    ui_color = "#d9e8f5"

    template_fields: Sequence[str] = (*_EndedWindowOperator.template_fields, "name", "status", "reward_type")

    def __init__(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        reward_type: str | None = None,
        hpgames_conn_id: str = HPGamesHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name, self.status, self.reward_type = name, status, reward_type
        self.hpgames_conn_id = require_id(hpgames_conn_id, "hpgames_conn_id")

    def filters(self) -> dict[str, Any]:
        return {
            key: (None if isinstance(value, str) and value in NULL_TEXT else value)
            for key, value in (("name", self.name), ("status", self.status), ("reward_type", self.reward_type))
        }

    def execute(self, context: Context) -> list[dict[str, Any]]:
        window = self.window(context)
        with HPGamesHook(self.hpgames_conn_id) as hook:
            found = ended_configurations(hook, window, self.filters())
        self.log.info("%d reward configuration(s) ended %s", len(found), window.describe())
        for config in found:
            self.log.info("Ended: %s %r (endDate %s)", config["id"], config["name"], config["endDate"])
        return found


class HPGamesCancelRewardsOfConfigurationOperator(_SnapshotCancelOperator):
    """Cancel every live reward of one HPGames configuration: snapshot, then bulk-cancel the snapshot.

    ``bulkCancelByQuery`` needs player ids, so "every live reward of configuration X" is two steps:

    1. Snapshot: ``rewards/readAll`` (``status=IN_PROGRESS`` and the configuration) streamed into
       ``<results_path>/targets.jsonl`` (one JSON line per reward: ``id``, ``rewardConfigurationId``,
       ``playerId``). With ``resume=True`` an existing snapshot is reused, so a retry cancels what was
       planned, never a new read.
    2. Cancel: :class:`~.hpgames.HPGamesBulkCancelRewardsOperator` with ``reward_ids_path`` = the snapshot and
       the same ``results_path``: the same batches, refusal reconciliation, per-reward record
       (``results.jsonl``, ``summary.json``, ``manifest.json``) and XCom summary.

    Incremental JSON: the answer of ``readAll`` (no pagination documented) is read by
    :meth:`HPGamesHook.iter_rewards`, i.e. the provider's own ``utils/json_stream.py``
    (:func:`~airflow_provider_rewards.utils.json_stream.iter_array_objects`), not ``ijson``: it needs no new
    dependency on every worker (ijson's fast backend is a C extension over yajl), decodes each item with the
    standard library's C decoder, accepts the documented nested ``[[{...}]]`` shape and holds one item plus
    one 64 KiB chunk (measured: a 330 MB body read with a 0.33 MB peak).

    :param reward_configuration_id: the configuration (UUID) (templated); or
    :param external_reward_configuration_id: ... its external id (templated). Exactly one.
    :param results_path: directory of the snapshot and the record (templated; URI or ObjectStoragePath). Required.
    :param resume: reuse the snapshot and resume the record's checkpoint (default ``True``).
    :param batch_size: ids per ``bulkCancel`` (default 500).
    :param dry_run: snapshot and list what would go; cancel nothing (templated).
    :param hpgames_conn_id: connection of type ``hpgames``.

    Returns the bulk cancel's summary plus ``"snapshot"`` (its location) and ``"live_rewards"``.
    """

    ui_color = "#a7b8ec"

    template_fields: Sequence[str] = (
        "reward_configuration_id",
        "external_reward_configuration_id",
        "results_path",
        "batch_size",
        "dry_run",
    )

    def __init__(
        self,
        *,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        results_path: object,
        **kwargs: Any,
    ) -> None:
        super().__init__(results_path=results_path, **kwargs)
        self.reward_configuration_id = reward_configuration_id
        self.external_reward_configuration_id = external_reward_configuration_id
        if results_path is None:
            raise RewardsInputError("results_path is required: the directory of the snapshot and the record")
        at_most_one(
            reward_configuration_id=reward_configuration_id,
            external_reward_configuration_id=external_reward_configuration_id,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = parse_bool(self.dry_run, "dry_run")
        config_filter = configuration_payload(self.reward_configuration_id, self.external_reward_configuration_id)
        if not config_filter:
            raise RewardsInputError(
                "Pass exactly one of reward_configuration_id or external_reward_configuration_id; neither was given"
            )
        field = (
            "reward_configuration_id"
            if "rewardConfigurationId" in config_filter
            else "external_reward_configuration_id"
        )
        value = next(iter(config_filter.values()))
        root = record_path(self.results_path, "results_path")
        snapshot = root / SNAPSHOT_FILE
        with HPGamesHook(self.hpgames_conn_id) as hook:
            if self.resume and snapshot.exists():
                live = count_lines(snapshot)
                self.log.info(
                    "Reusing the snapshot %s (%d live rewards): resume=True", display_location(snapshot), live
                )
            else:
                live = snapshot_live_rewards(hook, snapshot, [{field: value}])
                self.log.info(
                    "Snapshot of %d live reward(s) of %s %s: %s", live, field, value, display_location(snapshot)
                )
        summary = self.cancel(context, snapshot, root, dry_run)
        return {**summary, "snapshot": display_location(snapshot), "live_rewards": live}


# ---------------------------------------------------------------------------------------------
# Thanx: recorded jobs of ended campaigns
# ---------------------------------------------------------------------------------------------
def parse_end_at(campaign: Mapping[str, Any]) -> datetime | None:
    """A campaign's end (documented ``end_at``; ISO 8601), or ``None`` when it has none."""
    value = campaign.get("end_at")
    if value in (None, ""):
        return None
    try:
        return parse_instant(value, f"campaign {campaign.get('id')} end_at")
    except RewardsInputError as error:
        raise RewardsError(f"Thanx returned an unreadable end_at for campaign {campaign.get('id')}: {error}") from None


def ended_campaign_jobs(
    hook: ThanxHook, entries: Sequence[JobRecordEntry], window: Window, merchant_id: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(jobs, campaigns)``: the recorded jobs to revoke in ``window``, and every campaign read.

    A job is selected when its campaign ended in ``window`` (:meth:`Window.contains`), or when its campaign
    ended before the window's end and the job was recorded in the window (its ``recorded_at``, see
    :meth:`Window.holds_record`): a job recorded after its campaign's own window ran is taken by the next run, whose
    window starts at the last successful run. A job without ``recorded_at`` is selected by the first rule only.
    Selecting a job twice (two runs, or a record read before and after a retry) is harmless: revoking a job
    already revoked succeeds (``ThanxRevokeIssuanceJobOperator``'s default ``if_already_revoked="succeed"``).

    A job recorded without its campaign is read first (``GET /partner/issuance_jobs/:id``); each distinct
    campaign is read once (``GET /partner/campaigns/:id``, the only campaign read that covers ended ones), so
    the late rule costs no request. Each campaign: ``{"id", "end_at", "ended"`` (in the window),
    ``"late_jobs"`` (its jobs selected by ``recorded_at``)``}``."""
    campaign_of: dict[str, str] = {}
    for entry in entries:
        if entry.campaign_id is not None:
            campaign_of[entry.issuance_job_id] = entry.campaign_id
        else:
            job = hook.get_issuance_job(entry.issuance_job_id, entry.merchant_id or merchant_id)
            campaign_of[entry.issuance_job_id] = require_id(
                job.get("campaign_id"), f"job {entry.issuance_job_id} campaign_id"
            )
    campaigns: dict[str, dict[str, Any]] = {}
    ended_by_now: set[str] = set()  # campaigns that count as ended at the window's end, in it or before it
    for campaign_id in dict.fromkeys(campaign_of.values()):
        end = parse_end_at(hook.get_campaign(campaign_id))
        campaigns[campaign_id] = {
            "id": campaign_id,
            "end_at": iso(end),
            "ended": end is not None and window.contains(end),
            "late_jobs": 0,
        }
        if end is not None and end < window.before - window.grace:
            ended_by_now.add(campaign_id)
    jobs: list[dict[str, Any]] = []
    for entry in entries:
        campaign = campaigns[campaign_of[entry.issuance_job_id]]
        late = (
            not campaign["ended"]
            and campaign["id"] in ended_by_now
            and entry.recorded_at is not None
            and window.holds_record(entry.recorded_at)
        )
        if campaign["ended"] or late:
            campaign["late_jobs"] += late
            jobs.append(
                {
                    "issuance_job_id": entry.issuance_job_id,
                    "campaign_id": campaign["id"],
                    "merchant_id": entry.merchant_id or merchant_id,
                }
            )
    return jobs, list(campaigns.values())


def describe_selection(
    entries: Sequence[JobRecordEntry], jobs: Sequence[Mapping[str, Any]], campaigns: Sequence[Mapping[str, Any]]
) -> str:
    """The log line of a selection (:func:`ended_campaign_jobs`): how many jobs each rule took, and how many
    jobs carry no ``recorded_at`` (those are taken only when their campaign ends in a window)."""
    late = sum(c["late_jobs"] for c in campaigns)
    undated = sum(entry.recorded_at is None for entry in entries)
    return (
        f"{len(jobs)} of {len(entries)} recorded job(s) selected: {len(jobs) - late} of the "
        f"{sum(c['ended'] for c in campaigns)} campaign(s) that ended in the window, {late} recorded in the window "
        f"(recorded_at) for campaigns that ended before it; {undated} job(s) have no recorded_at and are selected "
        "only when their campaign ends in a run's window"
    )


class ThanxEndedCampaignJobsOperator(_EndedWindowOperator):
    """The recorded Thanx issuance jobs whose campaign ended in the run's window, and those recorded in the
    window (``recorded_at``) for campaigns that ended before it (read only; see :func:`ended_campaign_jobs`).
    Jobs recorded without ``recorded_at`` are selected only when their campaign ends in the window.

    :param job_record: the record the issuing process writes (templated): a URI, ObjectStoragePath or Asset;
        one job id per line or JSON Lines with ``issuance_job_id``, ``campaign_id`` and ``recorded_at`` (see
        :mod:`~airflow_provider_rewards.utils.job_record`).
    :param ended_before: the window's cut-off, as :class:`HPGamesEndedConfigurationsOperator` takes it (templated).
    :param ended_after: the window's lower bound, likewise (templated).
    :param grace_period: how long after a campaign's ``end_at`` it counts as ended, likewise (templated).
    :param lookback: the lower bound's distance when there is no earlier successful run, likewise (templated).
    :param merchant_id: the jobs' merchant (templated); default the connection's.
    :param thanx_conn_id: connection of type ``thanx``.

    Returns ``[{"issuance_job_id", "campaign_id", "merchant_id"}]`` (jobs are few: one per issue request).
    """

    ui_color = "#f7e6b5"

    template_fields: Sequence[str] = ("job_record", *_EndedWindowOperator.template_fields, "merchant_id")

    def __init__(
        self,
        *,
        job_record: object,
        merchant_id: str | None = None,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if job_record is None:
            raise RewardsInputError("job_record is required: the file or Asset where issued job ids are recorded")
        self.job_record = job_record
        self.merchant_id = merchant_id
        self.thanx_conn_id = require_id(thanx_conn_id, "thanx_conn_id")

    def execute(self, context: Context) -> list[dict[str, Any]]:
        window = self.window(context)
        entries = read_job_record(self.job_record)
        merchant = None if self.merchant_id in (None, *NULL_TEXT) else self.merchant_id
        with ThanxHook(self.thanx_conn_id) as hook:
            jobs, campaigns = ended_campaign_jobs(hook, entries, window, merchant)
        self.log.info("Window %s: %s", window.describe(), describe_selection(entries, jobs, campaigns))
        return jobs


# ---------------------------------------------------------------------------------------------
# The nightly pipeline: plan, approval, teardown from the plan, record
# ---------------------------------------------------------------------------------------------
class RewardsTeardownPlanOperator(HPGamesEndedConfigurationsOperator):
    """The plan (a dry run): what has ended, and every target that would go, written to files.

    Finds the configurations ended in the window (see :class:`HPGamesEndedConfigurationsOperator`), snapshots
    their live rewards, and (with ``job_record``) selects the recorded Thanx jobs of campaigns ended in the same
    window and those recorded in it for campaigns ended before it (:func:`ended_campaign_jobs`; jobs without
    ``recorded_at`` only by the first rule), the very list the teardown then revokes. Writes
    ``<record_root>/<dag_id>/<run_id>/``: ``hpgames_reward_ids.jsonl``, ``thanx_issuance_jobs.jsonl`` and
    ``plan.json`` (window, configurations, campaigns, counts, files). Sends nothing that changes state.

    :param record_root: where plans and records go (templated; URI or ObjectStoragePath). Required.
    :param job_record: the Thanx job record (templated; none: no Thanx part).
    :param thanx_merchant_id: the jobs' merchant (templated; default the connection's).
    :param dry_run: recorded in the plan (templated); the downstream tasks read it.
    :param sample_size: ids per target type shown in the XCom and the approval screen (default 5).
    :param thanx_conn_id: connection of type ``thanx``.
    :param ended_before: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param ended_after: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param grace_period: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param lookback: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param name: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param status: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param reward_type: as :class:`HPGamesEndedConfigurationsOperator` (templated).
    :param hpgames_conn_id: connection of type ``hpgames``.

    Returns (small XCom) ``{"plan_path", "record_dir", "window", "counts": {"hpgames": {"reward_ids": n},
    "thanx": {"issuance_job_ids": m}}, "total", "sample", "configurations", "campaigns", "files", "dry_run",
    "nothing_to_do"}``; never a full id list.
    """

    ui_color = "#e4d8f2"

    template_fields: Sequence[str] = (
        *HPGamesEndedConfigurationsOperator.template_fields,
        "record_root",
        "job_record",
        "thanx_merchant_id",
        "dry_run",
    )

    def __init__(
        self,
        *,
        record_root: object,
        job_record: object = None,
        thanx_merchant_id: str | None = None,
        dry_run: bool | str = False,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.record_root = record_root
        self.job_record = job_record
        self.thanx_merchant_id = thanx_merchant_id
        self.dry_run = dry_run
        self.sample_size = require_int(sample_size, "sample_size", minimum=0, maximum=100)
        self.thanx_conn_id = require_id(thanx_conn_id, "thanx_conn_id")

    def execute(self, context: Context) -> dict[str, Any]:  # type: ignore[override]
        dry_run = parse_bool(self.dry_run, "dry_run")
        if self.record_root in (None, *NULL_TEXT):
            raise RewardsInputError(
                "record_root is required: the directory (URI) where plans and records are written, "
                "e.g. file:///data/rewards-teardown or s3://bucket/rewards-teardown"
            )
        dag_root = record_path(self.record_root, "record_root") / _safe_segment(context["dag"].dag_id)
        watermark_path = dag_root / WATERMARK_FILE
        watermark = (
            parse_instant(_read_json(watermark_path).get("ended_before"), "watermark")
            if watermark_path.exists()
            else None
        )
        window = self.window(context, watermark)
        entries = None if self.job_record in (None, *NULL_TEXT) else read_job_record(self.job_record)  # checked first
        plan_dir = dag_root / _safe_segment(context["run_id"])
        hpgames_file, thanx_file = plan_dir / HPGAMES_TARGETS_FILE, plan_dir / THANX_TARGETS_FILE
        self.log.info("Planning the teardown of what ended %s", window.describe())
        with HPGamesHook(self.hpgames_conn_id) as hook:
            configurations = ended_configurations(hook, window, self.filters())
            rewards = snapshot_live_rewards(
                hook, hpgames_file, [{"reward_configuration_id": c["id"]} for c in configurations]
            )
        jobs: list[dict[str, Any]] = []
        campaigns: list[dict[str, Any]] = []
        if entries is not None:
            merchant = None if self.thanx_merchant_id in (None, *NULL_TEXT) else self.thanx_merchant_id
            with ThanxHook(self.thanx_conn_id) as thanx:
                jobs, campaigns = ended_campaign_jobs(thanx, entries, window, merchant)
            self.log.info("Thanx: %s", describe_selection(entries, jobs, campaigns))
        else:
            self.log.info("No job_record given: no Thanx jobs are planned")
        _write_text(thanx_file, "".join(json.dumps(job, separators=(",", ":")) + "\n" for job in jobs))
        with hpgames_file.open("rt", encoding="utf-8") as lines:
            reward_sample = [json.loads(line)["id"] for _, line in zip(range(self.sample_size), lines, strict=False)]
        counts = {"hpgames": {"reward_ids": rewards}, "thanx": {"issuance_job_ids": len(jobs)}}
        total = rewards + len(jobs)
        plan = {
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "created_at": iso(datetime.now(UTC)),
            "dry_run": dry_run,
            "window": window.as_dict(),
            "configurations": configurations,
            "campaigns": campaigns,
            "counts": counts,
            "total": total,
            "files": {
                "hpgames_reward_ids": display_location(hpgames_file),
                "thanx_issuance_jobs": display_location(thanx_file),
            },
            "fingerprints": {
                "hpgames_reward_ids": fingerprint(hpgames_file),
                "thanx_issuance_jobs": fingerprint(thanx_file),
            },
            "watermark_path": display_location(watermark_path),
        }
        plan_path = plan_dir / PLAN_FILE
        _write_json(plan_path, plan)
        sample = {
            "hpgames.reward_ids": reward_sample,
            "thanx.issuance_job_ids": [j["issuance_job_id"] for j in jobs[: self.sample_size]],
        }
        if total == 0:
            self.log.info("Nothing has ended %s: nothing to tear down", window.describe())
        else:
            self.log.info(
                "Plan %s: %d HPGames reward(s) of %d configuration(s), %d Thanx job(s) of %d ended campaign(s)",
                display_location(plan_path),
                rewards,
                len(configurations),
                len(jobs),
                sum(c["ended"] or c["late_jobs"] > 0 for c in campaigns),
            )
        return {
            "plan_path": display_location(plan_path),
            "record_dir": display_location(plan_dir),
            "window": window.as_dict(),
            "counts": counts,
            "total": total,
            "sample": sample,
            "configurations": configurations[:XCOM_LIST_LIMIT],
            "campaigns": [c for c in campaigns if c["ended"] or c["late_jobs"]][:XCOM_LIST_LIMIT],
            "files": plan["files"],
            "fingerprints": plan["fingerprints"],
            "dry_run": dry_run,
            "nothing_to_do": total == 0,
        }


def approval_body(plan: Mapping[str, Any], threshold: int) -> str:
    """The approval screen (Markdown): counts per vendor and target type, a sample of ids, the plan's path."""
    lines = [
        f"The nightly teardown would remove **{plan['total']}** targets, above the approval threshold of {threshold}.",
        "",
        "| vendor | target type | count | sample |",
        "|---|---|---|---|",
    ]
    for vendor, types in plan["counts"].items():
        for kind, count in types.items():
            sample = ", ".join(f"`{i}`" for i in plan["sample"].get(f"{vendor}.{kind}", []))
            lines.append(f"| {vendor} | {kind} | {count} | {sample} |")
    window = plan["window"]
    lines += [
        "",
        f"Ended between {window['ended_after']} and {window['ended_before']} (grace {window['grace_period_s']} s).",
        "Configurations: " + (", ".join(f"{c['name']} ({c['id']})" for c in plan["configurations"]) or "none") + ".",
        f"Campaigns: {', '.join(c['id'] for c in plan['campaigns']) or 'none'}.",
        "",
        f"Plan (every id): `{plan['plan_path']}`. Approve tears down exactly these targets; Reject tears down nothing.",
    ]
    return "\n".join(lines)


class RewardsTeardownApprovalOperator(ApprovalOperator):
    """Ask a person to approve a plan above ``approval_threshold`` (Airflow's human-in-the-loop approval).

    :param plan_task_id: the :class:`RewardsTeardownPlanOperator` task whose XCom is judged.
    :param approval_threshold: most targets (all vendors) torn down without asking (templated; ``None``: no
        limit). At or below it, and in a dry run, the task succeeds at once and asks nothing.

    Above it the task waits for Approve/Reject (the screen shows counts per vendor and target type, a sample
    of ids and the plan's path). Approve lets the teardown run; Reject ends this task skipped, saying who
    rejected and that nothing was torn down: the teardown tasks are skipped by their trigger rules.
    """

    ui_color = "#fbe8a6"

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "approval_threshold")

    def __init__(self, *, plan_task_id: str = "plan", approval_threshold: object = None, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Approve the nightly rewards teardown")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.approval_threshold = approval_threshold
        if not isinstance(approval_threshold, str):
            parse_threshold(approval_threshold)

    def execute(self, context: Context) -> Any:
        threshold = parse_threshold(self.approval_threshold)
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, Mapping) or "total" not in plan:
            raise AirflowFailException(f"No plan in the XCom of task {self.plan_task_id!r}: run the plan task first")
        total = plan["total"]
        if plan.get("dry_run"):
            self.log.info("Dry run: %d target(s) planned; no approval is asked, nothing will be torn down", total)
            return {"approval": "dry_run", "total": total, "threshold": threshold}
        if threshold is None or total <= threshold:
            self.log.info("%d target(s), at or below the approval threshold %s: no approval needed", total, threshold)
            return {"approval": "not_needed", "total": total, "threshold": threshold}
        self.subject = f"Approve the rewards teardown: {total} targets (threshold {threshold})"
        self.body = approval_body(plan, threshold)
        self.log.info("%d target(s), above the approval threshold %d: waiting for approval", total, threshold)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Approve: the teardown runs. Reject: push ``{"approval": "rejected", ...}`` under XCom key
        ``"approval"`` and end skipped; the downstream tasks are skipped by their trigger rules, and the record
        task (``all_done``) reports the rejection and ends skipped too."""
        result = HITLOperator.execute_complete(self, context, event)  # validates; ApprovalOperator's would skip
        approved = result["chosen_options"][0] == self.APPROVE
        self.hitl_summary_extra["approved"] = approved
        by = result.get("responded_by_user")
        who = by.get("name") or by.get("id") if isinstance(by, Mapping) else by
        if approved:
            self.log.info("Teardown approved by %s", who)
            return {"approval": "approved", "by": who}
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id) or {}
        reason = f"Teardown rejected by {who}: nothing was torn down; the plan is {plan.get('plan_path')}"
        context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value={"approval": "rejected", "by": who, "reason": reason})
        raise AirflowSkipException(reason)


def write_watermark(plan: Mapping[str, Any], run_id: str, *, torn_down: bool) -> None:
    """After a real teardown, the watermark becomes the window's end. After a run that tore nothing down (dry
    run, rejection) an existing watermark stays; with none yet, the window's start is written, so the next run
    (whose last successful run is this one) still looks back to it."""
    path = record_path(plan["watermark_path"], "plan watermark_path")
    if torn_down:
        _write_json(path, {"ended_before": plan["window"]["ended_before"], "run_id": run_id, "torn_down": True})
    elif not path.exists():
        _write_json(path, {"ended_before": plan["window"]["ended_after"], "run_id": run_id, "torn_down": False})


def _plan(plan_path: object) -> tuple[ObjectStoragePath, dict[str, Any]]:
    path = record_path(plan_path, "plan_path")
    if not path.exists():
        raise RewardsInputError(f"plan_path {display_location(path)} does not exist; run the plan task first")
    return path, _read_json(path)


def _planned_file(plan: Mapping[str, Any], name: str, expected_fingerprint: object) -> ObjectStoragePath:
    """The plan's file ``name`` (``hpgames_reward_ids``, ``thanx_issuance_jobs``), failing before any request
    when it is not the file the plan wrote (see :func:`check_fingerprint`)."""
    path = record_path(plan["files"][name], f"plan files.{name}")
    check_fingerprint(path, expected_fingerprint, "expected_fingerprint")
    return path


class HPGamesCancelPlannedRewardsOperator(_SnapshotCancelOperator):
    """Cancel exactly the HPGames rewards a plan lists (its ``hpgames_reward_ids.jsonl``), never a new discovery.

    A reward that is no longer live by now is recorded as the engine finds it (``already_cancelled`` or
    ``refused``); nothing outside the plan can be cancelled.

    :param plan_path: the plan's ``plan.json`` (templated).
    :param results_path: the record's directory (templated; default ``<plan dir>/hpgames_results``).
    :param batch_size: as :class:`~.hpgames.HPGamesBulkCancelRewardsOperator` (templated).
    :param resume: as :class:`~.hpgames.HPGamesBulkCancelRewardsOperator`.
    :param dry_run: as :class:`~.hpgames.HPGamesBulkCancelRewardsOperator` (templated).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param expected_fingerprint: the sha256 the plan task returned for the reward file (templated, from its
        XCom, which lives in the metadata database, not next to the file). A file changed since then fails
        the task before any request.

    Returns the bulk cancel's summary (``nothing_to_do`` when the plan lists no reward).
    """

    ui_color = "#8fb0e0"

    template_fields: Sequence[str] = ("plan_path", "results_path", "batch_size", "expected_fingerprint", "dry_run")

    def __init__(self, *, plan_path: object, expected_fingerprint: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_path, self.expected_fingerprint = plan_path, expected_fingerprint

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = parse_bool(self.dry_run, "dry_run")
        path, plan = _plan(self.plan_path)
        snapshot = _planned_file(plan, "hpgames_reward_ids", self.expected_fingerprint)
        results = (
            path.parent / HPGAMES_RESULTS_DIR
            if self.results_path in (None, *NULL_TEXT)
            else record_path(self.results_path, "results_path")
        )
        planned = plan["counts"]["hpgames"]["reward_ids"]
        self.log.info("The plan lists %d HPGames reward(s): %s", planned, display_location(snapshot))
        if planned == 0:
            self.log.info("Nothing to cancel: the plan lists no live reward")
        return {**self.cancel(context, snapshot, results, dry_run), "planned": planned}


class ThanxPlannedJobsOperator(RewardsBaseOperator):
    """The Thanx jobs a plan lists, as keyword arguments for
    ``ThanxRevokeIssuanceJobOperator.partial(...).expand_kwargs(...)`` (and the sensor's).

    :param plan_path: the plan's ``plan.json`` (templated).
    :param dry_run: return no job (templated): the plan already lists them, and nothing is revoked.
    :param expected_fingerprint: as :class:`HPGamesCancelPlannedRewardsOperator`'s, for the job file.
    Returns ``[{"issuance_job_id", "merchant_id"}]`` (jobs are few; ``merchant_id`` None means the
    connection's); a dry run logs them and returns ``[]``.
    """

    ui_color = "#ecc2ad"

    template_fields: Sequence[str] = ("plan_path", "expected_fingerprint", "dry_run")

    def __init__(
        self, *, plan_path: object, dry_run: bool | str = False, expected_fingerprint: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.plan_path, self.dry_run, self.expected_fingerprint = plan_path, dry_run, expected_fingerprint

    def execute(self, context: Context) -> list[dict[str, str | None]]:
        dry_run = parse_bool(self.dry_run, "dry_run")
        _, plan = _plan(self.plan_path)
        jobs_file = _planned_file(plan, "thanx_issuance_jobs", self.expected_fingerprint)
        entries = read_job_record(jobs_file, field="plan files.thanx_issuance_jobs") if count_lines(jobs_file) else []
        jobs = [{"issuance_job_id": entry.issuance_job_id, "merchant_id": entry.merchant_id} for entry in entries]
        listed = ", ".join(job["issuance_job_id"] for job in jobs) or "none"
        if dry_run:
            self.log.info("Dry run: would revoke %d Thanx job(s): %s; nothing is revoked", len(jobs), listed)
            return []
        self.log.info("The plan lists %d Thanx job(s) to revoke: %s", len(jobs), listed)
        return jobs


class RewardsTeardownRecordOperator(RewardsBaseOperator):
    """Write the run's report (``report.json`` next to the plan) and, after a real teardown, the watermark.

    Runs last (``trigger_rule="all_done"``). Declare the record's Asset in ``outlets``: its event carries
    ``extra={"record_dir", "report", "counts", "dry_run"}``. It fails when any task of the run failed, after
    writing the report; the watermark (the window's end) is written only when nothing failed and it was not
    a dry run, so the next run catches up from the last real teardown.

    :param plan_path: the plan's ``plan.json`` (templated).
    :param hpgames_task_id: the HPGames cancel task whose XCom is reported.
    :param thanx_revoke_task_id: the Thanx revoke task whose XCom is reported.
    :param thanx_wait_task_id: the Thanx wait task whose XCom is reported.
    :param approval_task_id: the approval task; after a rejection the report says so and this task ends skipped.
    """

    ui_color = "#e0eed6"

    template_fields: Sequence[str] = ("plan_path",)

    def __init__(
        self,
        *,
        plan_path: object,
        hpgames_task_id: str = "cancel_hpgames_rewards",
        thanx_revoke_task_id: str = "revoke_thanx_jobs",
        thanx_wait_task_id: str = "wait_until_revoked",
        approval_task_id: str | None = "approve_teardown",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.approval_task_id = approval_task_id
        self.plan_path = plan_path
        self.hpgames_task_id = hpgames_task_id
        self.thanx_revoke_task_id = thanx_revoke_task_id
        self.thanx_wait_task_id = thanx_wait_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        path, plan = _plan(self.plan_path)
        ti = context["ti"]
        report_path = path.parent / REPORT_FILE
        approval = (
            ti.xcom_pull(task_ids=self.approval_task_id, key=APPROVAL_XCOM_KEY) if self.approval_task_id else None
        )
        if isinstance(approval, Mapping) and approval.get("approval") == "rejected":
            _write_json(report_path, {"run_id": context["run_id"], "rejected": approval, "planned": plan["counts"]})
            write_watermark(plan, context["run_id"], torn_down=False)
            raise AirflowSkipException(f"{approval['reason']}; report {display_location(report_path)}")

        def pulled(task_id: str) -> list[Any]:
            """Every XCom value of ``task_id`` (all map indexes); ``[]`` when it pushed none."""
            value = ti.xcom_pull(task_ids=task_id) if task_id else None
            if isinstance(value, list | tuple):
                return [item for item in value if item is not None]
            return [] if value is None else [value]

        hpgames = (pulled(self.hpgames_task_id) or [None])[0]
        revokes = [
            {"issuance_job_id": r.get("issuance_job_id"), "outcome": r.get("outcome")}
            for r in pulled(self.thanx_revoke_task_id)
            if isinstance(r, Mapping)
        ]
        waits = [
            {"id": w.get("id"), "state": w.get("state")}
            for w in pulled(self.thanx_wait_task_id)
            if isinstance(w, Mapping)
        ]
        failed = ti.get_ti_count(ti.dag_id, run_ids=[ti.run_id], states=["failed", "upstream_failed"])
        report = {
            "run_id": context["run_id"],
            "written_at": iso(datetime.now(UTC)),
            "dry_run": plan["dry_run"],
            "window": plan["window"],
            "planned": plan["counts"],
            "hpgames": hpgames,
            "thanx": {"revoked": revokes, "waited": waits},
            "failed_tasks": failed,
        }
        _write_json(report_path, report)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "record_dir": display_location(path.parent),
                "report": display_location(report_path),
                "counts": plan["counts"],
                "dry_run": plan["dry_run"],
            }
        if failed:
            raise AirflowFailException(
                f"{failed} task(s) of this run failed; the report is {display_location(report_path)}"
            )
        if plan["total"] == 0:
            self.log.info(
                "Nothing had ended between %s and %s: nothing was torn down",
                plan["window"]["ended_after"],
                plan["window"]["ended_before"],
            )
        elif plan["dry_run"]:
            self.log.info(
                "Dry run: the plan %s lists %s; nothing was torn down", display_location(path), plan["counts"]
            )
        else:
            self.log.info("Torn down as planned: %s; report %s", plan["counts"], display_location(report_path))
        write_watermark(plan, context["run_id"], torn_down=not plan["dry_run"])
        return {"report": display_location(report_path), "counts": plan["counts"], "dry_run": plan["dry_run"]}


__all__ = [
    "HPGamesCancelPlannedRewardsOperator",
    "HPGamesCancelRewardsOfConfigurationOperator",
    "HPGamesEndedConfigurationsOperator",
    "RewardsTeardownApprovalOperator",
    "RewardsTeardownPlanOperator",
    "RewardsTeardownRecordOperator",
    "ThanxEndedCampaignJobsOperator",
    "ThanxPlannedJobsOperator",
]
