"""The teardown report: read back every targeted Thanx job and HPGames reward and fail naming what is left.

:class:`RewardsTeardownReportOperator` is the last task of a teardown DAG (``trigger_rule="all_done"``,
so it runs after a failed task too). :class:`TeardownTargets` holds the one rule of what a teardown
targets; the ``make demo`` runner and the tests use the same rule.

How rewards are read back: ``rewards/readAll`` documents no pagination, so its body is streamed
(:meth:`HPGamesHook.iter_rewards <airflow_provider_rewards.hooks.hpgames.HPGamesHook.iter_rewards>`)
and only the targeted rewards' ids are kept. With reward ids or external ids targeted (or more than
:data:`PER_PLAYER_QUERY_LIMIT` players) it is one request with ``status=IN_PROGRESS`` and no other
filter; with players alone it is one request per player (``playerId``, ``status=IN_PROGRESS`` and the
configuration filter). Every filter is checked again on each item, so a vendor that ignores one cannot
hide a leftover.

External ids: the documented ``readAll`` item has no ``externalId``. A live item that does carry the
target's external id is a known leftover. When every live item read carried the field (or nothing is
live at all), an external id not among them is verified gone. Otherwise it cannot be verified and is
listed under ``unverifiable`` with the reason, never as done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_rewards.exceptions import RewardsError, RewardsInputError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook, check_id
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from airflow_provider_rewards.utils.batching import SUMMARY_XCOM_KEY
from airflow_provider_rewards.utils.lineage import HPGAMES_REWARDS, THANX_ISSUANCE_JOBS
from airflow_provider_rewards.utils.validation import parse_bool, prepare_id_list, require_id

#: With more players than this, one unfiltered IN_PROGRESS stream replaces the per-player queries.
PER_PLAYER_QUERY_LIMIT = 100
LIVE = "IN_PROGRESS"
NO_EXTERNAL_ID_REASON = (
    "rewards/readAll items carry no externalId (vendor docs §2.4) and {count} live reward(s) came back without "
    "one, so whether this reward is among them cannot be read back"
)


@dataclass(frozen=True)
class TeardownTargets:
    """What a teardown was asked to take back. Reward UUIDs and the configuration id are lowercased.

    The tuples keep the ids in the order given; membership is checked against frozensets of them
    (:attr:`reward_id_set`, :attr:`external_id_set`, :attr:`player_id_set`), built once per instance."""

    issuance_job_ids: tuple[str, ...] = ()
    reward_ids: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    player_ids: tuple[str, ...] = ()
    reward_configuration_id: str | None = None

    @classmethod
    def parse(
        cls,
        issuance_job_ids: object = (),
        reward_ids: object = (),
        external_ids: object = (),
        player_ids: object = (),
        reward_configuration_id: object = None,
    ) -> TeardownTargets:
        """Validated targets (lists, XCom sequences or JSON-array text); raises naming the bad field."""

        def ids(value: object, name: str, *, uuid: bool) -> tuple[str, ...]:
            return tuple(prepare_id_list(value or [], name, uuid=uuid).ids)

        config = (
            None
            if reward_configuration_id in (None, "")
            else check_id("reward_configuration_id", reward_configuration_id)
        )
        return cls(
            ids(issuance_job_ids, "issuance_job_ids", uuid=False),
            ids(reward_ids, "reward_ids", uuid=True),
            ids(external_ids, "external_ids", uuid=False),
            ids(player_ids, "player_ids", uuid=False),
            config,
        )

    @cached_property
    def reward_id_set(self) -> frozenset[str]:
        """``reward_ids`` for O(1) membership."""
        return frozenset(self.reward_ids)

    @cached_property
    def external_id_set(self) -> frozenset[str]:
        """``external_ids`` for O(1) membership."""
        return frozenset(self.external_ids)

    @cached_property
    def player_id_set(self) -> frozenset[str]:
        """``player_ids`` for O(1) membership."""
        return frozenset(self.player_ids)

    @property
    def empty(self) -> bool:
        return not (self.issuance_job_ids or self.reward_ids or self.external_ids or self.player_ids)

    def targets_reward(self, reward: Mapping[str, Any]) -> bool:
        """Whether ``reward`` (a readAll item, or the sandbox's record of one) is one this teardown cancels:
        by its id, by its external id (when the record has one), or as a live reward of a listed player
        that matches the configuration filter."""
        if str(reward.get("id", "")).lower() in self.reward_id_set:
            return True
        if has_id(reward.get("externalId"), self.external_id_set):
            return True
        return self.targets_by_player(reward)

    def targets_by_player(self, reward: Mapping[str, Any]) -> bool:
        """A live reward of a listed player, of the filtered configuration when there is a filter."""
        if not has_id(reward.get("playerId"), self.player_id_set) or not is_live(reward):
            return False
        config = self.reward_configuration_id
        return config is None or str(reward.get("rewardConfigurationId", "")).lower() == config


def has_id(value: object, ids: frozenset[str]) -> bool:
    """Whether ``value`` (any JSON value of a vendor item) is one of ``ids``: a list, object, number or null
    never is, and none of them raises (an unhashable value cannot be looked up in a set)."""
    return isinstance(value, str) and value in ids


def is_live(reward: Mapping[str, Any]) -> bool:
    """Live unless the item says otherwise: a missing status (in an IN_PROGRESS query) is never counted as done."""
    return reward.get("status", LIVE) == LIVE


@dataclass
class RewardReadBack:
    """What streamed readAll items say about the targets; keeps only targeted ids, never the items."""

    targets: TeardownTargets
    live_ids: set[str] = field(default_factory=set)
    live_external_ids: set[str] = field(default_factory=set)
    live_player_rewards: set[str] = field(default_factory=set)
    live_without_external_id: int = 0
    items_read: int = 0
    requests: int = 0

    def observe(self, reward: Mapping[str, Any]) -> None:
        """Take one readAll item into account."""
        self.items_read += 1
        if not is_live(reward):
            return
        reward_id = str(reward.get("id", "")).lower()
        if reward_id in self.targets.reward_id_set:
            self.live_ids.add(reward_id)
        if "externalId" in reward:
            if has_id(reward["externalId"], self.targets.external_id_set):
                self.live_external_ids.add(reward["externalId"])
        else:
            self.live_without_external_id += 1
        if self.targets.targets_by_player(reward):
            self.live_player_rewards.add(f"{reward_id} (player {reward['playerId']})")

    def still_live(self) -> list[str]:
        """Every targeted reward known to be live."""
        return sorted(self.live_ids | self.live_external_ids | self.live_player_rewards)

    def unverifiable(self) -> dict[str, str]:
        """External ids whose state the read-back cannot establish, with the reason."""
        if not self.live_without_external_id:
            return {}
        reason = NO_EXTERNAL_ID_REASON.format(count=self.live_without_external_id)
        return {
            external_id: reason
            for external_id in self.targets.external_ids
            if external_id not in self.live_external_ids
        }


def read_back_rewards(hook: HPGamesHook, targets: TeardownTargets) -> RewardReadBack:
    """Stream readAll as narrowly as the targets allow and return what it says about them (see module docs)."""
    read_back = RewardReadBack(targets)
    if targets.reward_ids or targets.external_ids or len(targets.player_ids) > PER_PLAYER_QUERY_LIMIT:
        queries: list[dict[str, str | None]] = [{"status": LIVE}]
    else:
        config = targets.reward_configuration_id
        queries = [
            {"player_id": player, "status": LIVE, "reward_configuration_id": config} for player in targets.player_ids
        ]
    for query in queries:
        read_back.requests += 1
        for item in hook.iter_rewards(**query):
            read_back.observe(item)
    return read_back


def cancel_recorded_every_id(summary: Mapping[str, Any] | None, ids: Sequence[str]) -> bool:
    """Whether a bulk-cancel summary says each of ``ids`` was accepted (a real run, none refused, none left)."""
    if not summary or summary.get("dry_run") or summary.get("error"):
        return False
    return summary.get("requested") == summary.get("cancelled") == len(ids) and not summary.get("rejected")


class RewardsTeardownReportOperator(RewardsBaseOperator):
    """Read every targeted Thanx issuance job and HPGames reward back; fail naming whatever is left.

    :param thanx_merchant_id: the jobs' merchant (templated; the connection's when empty).
    :param issuance_job_ids: Thanx jobs that must be ``revoked`` (templated).
    :param reward_ids: HPGames reward UUIDs that must not be live (templated).
    :param external_ids: external reward ids that must not be live (templated).
    :param player_ids: players with no live reward left (of ``reward_configuration_id`` when given) (templated).
    :param reward_configuration_id: the players' filter, or None for all their rewards (templated).
    :param external_id_cancel_task_id: the task that bulk-cancelled ``external_ids``; its summary
        (XCom ``return_value``, else ``"summary"``) says whether each was accepted.
    :param fail_on_unverifiable: whether external ids that cannot be read back fail the run. ``None``
        (default): only when that task did not record every one of them as cancelled.
    :param dry_run: list what is left and never fail over it (templated).
    :param thanx_conn_id: connection of type ``thanx``.
    :param hpgames_conn_id: connection of type ``hpgames``.

    Runs with ``trigger_rule="all_done"``. With no targets it logs that and succeeds. A read that
    fails (API error, 200 + ``errorCode``, truncated body) lists the item under ``not_verified`` and
    raises a retryable :class:`RewardsError`; a known leftover, an unverifiable id that must fail,
    or a failed task of the run raises :class:`AirflowFailException` (no retry).

    Returns ``{"dry_run", "jobs_not_revoked": {job: state}, "rewards_still_live": [str],
    "unverifiable": {external_id: reason}, "reads": {"requests", "items_read"}}``.
    """

    ui_color = "#cfe8c1"
    lineage_datasets = (THANX_ISSUANCE_JOBS.read(), HPGAMES_REWARDS.read())  # it only reads
    template_fields: Sequence[str] = (
        "thanx_merchant_id",
        "issuance_job_ids",
        "reward_ids",
        "external_ids",
        "player_ids",
        "reward_configuration_id",
        "dry_run",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "issuance_job_ids": "json",
        "reward_ids": "json",
        "external_ids": "json",
        "player_ids": "json",
    }

    def __init__(
        self,
        *,
        thanx_merchant_id: str | None = None,
        issuance_job_ids: Any = (),
        reward_ids: Any = (),
        external_ids: Any = (),
        player_ids: Any = (),
        reward_configuration_id: str | None = None,
        external_id_cancel_task_id: str | None = None,
        fail_on_unverifiable: bool | None = None,
        dry_run: bool | str = False,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        hpgames_conn_id: str = HPGamesHook.default_conn_name,
        trigger_rule: str = "all_done",
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        self.thanx_merchant_id = thanx_merchant_id
        self.issuance_job_ids = issuance_job_ids
        self.reward_ids = reward_ids
        self.external_ids = external_ids
        self.player_ids = player_ids
        self.reward_configuration_id = reward_configuration_id
        self.external_id_cancel_task_id = external_id_cancel_task_id
        self.fail_on_unverifiable = fail_on_unverifiable
        self.dry_run = dry_run
        self.thanx_conn_id = require_id(thanx_conn_id, "thanx_conn_id")
        self.hpgames_conn_id = require_id(hpgames_conn_id, "hpgames_conn_id")
        if fail_on_unverifiable is not None and not isinstance(fail_on_unverifiable, bool):
            raise TypeError(f"fail_on_unverifiable must be True, False or None, got {fail_on_unverifiable!r}")

    def targets(self) -> tuple[TeardownTargets, dict[str, str]]:
        """The rendered targets, validated, and the fields holding ids that failed validation (with why).

        An invalid id was refused by the cancel task as well, so it is never counted as torn down: the valid
        ids of the field are still read back, and the report fails naming the invalid ones."""
        lists = {
            "issuance_job_ids": self.issuance_job_ids,
            "reward_ids": self.reward_ids,
            "external_ids": self.external_ids,
            "player_ids": self.player_ids,
        }
        kept: dict[str, tuple[str, ...]] = {}
        invalid: dict[str, str] = {}
        for name, value in lists.items():
            try:
                kept[name] = getattr(TeardownTargets.parse(**{name: value}), name)
            except RewardsInputError as error:
                invalid[name] = str(error)
                kept[name] = (
                    tuple(item for item in value or () if _valid(name, item)) if isinstance(value, list) else ()
                )
        config = TeardownTargets.parse(reward_configuration_id=self.reward_configuration_id).reward_configuration_id
        return TeardownTargets(**kept, reward_configuration_id=config), invalid

    def execute(self, context: Context) -> dict[str, Any]:
        (targets, invalid), dry_run = self.targets(), parse_bool(self.dry_run, "dry_run")
        merchant = self.thanx_merchant_id or None
        not_verified: dict[str, str] = {}  # what could not be read back, and why: never counted as done
        jobs_left: dict[str, str] = {}
        report: dict[str, Any] = {"dry_run": dry_run}
        if targets.empty:
            self.log.info(
                "Nothing to tear down: no job, reward or player was given as a list (pass them with -c at trigger "
                "time); ids given as files are audited by their task's results.jsonl"
            )
        if targets.issuance_job_ids:
            with ThanxHook(self.thanx_conn_id) as thanx:
                for job_id in targets.issuance_job_ids:
                    try:
                        state = thanx.get_issuance_job(job_id, merchant)["state"]
                    except RewardsError as error:
                        not_verified[f"thanx job {job_id}"] = str(error)
                    else:
                        if state != "revoked":
                            jobs_left[job_id] = state
        read_back = RewardReadBack(targets)
        if targets.reward_ids or targets.external_ids or targets.player_ids:
            with HPGamesHook(self.hpgames_conn_id) as hpgames:
                try:
                    read_back = read_back_rewards(hpgames, targets)
                except RewardsError as error:
                    not_verified["hpgames rewards"] = str(error)
        rewards_left = [] if not_verified.get("hpgames rewards") else read_back.still_live()
        unverifiable = {} if not_verified.get("hpgames rewards") else read_back.unverifiable()
        report |= {
            "jobs_not_revoked": jobs_left,
            "rewards_still_live": rewards_left,
            "unverifiable": unverifiable,
            "reads": {"requests": read_back.requests, "items_read": read_back.items_read},
        }
        if not_verified:
            report["not_verified"] = not_verified
        if invalid:
            report["invalid_targets"] = invalid
        failed_tasks = self.failed_tasks(context)
        also_failed = f". {failed_tasks}" if failed_tasks else ""
        if not_verified:  # possibly transient: a normal failure, so Airflow retries the task and reads again
            raise RewardsError(f"Teardown incomplete: {report}; could not read back {len(not_verified)}{also_failed}")
        if dry_run:
            self.log.info(
                "Dry run: would tear down %d jobs, %d live rewards: %s", len(jobs_left), len(rewards_left), report
            )
        elif jobs_left or rewards_left or invalid:
            raise AirflowFailException(f"Teardown incomplete: {report}{also_failed}")
        elif unverifiable and self.unverifiable_fails(context, targets):
            raise AirflowFailException(
                f"Teardown unverified: {len(unverifiable)} external id(s) cannot be read back and "
                f"{self.external_id_cancel_task_id or 'no cancel task'} did not record each as cancelled: "
                f"{report}{also_failed}"
            )
        elif not targets.empty:
            self.log.info("Teardown complete: every targeted job is revoked and no targeted reward is live")
            if unverifiable:
                self.log.warning(
                    "%d external id(s) cannot be read back (readAll shows no externalId); %s recorded each as "
                    "cancelled: %s",
                    len(unverifiable),
                    self.external_id_cancel_task_id,
                    sorted(unverifiable),
                )
        if failed_tasks:  # e.g. an id that failed validation or that HPGames refused: never report success over it
            done = "The dry run listed what is left" if dry_run else "Nothing targeted is left to tear down"
            raise AirflowFailException(f"{done}, but {failed_tasks}")
        return report

    def unverifiable_fails(self, context: Context, targets: TeardownTargets) -> bool:
        """``fail_on_unverifiable``, or when None: whether the cancel task did not record every external id."""
        if self.fail_on_unverifiable is not None:
            return self.fail_on_unverifiable
        if not self.external_id_cancel_task_id:
            return True
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=self.external_id_cancel_task_id) or ti.xcom_pull(
            task_ids=self.external_id_cancel_task_id, key=SUMMARY_XCOM_KEY
        )
        return not cancel_recorded_every_id(summary, targets.external_ids)

    @staticmethod
    def failed_tasks(context: Context) -> str:
        """A sentence naming how many task instances of this run failed, or ``""``."""
        ti = context.get("ti")
        if ti is None:
            return ""
        failed = ti.get_ti_count(ti.dag_id, run_ids=[ti.run_id], states=["failed"])
        return f"{failed} task instance(s) of this run failed; see their logs" if failed else ""


def _valid(field: str, item: object) -> bool:
    """Whether one id of ``field`` passes the rule :meth:`TeardownTargets.parse` applies to it."""
    try:
        TeardownTargets.parse(**{field: [item]})
    except RewardsInputError:
        return False
    return True
