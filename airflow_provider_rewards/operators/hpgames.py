"""Operators that cancel HPGames rewards: one reward, many by id, or every reward of many players."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import BatchRunFailed, RewardsInputError
from airflow_provider_rewards.hooks.hpgames import ID_LIST_IS_UUID, HPGamesHook, check_id
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from airflow_provider_rewards.utils.batching import (
    MAX_REPORTED_IDS,
    SUMMARY_XCOM_KEY,
    BatchRunner,
    chunks,
    count_batches,
    describe_rejections,
)
from airflow_provider_rewards.utils.templating import UNRENDERED, check_when_ready
from airflow_provider_rewards.utils.validation import (
    IdList,
    ValidatedIds,
    at_most_one,
    exactly_one,
    parse_bool,
    prepare_id_list,
    require_choice,
    require_flag,
    require_id,
    require_int,
)

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
IF_EMPTY_CHOICES = ("succeed", "skip", "fail")


class HPGamesBaseOperator(RewardsBaseOperator):
    """Connection id, hook and ``dry_run`` handling shared by the HPGames operators."""

    def __init__(
        self, *, hpgames_conn_id: str = HPGamesHook.default_conn_name, dry_run: bool | str = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.hpgames_conn_id = hpgames_conn_id
        self.dry_run = dry_run

    @cached_property
    def hook(self) -> HPGamesHook:
        """The hook for ``hpgames_conn_id``; the connection is read on its first request."""
        return HPGamesHook(require_id(self.hpgames_conn_id, "hpgames_conn_id"))

    def check_common(self, *, rendered: bool) -> bool:
        """Validate the connection id; return ``dry_run`` as a bool (:data:`UNRENDERED` while still a template)."""
        require_id(self.hpgames_conn_id, "hpgames_conn_id")
        return check_when_ready(self.dry_run, lambda value: parse_bool(value, "dry_run"), rendered=rendered)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run :meth:`cancel`, then close the hook's HTTP session however it ended."""
        try:
            return self.cancel(context)
        finally:
            self.hook.close()

    def cancel(self, context: Context) -> dict[str, Any]:
        """The operator's work, after rendering; returns the XCom summary."""
        raise NotImplementedError


