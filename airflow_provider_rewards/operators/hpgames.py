"""Operators that cancel HPGames rewards: one reward, many by id, or every reward of many players."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from airflow.sdk import AssetAlias, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import BatchRunFailed, RewardsApiError, RewardsInputError
from airflow_provider_rewards.hooks.hpgames import ID_LIST_IS_UUID, HPGamesHook, check_id
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from airflow_provider_rewards.utils.batching import (
    DRY_RUN_BATCHES_SHOWN,
    MAX_CONCURRENCY,
    SUMMARY_XCOM_KEY,
    BatchRunner,
    ReadBack,
    ReadBackFunction,
    count_batches,
    describe_rejections,
    is_item_refusal,
)
from airflow_provider_rewards.utils.id_source import (
    FileIdSource,
    IdSource,
    ListIdSource,
    SourceScan,
    as_storage_path,
    display_location,
)
from airflow_provider_rewards.utils.record import (
    RESULTS_ASSET_ALIAS,
    SUMMARY_FILE,
    Outcome,
    ResultsRecord,
    default_results_path,
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
#: What a templated path argument renders to when its param is null: no file (an empty source, ``if_empty`` applies).
NO_FILE = (None, "", "None")
CANCELLED = "CANCELLED"
LIVE = "IN_PROGRESS"
#: requests' default connection pool size per host; more threads than this get a bigger pool.
DEFAULT_POOL_SIZE = 10
NO_EXTERNAL_ID_REASON = (
    "rewards/readAll items carry no externalId (vendor docs §2.4) and {count} cancelled reward(s) came back "
    "without one, so whether this external id is already cancelled cannot be read back"
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


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

    def read_back(self, field: str) -> ReadBackFunction:
        """Which of some ids HPGames shows CANCELLED: one streamed ``readAll`` (``status=CANCELLED``)."""

        def read(ids: list[str]) -> ReadBack:
            wanted = set(ids)
            with closing(self.hook.iter_rewards(status=CANCELLED)) as items:  # closed at once on an early exit
                found, without_external_id = self.match_cancelled(items, field, wanted)
            reason = (
                NO_EXTERNAL_ID_REASON.format(count=without_external_id)
                if without_external_id and len(found) < len(wanted)
                else None
            )
            return ReadBack(frozenset(found), reason)

        return read

    @staticmethod
    def match_cancelled(items: Iterable[Mapping[str, Any]], field: str, wanted: set[str]) -> tuple[set[str], int]:
        """The ``wanted`` ids among CANCELLED readAll ``items``, and how many items had no ``externalId``.

        Stops reading as soon as every wanted id was found.
        """
        found: set[str] = set()
        without_external_id = 0
        for item in items:
            if item.get("status") != CANCELLED:  # a vendor that ignores the filter cannot fake a cancel
                continue
            if field == "reward_ids":
                value = str(item.get("id", "")).lower()
            elif "externalId" in item:
                value = item["externalId"]
            else:
                without_external_id += 1
                continue
            if value in wanted:
                found.add(value)
                if len(found) == len(wanted):
                    break
        return found, without_external_id


class HPGamesCancelRewardOperator(HPGamesBaseOperator):
    """Cancel one HPGames reward (``rewards/cancel``), by its HPGames id or by its external id.

    :param reward_id: the reward's HPGames id, a UUID (templated). Pass this or ``external_id``.
    :param external_id: the merchant's external id of the reward (templated).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: log what would be cancelled and send nothing (templated; ``True``/``False``
        or the rendered text ``"true"``/``"false"``).

    HPGames answers 200 with no body. A refusal that may be about the reward (400, 404, 409, 410, 422,
    or a 2xx with an ``errorCode``) is read back once (``readAll``, ``status=CANCELLED``): a reward shown
    CANCELLED counts as ``already_cancelled`` (a success, so a retry after a lost answer passes whether
    HPGames answers 200 or a 4xx); otherwise the task fails with the vendor's status, code and message.
    An external id can only be matched when readAll returns ``externalId``. A refusal whose ``errorCode`` the
    connection's extra ``already_cancelled_codes`` lists is ``already_cancelled`` at once, with no read-back.

    Returns ``{"id_field": "reward_id" | "external_id", "id": str, "cancelled": 0 | 1,
    "already_cancelled": 0 | 1, "requests": 0 | 1 | 2, "dry_run": bool}``.
    """

    ui_color = "#cfe0f7"
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
        summary = {
            "id_field": field,
            "id": value,
            "cancelled": 0,
            "already_cancelled": 0,
            "requests": 0,
            "dry_run": dry_run,
        }
        if dry_run:
            self.log.info("Dry run: would cancel the HPGames reward with %s %s; nothing was sent", field, value)
            return summary
        try:
            self.hook.cancel_reward(**{field: value})
        except RewardsApiError as error:
            if not is_item_refusal(error):
                raise
            if self.hook.means_already_cancelled(error):
                self.log.info("HPGames refused (%s), a code already_cancelled_codes calls already cancelled", error)
                return {**summary, "already_cancelled": 1, "requests": 1}
            try:  # refused: maybe because it is already cancelled
                read = self.read_back(f"{field}s")([value])
            except RewardsApiError as read_error:
                raise error from read_error  # the refusal stands; the failed read is its cause
            if value not in read.cancelled:
                raise
            self.log.info("HPGames refused (%s), but the reward with %s %s reads back CANCELLED", error, field, value)
            return {**summary, "already_cancelled": 1, "requests": 2}
        self.log.info("Cancelled the HPGames reward with %s %s", field, value)
        return {**summary, "cancelled": 1, "requests": 1}


@dataclass(frozen=True)
class BatchInputs:
    """Validated inputs of a batched operator; a value still templated before rendering is :data:`UNRENDERED`."""

    field: str  # the ids' kind: reward_ids, external_ids or player_ids
    argument: str  # the operator argument that holds them: the field, or <field>_path
    source: IdSource
    batch_size: int
    dry_run: bool
    results_path: ObjectStoragePath | None
    resume: bool
    max_concurrency: int

    @property
    def from_file(self) -> bool:
        return self.argument != self.field


class HPGamesBatchOperator(HPGamesBaseOperator):
    """Id sources, batching, the results record, resumption, progress and the failure summary of the batched operators.

    Declares the :class:`~airflow.sdk.AssetAlias` ``RESULTS_ASSET_ALIAS`` in ``outlets`` (after any
    outlets passed); a run that writes a record adds its results file to it.
    """

    done_label = "cancelled"
    #: The id arguments of the operator: argument name -> the ids' kind (``reward_ids_path`` -> ``reward_ids``).
    id_arguments: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        if_empty: str = "succeed",
        ids_column: str | None = None,
        results_path: Any = None,
        resume: bool = True,
        max_concurrency: int = 1,
        **kwargs: Any,
    ) -> None:
        outlets = kwargs.pop("outlets", None)
        outlets = [] if outlets is None else list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
        super().__init__(outlets=[*outlets, AssetAlias(RESULTS_ASSET_ALIAS)], **kwargs)
        self.batch_size = batch_size
        self.if_empty = if_empty
        self.ids_column = ids_column
        self.results_path = results_path
        self.resume = resume
        self.max_concurrency = max_concurrency

    def check_batch_inputs(self, *, rendered: bool) -> BatchInputs:
        """Validate the one id argument, ``ids_column``, ``results_path``, ``batch_size``, ``if_empty``,
        ``resume``, ``max_concurrency`` and ``dry_run``.

        An empty list raises per ``if_empty`` here (a file is only known empty once scanned: :meth:`check_empty`).
        """
        dry_run = self.check_common(rendered=rendered)
        batch_size = require_int(self.batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)
        require_choice(self.if_empty, "if_empty", IF_EMPTY_CHOICES)
        resume = require_flag(self.resume, "resume")
        max_concurrency = require_int(self.max_concurrency, "max_concurrency", minimum=1, maximum=MAX_CONCURRENCY)
        given = {name: getattr(self, name) for name in self.id_arguments}
        declared = getattr(self, "_id_argument", None)  # the one id argument given at parse time
        if rendered and declared and declared.endswith("_path") and given[declared] in NO_FILE:
            others = [name for name, value in given.items() if name != declared and value is not None]
            argument = exactly_one(**given) if others else declared  # a path param left null: no file
        else:
            argument = exactly_one(**given)
        if not rendered:
            self._id_argument = argument
        field = self.id_arguments[argument]
        uuid = ID_LIST_IS_UUID[field]
        value = getattr(self, argument)
        source: Any
        if rendered and argument != field and value in NO_FILE:
            self.log.info("%s rendered to %r: no file given, nothing to cancel", argument, value)
            source = ListIdSource(IdList(field, ValidatedIds(), 0))
            self.check_empty(field, 0, rendered=rendered)
        elif argument == field:
            if self.ids_column is not None:
                raise RewardsInputError(
                    f"ids_column only applies to a file ({field}_path); remove it, or pass the file as {field}_path"
                )
            ids = check_when_ready(value, lambda given: prepare_id_list(given, field, uuid=uuid), rendered=rendered)
            source = UNRENDERED if ids is UNRENDERED else ListIdSource(ids)
            if ids is not UNRENDERED:
                self.check_empty(field, len(ids.ids), rendered=rendered)
        else:
            source = check_when_ready(
                (value, self.ids_column),
                lambda given: FileIdSource(given[0], field, uuid=uuid, ids_column=given[1]),
                rendered=rendered,
            )
        results_path = (
            None
            if self.results_path is None
            else check_when_ready(
                self.results_path, lambda given: as_storage_path(given, "results_path"), rendered=rendered
            )
        )
        return BatchInputs(field, argument, source, batch_size, dry_run, results_path, resume, max_concurrency)

    def check_empty(self, field: str, count: int, *, rendered: bool) -> None:
        """With no ids: ``if_empty="fail"`` raises an input error, ``"skip"`` skips (once rendered)."""
        if count:
            return
        if self.if_empty == "fail":
            raise RewardsInputError(f"{field} is empty; pass at least one id, or set if_empty='succeed'")
        if self.if_empty == "skip" and rendered:
            raise AirflowSkipException(f"{field} is empty: nothing to cancel")

    def scan(self, inputs: BatchInputs) -> SourceScan:
        """Validate every id of the source (nothing is sent before this returns) and log the counts."""
        scan = inputs.source.scan()
        where = f" from {scan.location}" if scan.location else ""
        self.log.info(
            "%d unique %s%s (%d duplicates dropped)", scan.unique, inputs.field, where, scan.duplicates_dropped
        )
        if not scan.unique:
            self.log.info("Nothing to do: %s is empty", inputs.field)
        self.check_empty(inputs.field, scan.unique, rendered=True)
        return scan

    def runner(
        self,
        send: Callable[[list[str]], None],
        inputs: BatchInputs,
        *,
        isolate_rejections: bool,
        read_back: ReadBackFunction | None = None,
        means_already_cancelled: Callable[[Exception], bool] | None = None,
    ) -> BatchRunner:
        """A :class:`BatchRunner` calling ``send`` per batch, logging through this task's logger (no request yet)."""
        return BatchRunner(
            send,
            field=inputs.field,
            batch_size=inputs.batch_size,
            isolate_rejections=isolate_rejections,
            done_label=self.done_label,
            log=self.log,
            read_back=read_back,
            means_already_cancelled=means_already_cancelled,
            max_concurrency=inputs.max_concurrency,
            throttle_count=lambda: getattr(self.hook.transport, "throttle_count", 0),
        )

    def prepare_transport(self, max_concurrency: int) -> None:
        """Build the hook's transport once, before any worker thread uses it, with a pool for every thread."""
        transport = self.hook.transport
        if max_concurrency > DEFAULT_POOL_SIZE:
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=max_concurrency)
            for prefix in ("https://", "http://"):
                transport.session.mount(prefix, adapter)

    def results_root(self, context: Context, inputs: BatchInputs) -> ObjectStoragePath | None:
        """Where the record goes: ``results_path``, else the documented default for a file, else None (a list)."""
        if inputs.results_path is not None:
            return inputs.results_path
        if not inputs.from_file:
            return None
        ti = context["ti"]
        return default_results_path(
            inputs.source.path,  # type: ignore[attr-defined]  # a FileIdSource
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1,
        )

    def manifest(self, context: Context, inputs: BatchInputs, scan: SourceScan, options: Mapping[str, Any]) -> dict:
        """What ``manifest.json`` records of this run: operator, task, input (with its fingerprint) and options."""
        ti = context["ti"]
        return {
            "operator": type(self).__name__,
            "task": {
                name: getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id", "map_index", "try_number")
            },
            "input": {
                "field": inputs.field,
                "argument": inputs.argument,
                "location": scan.location,
                "fingerprint": scan.fingerprint,
                "batch_size": inputs.batch_size,
                "lines": scan.lines,
                "unique": scan.unique,
                "duplicates_dropped": scan.duplicates_dropped,
            },
            "options": {"resume": inputs.resume, "max_concurrency": inputs.max_concurrency, **options},
            "dry_run": inputs.dry_run,
        }

    def run_batches(
        self,
        context: Context,
        inputs: BatchInputs,
        scan: SourceScan,
        runner: BatchRunner,
        legacy: Callable[[BatchRunner], dict[str, Any]],
        options: Mapping[str, Any],
    ) -> tuple[dict[str, Any], str | None]:
        """Run every batch; return the XCom summary and the results file (None without a record).

        Without a record the summary is ``legacy(runner)``. With one, settled batches of an earlier try are
        skipped (``resume``), every batch is checkpointed when settled, and the record is finished however
        the run ends. On a stop the summary (plus the failure) is pushed under ``"summary"`` and the error raised.
        """
        root = self.results_root(context, inputs)
        self.prepare_transport(inputs.max_concurrency)
        if root is None:
            try:
                runner.run(inputs.source.batches(inputs.batch_size), total_ids=scan.unique)
            except BatchRunFailed as failure:
                self.push_summary(context, {**legacy(runner), **failure.details})
                raise
            return legacy(runner), None
        record = ResultsRecord(root, field=inputs.field)
        settled = record.start(self.manifest(context, inputs, scan, options), resume=inputs.resume)
        runner.on_settled, runner.on_open = record.settle_batch, record.note_open_batch
        details: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        try:
            runner.run(inputs.source.batches(inputs.batch_size), total_ids=scan.unique, settled=settled)
        except BatchRunFailed as failure:
            details = dict(failure.details)
            raise
        except BaseException as error:  # a kill signal, a failed write: the record is still completed
            details = {"error": f"{type(error).__name__}: {error}"}
            raise
        finally:
            summary = self.finish_record(context, record, root, inputs, scan, runner, details)
            if details:
                self.push_summary(context, {**summary, **details})
        return summary, summary["results_path"]

    def finish_record(
        self,
        context: Context,
        record: ResultsRecord,
        root: ObjectStoragePath,
        inputs: BatchInputs,
        scan: SourceScan,
        runner: BatchRunner,
        details: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Write results.jsonl and summary.json, emit the results Asset event; return the XCom summary."""
        run = {
            "requests": runner.requests,
            "read_backs": runner.read_backs,
            "resumed_batches": runner.resumed_batches,
            **details,
        }
        results = record.finish(inputs.source.batches(inputs.batch_size), run)
        counts = record.counts()
        summary = {
            **{outcome.value: counts[outcome] for outcome in Outcome},
            "results_path": results,
            "summary_path": display_location(root / SUMMARY_FILE),
            "requested": scan.unique,
            "duplicates_dropped": scan.duplicates_dropped,
            "batches": count_batches(scan.unique, inputs.batch_size),
            **run,
            "dry_run": False,
        }
        self.log.info(
            "Results of every %s: %s (%s)",
            inputs.field,
            results,
            ", ".join(f"{counts[outcome]} {outcome.value}" for outcome in Outcome),
        )
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            extra = {outcome.value: counts[outcome] for outcome in Outcome}
            outlet_events[AssetAlias(RESULTS_ASSET_ALIAS)].add(record.results_asset(), extra=extra)
        return summary

    def log_dry_run(
        self,
        inputs: BatchInputs,
        scan: SourceScan,
        action: str,
        inspect: Callable[[Sequence[str]], str] | None = None,
    ) -> int:
        """Log the first batches a real run would send, id by id (with ``inspect(batch)``'s note), and count the rest.

        Returns how many batches were listed.
        """
        total = count_batches(scan.unique, inputs.batch_size)
        self.log.info(
            "Dry run: would %s %d %s in %d batches of up to %d; nothing is sent",
            action,
            scan.unique,
            inputs.field,
            total,
            inputs.batch_size,
        )
        shown = 0
        for number, batch in inputs.source.batches(inputs.batch_size):
            if number > DRY_RUN_BATCHES_SHOWN:
                break
            note = inspect(batch) if inspect else ""
            self.log.info("Dry run: batch %d/%d would %s %s%s", number, total, action, ", ".join(batch), note)
            shown = number
        if total > shown:
            self.log.info("Dry run: %d more batches not listed", total - shown)
        return shown

    def dry_run_summary(self, context: Context, inputs: BatchInputs, scan: SourceScan) -> dict[str, Any]:
        """The XCom of a dry run with a record: counts only; nothing is written (nothing was sent)."""
        root = self.results_root(context, inputs)
        if root is not None:
            self.log.info("Dry run: a real run would write its results under %s", display_location(root))
        return {
            "requested": scan.unique,
            "duplicates_dropped": scan.duplicates_dropped,
            "batches": count_batches(scan.unique, inputs.batch_size),
            "requests": 0,
            "results_path": None,
            "summary_path": None,
            "dry_run": True,
        }


class HPGamesBulkCancelRewardsOperator(HPGamesBatchOperator):
    """Cancel many HPGames rewards (``rewards/bulkCancel``) in batches, with one outcome recorded per id.

    :param reward_ids: HPGames reward ids (UUIDs, lowercased) (templated): a list, an upstream ``.output``
        (XCom), or a JSON-array string rendered from Jinja (``"{{ params.ids | tojson }}"``).
    :param external_ids: the merchant's external reward ids (templated), as a list like ``reward_ids``.
    :param reward_ids_path: a file of reward ids (templated): an ``ObjectStoragePath`` or a URI
        (``file:///data/ids.csv``, ``s3://bucket/ids.txt.gz``), one id per line, CSV (``.csv``) or JSON
        Lines (``.jsonl``), gzip by ``.gz``. Streamed: memory grows with ``batch_size``, not with the file.
    :param external_ids_path: a file of external ids (templated), as ``reward_ids_path``.
        Pass exactly one of the four id arguments. Duplicates are dropped and counted.
    :param ids_column: the CSV header name or JSON key of the ids (templated; files only).
    :param results_path: the results directory (templated; ``ObjectStoragePath`` or URI). Default with a
        file: ``<file>.results/<dag_id>/<run_id>/<task_id>[-<map_index>]/``. With a list and no
        ``results_path`` nothing is written and the summary is the list summary below.
    :param resume: with a record, skip the batches an earlier try (or run) with the same input, batch size
        and ``results_path`` settled, and send every other one again; ``False`` starts over.
    :param max_concurrency: batches in flight at once, 1 (default) to 16; halved when HPGames throttles
        (429), raised by one after each clean batch (AIMD).
    :param reconcile_refusals: when HPGames refuses ids, read ``rewards/readAll`` (``status=CANCELLED``,
        streamed) to find those already cancelled (``already_cancelled``, a success) instead of calling
        them refused (default True). Also settles a request whose answer was lost.
    :param batch_size: ids per request, 1 to 10,000. HPGames documents no limit; the default 500
        is a conservative request size.
    :param fail_on_rejected: fail the task (after every other id was settled) if HPGames refused any id;
        when False, the refused ids are only reported.
    :param if_empty: what no ids (after dropping duplicates) does: ``"succeed"`` (default, a logged no-op
        with a zero summary), ``"skip"`` (the task is skipped) or ``"fail"`` (input error).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: validate every id, log the counts and the first 10 batches, send nothing, write nothing
        (templated).

    Every id ends with one outcome: ``cancelled`` (in a request HPGames accepted), ``already_cancelled``
    (read back as CANCELLED), ``refused`` (HPGames refused it alone: status, vendor code, message),
    ``unconfirmed`` (in a request that failed for good and no read-back settled) or ``not_attempted``.
    HPGames documents neither what cancelling a cancelled reward answers nor per-item results, so:

    - a batch refused with 400, 404, 409, 410, 422 or a 2xx ``errorCode`` is first read back once
      (``readAll`` ``status=CANCELLED``, matched on ``id``, or on ``externalId`` when items carry it); ids
      found are ``already_cancelled`` and the rest is sent again: correct whether HPGames answers 200 or a
      4xx for a cancelled reward, and a batch refused whole costs 1 read and 1 request, not a split;
    - what is still refused is split in halves until the refused ids are found (``2k·log2(n/k)`` extra
      requests for ``k`` of ``n``); until a request succeeds, the first and last id are probed alone and a
      request refused for both the same way stops the run (the request itself is wrong);
    - readAll items carry no ``externalId`` in the vendor docs: a refused external id that a read-back
      cannot show stays ``refused``, its message saying why, unless the ``hpgames`` connection's extra
      ``already_cancelled_codes`` lists the ``errorCode`` it was refused with alone (then ``already_cancelled``);
    - a request that fails for good (5xx, 429, network, after the transport's retries) is read back: if
      every id reads back CANCELLED the run goes on, else it stops (HTTP 413 splits; 401/403 stop at once).

    A stop fails the task with the counts of each outcome and pushes the summary (with ``error``,
    ``failed_batch``, ``failed_range`` (1-based positions), ``unconfirmed`` and ``not_attempted``) to
    XCom under key ``"summary"`` first; the record is completed before the task fails.

    Returns (XCom ``return_value``) with a record (a file, or a ``results_path``)::

        {"cancelled": int, "already_cancelled": int, "refused": int, "unconfirmed": int, "not_attempted": int,
         "results_path": str, "summary_path": str,   # display locations (no connection id)
         "requested": int, "duplicates_dropped": int, "batches": int,
         "requests": int, "read_backs": int, "resumed_batches": int, "dry_run": bool}

    and with a list and no ``results_path``::

        {"requested": int,              # unique ids
         "duplicates_dropped": int,
         "cancelled": int,              # ids in requests HPGames accepted
         "already_cancelled": int,      # ids read back as CANCELLED
         "rejected": int,               # ids HPGames refused on their own
         "rejected_ids": [str],         # the first 100
         "rejected_truncated": bool,
         "rejections": [{"id", "status_code", "vendor_code", "vendor_message"}],  # the first 100
         "batches": int,                # batches of batch_size (before any split)
         "requests": int,               # bulkCancel calls, splits included, transport retries not
         "read_backs": int,             # readAll reads made to reconcile
         "dry_run": bool}

    With refused ids and ``fail_on_rejected=True`` the summary is pushed under ``"summary"`` and the task
    fails (without retrying) naming the first refused ids.
    """

    ui_color = "#9fc2ee"
    template_fields: Sequence[str] = (
        "reward_ids",
        "external_ids",
        "reward_ids_path",
        "external_ids_path",
        "ids_column",
        "results_path",
        "dry_run",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"reward_ids": "json", "external_ids": "json"}
    id_arguments: ClassVar[dict[str, str]] = {
        "reward_ids": "reward_ids",
        "external_ids": "external_ids",
        "reward_ids_path": "reward_ids",
        "external_ids_path": "external_ids",
    }

    def __init__(
        self,
        *,
        reward_ids: Any = None,
        external_ids: Any = None,
        reward_ids_path: Any = None,
        external_ids_path: Any = None,
        fail_on_rejected: bool = True,
        reconcile_refusals: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reward_ids = reward_ids
        self.external_ids = external_ids
        self.reward_ids_path = reward_ids_path
        self.external_ids_path = external_ids_path
        self.fail_on_rejected = fail_on_rejected
        self.reconcile_refusals = reconcile_refusals
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> BatchInputs:
        """Validated inputs; a source still templated before rendering is :data:`UNRENDERED`."""
        require_flag(self.fail_on_rejected, "fail_on_rejected")
        require_flag(self.reconcile_refusals, "reconcile_refusals")
        return self.check_batch_inputs(rendered=rendered)

    def cancel(self, context: Context) -> dict[str, Any]:
        inputs = self.check_inputs(rendered=True)
        scan = self.scan(inputs)
        field = inputs.field
        runner = self.runner(
            lambda batch: self.hook.bulk_cancel_rewards(**{field: ValidatedIds(batch)}),
            inputs,
            isolate_rejections=True,
            read_back=self.read_back(field) if self.reconcile_refusals else None,
            means_already_cancelled=self.hook.means_already_cancelled if self.reconcile_refusals else None,
        )

        def legacy(progress: BatchRunner) -> dict[str, Any]:
            rejections = progress.rejections
            return {
                "requested": scan.unique,
                "duplicates_dropped": scan.duplicates_dropped,
                "cancelled": progress.done,
                "already_cancelled": progress.counts[Outcome.ALREADY_CANCELLED],
                "rejected": progress.rejected,
                "rejected_ids": [rejection.id for rejection in rejections],
                "rejected_truncated": progress.rejected > len(rejections),
                "rejections": [rejection.as_dict() for rejection in rejections],
                "batches": count_batches(scan.unique, inputs.batch_size),
                "requests": progress.requests,
                "read_backs": progress.read_backs,
                "dry_run": inputs.dry_run,
            }

        if inputs.dry_run:
            self.log_dry_run(inputs, scan, "cancel")
            if self.results_root(context, inputs) is None:
                return legacy(runner)
            return self.dry_run_summary(context, inputs, scan)
        if not scan.unique and self.results_root(context, inputs) is None:
            return legacy(runner)
        options = {"fail_on_rejected": self.fail_on_rejected, "reconcile_refusals": self.reconcile_refusals}
        summary, results = self.run_batches(context, inputs, scan, runner, legacy, options)
        refused = runner.counts[Outcome.REFUSED]
        already = runner.counts[Outcome.ALREADY_CANCELLED]
        self.log.info(
            "%d of %d %s cancelled, %d already cancelled, %d rejected",
            runner.done,
            scan.unique,
            field,
            already,
            refused,
        )
        if refused and self.fail_on_rejected:
            self.push_summary(context, summary)
            where = (
                f"Every outcome is in {results}"
                if results
                else f"The summary is in XCom under key {SUMMARY_XCOM_KEY!r}"
            )
            shown = f": {describe_rejections(runner.rejections, refused)}" if runner.rejections else ""
            raise AirflowFailException(
                f"HPGames refused {refused} of {scan.unique} {field}{shown}. The other "
                f"{runner.done + already} were cancelled. {where}; set fail_on_rejected=False "
                "to report refused ids without failing."
            )
        return summary


class HPGamesCancelRewardsByQueryOperator(HPGamesBatchOperator):
    """Cancel every reward of the given players (``rewards/bulkCancelByQuery``), in batches of players.

    :param player_ids: player ids (strings, not UUIDs) (templated): a list, an upstream ``.output``,
        or a JSON-array string. Duplicates are dropped and counted.
    :param player_ids_path: a file of player ids (templated), as ``reward_ids_path`` of
        :class:`HPGamesBulkCancelRewardsOperator`. Pass this or ``player_ids``.
    :param ids_column: the CSV header name or JSON key of the player ids (templated; files only).
    :param results_path: the results directory (templated), one line per player; default with a file as
        for the bulk operator; with a list and no ``results_path`` nothing is written.
    :param resume: with a record, skip the batches an earlier try settled (default True).
    :param max_concurrency: batches in flight at once, 1 (default) to 16 (AIMD on 429).
    :param reward_configuration_id: only cancel rewards of this configuration (UUID) (templated).
    :param external_reward_configuration_id: ... or of the configuration with this external id
        (templated). Not both; with neither, every reward of the players is cancelled.
    :param batch_size: players per request, 1 to 10,000 (default 500; HPGames documents no limit).
    :param if_empty: what no players (after dropping duplicates) does: ``"succeed"`` (default, a
        logged no-op with a zero summary), ``"skip"`` (the task is skipped) or ``"fail"`` (input error).
    :param hpgames_conn_id: connection of type ``hpgames``.
    :param dry_run: validate every player id, then count with the read-only ``rewards/readAll`` (one
        request per player of the first 10 batches, status ``IN_PROGRESS``, the same configuration filter)
        what would be cancelled; log those batches; cancel nothing, write nothing (templated).

    A player's outcome is ``cancelled`` when a request with it was accepted. A request that fails for good
    (5xx, 429, network, after the transport's retries) is read back with one streamed ``readAll``
    (``status=IN_PROGRESS`` and the configuration filter): players with no live reward left are
    ``already_cancelled``; if that is all of them the run goes on (the answer was lost), else it stops with
    the others ``unconfirmed``. A refused request stops the run (a refusal here is about the request, not
    about one player), its players ``unconfirmed``. The summary is pushed to XCom under ``"summary"``
    first, with ``error``, ``failed_batch``, ``failed_range``, ``unconfirmed`` and ``not_attempted``.

    Returns, with a record, the bulk operator's record summary (counts per outcome, of players); with a
    list and no ``results_path``::

        {"players": int,                # unique player ids
         "duplicates_dropped": int,
         "players_done": int,           # players whose cancel request HPGames accepted
         "batches": int,
         "requests": int,               # API calls (readAll calls in a dry run)
         "dry_run": bool,
         "rewards_to_cancel": int | None}  # dry run only: IN_PROGRESS rewards of the listed batches' players
    """

    ui_color = "#b5d3e8"
    template_fields: Sequence[str] = (
        "player_ids",
        "player_ids_path",
        "ids_column",
        "results_path",
        "reward_configuration_id",
        "external_reward_configuration_id",
        "dry_run",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"player_ids": "json"}
    id_arguments: ClassVar[dict[str, str]] = {"player_ids": "player_ids", "player_ids_path": "player_ids"}
    done_label = "players done"

    def __init__(
        self,
        *,
        player_ids: Any = None,
        player_ids_path: Any = None,
        reward_configuration_id: str | None = None,
        external_reward_configuration_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.player_ids = player_ids
        self.player_ids_path = player_ids_path
        self.reward_configuration_id = reward_configuration_id
        self.external_reward_configuration_id = external_reward_configuration_id
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> tuple[BatchInputs, dict[str, str]]:
        """Validated inputs and the configuration filter as hook keyword arguments."""
        inputs = self.check_batch_inputs(rendered=rendered)
        field = at_most_one(
            reward_configuration_id=self.reward_configuration_id,
            external_reward_configuration_id=self.external_reward_configuration_id,
        )
        if field is None:
            return inputs, {}
        value = check_when_ready(getattr(self, field), lambda given: check_id(field, given), rendered=rendered)
        return inputs, {field: value}

    def read_back(self, config_filter: Mapping[str, str]) -> ReadBackFunction:
        """Which of some players have no live reward left (of the filtered configuration): one streamed
        ``readAll`` (``status=IN_PROGRESS``, the configuration filter), after a request whose answer was lost."""

        def read(players: list[str]) -> ReadBack:
            wanted = set(players)
            live: set[str] = set()
            with closing(self.hook.iter_rewards(status=LIVE, **config_filter)) as items:
                for item in items:  # an item without a status counts as live: never settled by a guess
                    if item.get("playerId") in wanted and item.get("status", LIVE) == LIVE:
                        live.add(item["playerId"])
            return ReadBack(frozenset(wanted - live))

        return read

    def cancel(self, context: Context) -> dict[str, Any]:
        inputs, config_filter = self.check_inputs(rendered=True)
        scan = self.scan(inputs)
        self.log.info("Configuration filter: %s", config_filter or "none (every reward of these players)")

        def summarize(done: int, requests: int, rewards_to_cancel: int | None = None) -> dict[str, Any]:
            return {
                "players": scan.unique,
                "duplicates_dropped": scan.duplicates_dropped,
                "players_done": done,
                "batches": count_batches(scan.unique, inputs.batch_size),
                "requests": requests,
                "dry_run": inputs.dry_run,
                "rewards_to_cancel": rewards_to_cancel,
            }

        if inputs.dry_run:
            found: list[int] = []

            def count(batch: Sequence[str]) -> str:
                rewards = [
                    sum(1 for _ in self.hook.iter_rewards(player_id=p, status="IN_PROGRESS", **config_filter))
                    for p in batch
                ]
                found.extend(rewards)
                return f": {sum(rewards)} IN_PROGRESS rewards found"

            self.log_dry_run(inputs, scan, "cancel the rewards of", count)
            self.log.info("Dry run: %d IN_PROGRESS rewards would be cancelled; nothing was cancelled", sum(found))
            if self.results_root(context, inputs) is None:
                return summarize(0, len(found), sum(found))
            return {
                **self.dry_run_summary(context, inputs, scan),
                "requests": len(found),
                "rewards_to_cancel": sum(found),
            }
        runner = self.runner(
            lambda batch: self.hook.bulk_cancel_rewards_by_query(ValidatedIds(batch), **config_filter),
            inputs,
            isolate_rejections=False,
            read_back=self.read_back(config_filter),
        )
        if not scan.unique and self.results_root(context, inputs) is None:
            return summarize(0, 0)
        summary, _ = self.run_batches(
            context,
            inputs,
            scan,
            runner,
            lambda progress: summarize(progress.done, progress.requests),
            {"configuration": config_filter},
        )
        return summary