class HPGamesCancelRewardOperator(HPGamesBaseOperator):
    """Cancel one HPGames reward (``rewards/cancel``), by its HPGames id or by its external id.

    :param reward_id: the reward's HPGames id, a UUID (templated). Pass this or ``external_id``.
    :param external_id: the merchant's external id of the reward (templated).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: log what would be cancelled and send nothing (templated; ``True``/``False``
        or the rendered text ``"true"``/``"false"``).

    HPGames answers 200 with no body; a refusal (e.g. 404 unknown reward) fails the task with the
    vendor's status, code and message.

    Returns ``{"id_field": "reward_id" | "external_id", "id": str, "cancelled": 0 | 1,
    "requests": 0 | 1, "dry_run": bool}``.
    """

    template_fields: Sequence[str] = ("reward_id", "external_id", "dry_run")

    def __init__(self, *, reward_id: str | None = None, external_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reward_id = reward_id
        self.external_id = external_id
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> tuple[str, str, bool]:
        """``(field, id, dry_run)``; values still templated before rendering are :data:`UNRENDERED`."""
        dry_run = self.check_common(rendered=rendered)
        field = exactly_one(reward_id=self.reward_id, external_id=self.external_id)
        value = check_when_ready(getattr(self, field), lambda given: check_id(field, given), rendered=rendered)
        return field, value, dry_run

    def cancel(self, context: Context) -> dict[str, Any]:
        field, value, dry_run = self.check_inputs(rendered=True)
        summary = {"id_field": field, "id": value, "cancelled": 0, "requests": 0, "dry_run": dry_run}
        if dry_run:
            self.log.info("Dry run: would cancel the HPGames reward with %s %s; nothing was sent", field, value)
            return summary
        self.hook.cancel_reward(**{field: value})
        self.log.info("Cancelled the HPGames reward with %s %s", field, value)
        return {**summary, "cancelled": 1, "requests": 1}


@dataclass(frozen=True)
class BatchInputs:
    """Validated inputs of a batched operator."""

    ids: IdList
    batch_size: int
    dry_run: bool


class HPGamesBatchOperator(HPGamesBaseOperator):
    """Id-list parsing, batching, progress and the failure summary shared by the batched operators."""

    done_label = "cancelled"

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE, if_empty: str = "succeed", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.if_empty = if_empty

    def check_batch_inputs(self, field: str, *, rendered: bool) -> BatchInputs:
        """Validate the id list in ``field``, ``batch_size``, ``if_empty`` and ``dry_run``.

        After rendering, an empty list raises per ``if_empty``: ``"fail"`` an input error,
        ``"skip"`` a skip; ``"succeed"`` lets the operator log a no-op.
        """
        dry_run = self.check_common(rendered=rendered)
        batch_size = require_int(self.batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)
        if_empty = require_choice(self.if_empty, "if_empty", IF_EMPTY_CHOICES)
        ids = check_when_ready(
            getattr(self, field),
            lambda value: prepare_id_list(value, field, uuid=ID_LIST_IS_UUID[field]),
            rendered=rendered,
        )
        if ids is not UNRENDERED and not ids.ids:
            if if_empty == "fail":
                raise RewardsInputError(f"{field} is empty; pass at least one id, or set if_empty='succeed'")
            if if_empty == "skip" and rendered:
                raise AirflowSkipException(f"{field} is empty: nothing to cancel")
        return BatchInputs(ids, batch_size, dry_run)

    def runner(
        self, send: Callable[[list[str]], None], field: str, batch_size: int, *, isolate_rejections: bool
    ) -> BatchRunner:
        """A :class:`BatchRunner` calling ``send`` per batch, logging through this task's logger."""
        return BatchRunner(
            send,
            field=field,
            batch_size=batch_size,
            isolate_rejections=isolate_rejections,
            done_label=self.done_label,
            log=self.log,
        )

    def run_batches(
        self,
        context: Context,
        runner: BatchRunner,
        ids: Sequence[str],
        summarize: Callable[[BatchRunner], dict[str, Any]],
    ) -> dict[str, Any]:
        """Run every batch and return ``summarize(runner)``; on a stop, push it (plus the failure) and raise."""
        try:
            runner.run(ids)
        except BatchRunFailed as failure:
            self.push_summary(context, {**summarize(runner), **failure.details})
            raise
        return summarize(runner)

    def log_dry_run(
        self, inputs: BatchInputs, action: str, inspect: Callable[[Sequence[str]], str] | None = None
    ) -> None:
        """Log every batch a real run would send, id by id, with ``inspect(batch)``'s note if given."""
        field, ids = inputs.ids.field, inputs.ids.ids
        batches = list(chunks(ids, inputs.batch_size))
        self.log.info(
            "Dry run: would %s %d %s in %d batches of up to %d; nothing is sent",
            action,
            len(ids),
            field,
            len(batches),
            inputs.batch_size,
        )
        for number, batch in enumerate(batches, 1):
            note = inspect(batch) if inspect else ""
            self.log.info("Dry run: batch %d/%d would %s %s%s", number, len(batches), action, ", ".join(batch), note)

    def log_inputs(self, inputs: BatchInputs) -> None:
        """Log how many unique ids there are and how many duplicates were dropped."""
        count, dropped = len(inputs.ids.ids), inputs.ids.duplicates_dropped
        self.log.info("%d unique %s (%d duplicates dropped)", count, inputs.ids.field, dropped)
        if not count:
            self.log.info("Nothing to do: %s is empty", inputs.ids.field)


class HPGamesBulkCancelRewardsOperator(HPGamesBatchOperator):
    """Cancel many HPGames rewards (``rewards/bulkCancel``) in batches, isolating the ids HPGames refuses.

    :param reward_ids: HPGames reward ids (UUIDs, lowercased) (templated). Pass this or ``external_ids``.
        Either may be a list, an upstream ``.output`` (XCom), or a JSON-array string rendered
        from Jinja (``"{{ params.ids | tojson }}"``). Duplicates are dropped and counted.
    :param external_ids: the merchant's external reward ids (templated).
    :param batch_size: ids per request, 1 to 10,000. HPGames documents no limit; the default 500
        is a conservative request size.
    :param fail_on_rejected: fail the task (after every other id was cancelled) if HPGames refused
        any id; when False, the refused ids are only reported.
    :param if_empty: what an empty list (after dropping duplicates) does: ``"succeed"`` (default, a
        logged no-op with a zero summary), ``"skip"`` (the task is skipped) or ``"fail"`` (input error).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: validate, log every batch that would be sent, send nothing (templated).

    A batch refused with HTTP 400, 404, 409, 410 or 422 is split in halves, recursively, until the
    refused single ids are found; the others are cancelled. Finding ``k`` refused ids in a batch of
    ``n`` costs about ``2k·log2(n/k)`` extra requests. HTTP 413 splits without refusing any id.
    401/403 and failures that outlast the transport's retries (5xx, network) stop the run: the
    task fails with the counts of cancelled, rejected, unconfirmed and untried ids, and the
    summary (with ``error``, ``failed_batch``, ``failed_range`` (1-based positions),
    ``unconfirmed`` and ``not_attempted``) is pushed to XCom under key ``"summary"`` first.

    Returns (XCom ``return_value``)::

        {"requested": int,              # unique ids
         "duplicates_dropped": int,
         "cancelled": int,              # ids in requests HPGames accepted
         "rejected": int,               # ids HPGames refused on their own
         "rejected_ids": [str],         # the first 100
         "rejected_truncated": bool,
         "rejections": [{"id", "status_code", "vendor_code", "vendor_message"}],  # the first 100
         "batches": int,                # batches of batch_size (before any split)
         "requests": int,               # bulkCancel calls, splits included, transport retries not
         "dry_run": bool}

    With rejected ids and ``fail_on_rejected=True`` the summary is pushed under ``"summary"`` and
    the task fails (without retrying) naming the rejected ids.
    """

    template_fields: Sequence[str] = ("reward_ids", "external_ids", "dry_run")
    template_fields_renderers: ClassVar[dict[str, str]] = {"reward_ids": "json", "external_ids": "json"}

    def __init__(
        self,
        *,
        reward_ids: Any = None,
        external_ids: Any = None,
        fail_on_rejected: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reward_ids = reward_ids
        self.external_ids = external_ids
        self.fail_on_rejected = fail_on_rejected
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> BatchInputs:
        """Validated inputs; the id list is :data:`UNRENDERED` while still a template before rendering."""
        require_flag(self.fail_on_rejected, "fail_on_rejected")
        field = exactly_one(reward_ids=self.reward_ids, external_ids=self.external_ids)
        return self.check_batch_inputs(field, rendered=rendered)

    def cancel(self, context: Context) -> dict[str, Any]:
        inputs = self.check_inputs(rendered=True)
        field, ids = inputs.ids.field, inputs.ids.ids
        self.log_inputs(inputs)
        runner = self.runner(
            lambda batch: self.hook.bulk_cancel_rewards(**{field: ValidatedIds(batch)}),
            field,
            inputs.batch_size,
            isolate_rejections=True,
        )

        def summarize(progress: BatchRunner) -> dict[str, Any]:
            rejections = progress.rejections
            return {
                "requested": len(ids),
                "duplicates_dropped": inputs.ids.duplicates_dropped,
                "cancelled": progress.done,
                "rejected": len(rejections),
                "rejected_ids": [rejection.id for rejection in rejections[:MAX_REPORTED_IDS]],
                "rejected_truncated": len(rejections) > MAX_REPORTED_IDS,
                "rejections": [rejection.as_dict() for rejection in rejections[:MAX_REPORTED_IDS]],
                "batches": count_batches(len(ids), inputs.batch_size),
                "requests": progress.requests,
                "dry_run": inputs.dry_run,
            }

        if inputs.dry_run:
            self.log_dry_run(inputs, "cancel")
            return summarize(runner)
        summary = self.run_batches(context, runner, ids, summarize)
        self.log.info("%d of %d %s cancelled, %d rejected", summary["cancelled"], len(ids), field, summary["rejected"])
        if runner.rejections and self.fail_on_rejected:
            self.push_summary(context, summary)
            raise AirflowFailException(
                f"HPGames refused {len(runner.rejections)} of {len(ids)} {field}: "
                f"{describe_rejections(runner.rejections)}. The other {runner.done} were cancelled. "
                f"The summary is in XCom under key {SUMMARY_XCOM_KEY!r}; set fail_on_rejected=False "
                "to report refused ids without failing."
            )
        return summary


class HPGamesCancelRewardsByQueryOperator(HPGamesBatchOperator):
    """Cancel every reward of the given players (``rewards/bulkCancelByQuery``), in batches of players.

    :param player_ids: player ids (strings, not UUIDs) (templated): a list, an upstream
        ``.output``, or a JSON-array string. Duplicates are dropped and counted.
    :param reward_configuration_id: only cancel rewards of this configuration (UUID) (templated).
    :param external_reward_configuration_id: ... or of the configuration with this external id
        (templated). Not both; with neither, every reward of the players is cancelled.
    :param batch_size: players per request, 1 to 10,000 (default 500; HPGames documents no limit).
    :param if_empty: what an empty list (after dropping duplicates) does: ``"succeed"`` (default, a
        logged no-op with a zero summary), ``"skip"`` (the task is skipped) or ``"fail"`` (input error).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: validate, then count with the read-only ``rewards/readAll`` (one request per
        player, status ``IN_PROGRESS``, the same configuration filter) what would be cancelled; log
        every batch; cancel nothing (templated).

    A refused request or a persistent failure stops the run (a refusal here is about the request,
    not about one player), pushing the summary to XCom under ``"summary"`` first, with ``error``,
    ``failed_batch``, ``failed_range``, ``unconfirmed`` and ``not_attempted``.

    Returns::

        {"players": int,                # unique player ids
         "duplicates_dropped": int,
         "players_done": int,           # players whose cancel request HPGames accepted
         "batches": int,
         "requests": int,               # API calls (readAll calls in a dry run)
         "dry_run": bool,
         "rewards_to_cancel": int | None}  # dry run only: IN_PROGRESS rewards matched
    """

    template_fields: Sequence[str] = (
        "player_ids",
        "reward_configuration_id",
        "external_reward_configuration_id",
        "dry_run",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"player_ids": "json"}
    done_label = "players done"

    def __init__(
        self,
        *,
        player_ids: Any,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.player_ids = player_ids
        self.reward_configuration_id = reward_configuration_id
        self.external_reward_configuration_id = external_reward_configuration_id
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> tuple[BatchInputs, dict[str, str]]:
        """Validated inputs and the configuration filter as hook keyword arguments."""
        inputs = self.check_batch_inputs("player_ids", rendered=rendered)
        field = at_most_one(
            reward_configuration_id=self.reward_configuration_id,
            external_reward_configuration_id=self.external_reward_configuration_id,
        )
        if field is None:
            return inputs, {}
        value = check_when_ready(getattr(self, field), lambda given: check_id(field, given), rendered=rendered)
        return inputs, {field: value}

    def cancel(self, context: Context) -> dict[str, Any]:
        inputs, config_filter = self.check_inputs(rendered=True)
        players = inputs.ids.ids
        self.log_inputs(inputs)
        self.log.info("Configuration filter: %s", config_filter or "none (every reward of these players)")

        def summarize(done: int, requests: int, rewards_to_cancel: int | None = None) -> dict[str, Any]:
            return {
                "players": len(players),
                "duplicates_dropped": inputs.ids.duplicates_dropped,
                "players_done": done,
                "batches": count_batches(len(players), inputs.batch_size),
                "requests": requests,
                "dry_run": inputs.dry_run,
                "rewards_to_cancel": rewards_to_cancel,
            }

        if inputs.dry_run:
            found: list[int] = []

            def count(batch: Sequence[str]) -> str:
                rewards = [self.hook.read_rewards(player_id=p, status="IN_PROGRESS", **config_filter) for p in batch]
                found.extend(len(player_rewards) for player_rewards in rewards)
                return f": {sum(len(player_rewards) for player_rewards in rewards)} IN_PROGRESS rewards found"

            self.log_dry_run(inputs, "cancel the rewards of", count)
            self.log.info("Dry run: %d IN_PROGRESS rewards would be cancelled; nothing was cancelled", sum(found))
            return summarize(0, len(found), sum(found))
        runner = self.runner(
            lambda batch: self.hook.bulk_cancel_rewards_by_query(ValidatedIds(batch), **config_filter),
            "player_ids",
            inputs.batch_size,
            isolate_rejections=False,
        )
        return self.run_batches(context, runner, players, lambda progress: summarize(progress.done, progress.requests))
