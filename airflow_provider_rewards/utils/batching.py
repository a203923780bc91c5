"""The batch engine: send ids in batches through one callable, settle every id to one outcome, exact counts.

Splitting, probing, reconciliation, concurrency and stop rules are described on :class:`BatchRunner`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from airflow_provider_rewards.exceptions import BatchRunFailed, RewardsApiError, RewardsError
from airflow_provider_rewards.utils.record import IdOutcome, Outcome, UniformOutcomes

T = TypeVar("T")
SUMMARY_XCOM_KEY = "summary"
ITEM_REJECTION_STATUSES = frozenset({400, 404, 409, 410, 422})
TOO_LARGE_STATUS = 413
THROTTLED_STATUS = 429
#: Statuses after which a request may have been applied although it failed (the answer was lost or late).
LOST_ANSWER_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_REPORTED_IDS = 100
MAX_IDS_IN_MESSAGE = 20
MAX_CONCURRENCY = 16
#: Seconds the run loop waits at most for a worker to begin a batch before writing checkpoints (a hint, not a rule).
WORKER_START_WAIT = 0.005
#: Seconds the run loop then sleeps (GIL released) so the new request is on the wire before checkpoints are written;
#: only while requests take at least HEAD_START_MIN_RTT, so that a fast API never waits on it.
REQUEST_HEAD_START = 0.001
HEAD_START_MIN_RTT = 0.01
#: How many batches the dry run lists id by id; the rest are counted.
DRY_RUN_BATCHES_SHOWN = 10


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def numbered_batches(items: Sequence[str], size: int) -> Iterator[tuple[int, list[str]]]:
    """``(1-based number, ids)`` for consecutive slices of ``items``: what an id source yields."""
    for number, batch in enumerate(chunks(items, size), 1):
        yield number, list(batch)


def count_batches(total: int, size: int) -> int:
    """How many batches of at most ``size`` items ``total`` items make."""
    return -(-total // size)


def span(first: int, last: int) -> str:
    """``"batch 3"`` or ``"batches 3-5"``; empty when ``first > last``."""
    if first > last:
        return ""
    return f"batch {first}" if first == last else f"batches {first}-{last}"


def spans(numbers: Iterable[int]) -> str:
    """Sorted batch numbers as runs: ``"batches 1-3, batch 5"``; empty for none."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(span(first, last) for first, last in runs)


class BatchVerdict(StrEnum):
    """What a refused request leads to."""

    SPLIT = "split"
    REJECT = "reject"
    STOP = "stop"


@dataclass(frozen=True)
class Rejection:
    """One id the API refused on its own (found by splitting its batch down to that id)."""

    id: str
    status_code: int | None
    vendor_code: str | None
    vendor_message: str | None

    @classmethod
    def from_outcome(cls, outcome: IdOutcome) -> Rejection:
        """The rejection an id's ``refused`` outcome describes."""
        return cls(outcome.id, outcome.status_code, outcome.vendor_code, outcome.message)

    def as_dict(self) -> dict[str, Any]:
        """The XCom-safe form reported in summaries."""
        return asdict(self)

    def describe(self) -> str:
        """``<id> (HTTP <status> <vendor code>)`` for messages."""
        detail = " ".join(part for part in (f"HTTP {self.status_code}", self.vendor_code) if part)
        return f"{self.id} ({detail})"


def describe_rejections(rejections: Sequence[Rejection], total: int | None = None) -> str:
    """The first rejected ids with status and vendor code, and how many more there are (of ``total``)."""
    shown = ", ".join(rejection.describe() for rejection in rejections[:MAX_IDS_IN_MESSAGE])
    more = (len(rejections) if total is None else total) - min(len(rejections), MAX_IDS_IN_MESSAGE)
    return f"{shown} and {more} more" if more > 0 else shown


def same_refusal(error: Exception, other: Exception) -> bool:
    """True when both are API errors with the same status and vendor code."""
    if not isinstance(error, RewardsApiError) or not isinstance(other, RewardsApiError):
        return False
    return (error.status_code, error.vendor_code) == (other.status_code, other.vendor_code)


def is_item_refusal(error: Exception) -> bool:
    """A refusal that may be about the request's items: 400, 404, 409, 410, 422, or a 2xx with an ``errorCode``."""
    if not isinstance(error, RewardsApiError) or error.status_code is None:
        return False
    if error.status_code in ITEM_REJECTION_STATUSES:
        return True
    return error.status_code < 400 and error.vendor_code is not None


def is_lost_answer(error: Exception) -> bool:
    """A failure after which the request may have been applied: no response, a timeout, 429 or a 5xx."""
    if not isinstance(error, RewardsApiError):
        return False
    return error.status_code is None or error.status_code in LOST_ANSWER_STATUSES


@dataclass(frozen=True)
class ReadBack:
    """What one read-back of ids found: those read back as ``CANCELLED``.

    ``unknown_reason`` is set when an id not in ``cancelled`` may still be cancelled (the read could not
    show it, e.g. readAll items without ``externalId``); ``failed`` when the read itself failed.
    """

    cancelled: frozenset[str]
    unknown_reason: str | None = None
    failed: bool = False


#: Reads ids back: which of them HPGames shows as CANCELLED.
ReadBackFunction = Callable[[list[str]], ReadBack]


def outcome_of_error(item: str, outcome: Outcome, error: Exception, why: str | None = None) -> IdOutcome:
    """``item``'s outcome with the status, vendor code and message of ``error`` (``why`` replaces the message)."""
    if isinstance(error, RewardsApiError):
        message = why or error.vendor_message or str(error)
        return IdOutcome(item, outcome, error.status_code, error.vendor_code, message)
    return IdOutcome(item, outcome, None, None, why or f"{type(error).__name__}: {error}")


@dataclass
class _Batch:
    """One top-level batch being settled (by one thread): what is known of each of its ids."""

    number: int
    ids: list[str]
    outcomes: dict[str, IdOutcome] = field(default_factory=dict)
    read_back: ReadBack | None = None  # the batch's refusal read-back, made once
    epoch: int = 0  # the concurrency window's epoch when the batch was sent
    accepted_whole: bool = False  # its first request, of every id, was accepted: all cancelled, outcomes not filled
    started: threading.Event = field(default_factory=threading.Event)  # set when its worker begins sending it
    submitted_at: float = 0.0  # time.perf_counter() when it was last handed to a worker

    def known(self) -> Sequence[IdOutcome]:
        if self.accepted_whole:
            return UniformOutcomes(self.ids, Outcome.CANCELLED)
        return list(self.outcomes.values())

    def known_by_id(self) -> dict[str, IdOutcome]:
        """What is known of each id (copied in one step while a worker may still write to it)."""
        if self.accepted_whole:
            return {item: IdOutcome(item, Outcome.CANCELLED) for item in self.ids}
        return dict(self.outcomes)

    def settled(self) -> Sequence[IdOutcome]:
        """Every id's outcome in batch order (every id must be known); compact when accepted whole."""
        if self.accepted_whole:
            return UniformOutcomes(self.ids, Outcome.CANCELLED)
        return [self.outcomes[item] for item in self.ids]


class _BatchStopped(Exception):
    """Internal: the run stops in this batch; ``batch.outcomes`` holds what is known of it."""

    def __init__(self, batch: _Batch, error: Exception) -> None:
        super().__init__(str(error))
        self.batch = batch
        self.error = error


class _Throttled(Exception):
    """Internal: a request was throttled (HTTP 429) after the transport's retries; the batch is sent again later."""

    def __init__(self, batch: _Batch, error: Exception) -> None:
        super().__init__(str(error))
        self.batch = batch
        self.error = error


class BatchRunner:
    """Send ids in batches through ``send`` and settle every id of every batch to one :class:`Outcome`.

    **Outcomes.** ``cancelled``: the id was in a request HPGames accepted. ``already_cancelled``: a
    read-back showed it ``CANCELLED`` (after a refusal, or after a request whose answer was lost).
    ``refused``: HPGames refused it on its own (found by splitting), with status, vendor code and message.
    ``unconfirmed``: the run stopped in a request that may or may not have been applied, and no read-back
    settled it. Ids never sent are left out (the record calls them ``not_attempted``).

    **Refusals.** A batch refused for something about its items (400, 404, 409, 410, 422, or a 2xx with
    an ``errorCode``) is first reconciled with one ``read_back`` of the whole batch: ids read back as
    ``CANCELLED`` are ``already_cancelled`` and the rest is sent again, so a batch refused whole because
    some ids were already cancelled costs 1 read and 1 more request, not a split. What is still refused is
    halved recursively until the refused ids are found (``2k·log2(n/k)`` requests for ``k`` of ``n``). Until
    a request of the run succeeds, the first and last id of a refused batch are first sent alone: if both
    fail as the batch did, the request itself is wrong and the run stops. That probe never stops on ids a
    read-back could not vouch for (readAll without ``externalId``). 413 splits without blaming an id. An id
    refused alone with a code ``means_already_cancelled`` accepts is ``already_cancelled`` without a read.

    **Failures.** A failure that outlasts the transport's retries (5xx, 429, network) is read back: ids read
    back as ``CANCELLED`` are ``already_cancelled``; if that settles the whole request the run goes on (its
    answer was lost), else the run stops with the rest ``unconfirmed``. Anything else (401, 403, a refusal
    when ``isolate_rejections`` is False) stops the run; its ids are ``unconfirmed``.

    **Concurrency.** Up to ``max_concurrency`` batches are in flight (threads). The window halves when a
    429 is seen (``throttle_count``, or a 429 that outlasted the retries: that batch is sent again) and grows
    by 1 after each clean batch, up to the maximum (AIMD). Every batch is reported to ``on_settled`` as soon
    as it is settled, in completion order. A stop submits nothing more, waits for the batches in flight,
    settles them, reports each unsettled batch to ``on_open`` and raises :class:`BatchRunFailed`.

    :param send: makes one API call for a list of ids (raises ``RewardsApiError`` on failure).
    :param field: the operator argument the ids came from, for messages (``reward_ids``).
    :param batch_size: ids per batch.
    :param isolate_rejections: split refused batches to find refused single ids (bulk cancel);
        when False, a refusal stops the run (cancel by query, where a refusal is about the request).
    :param done_label: how progress lines name finished ids (``"cancelled"``).
    :param read_back: reconciles refused and failed ids (None: no reconciliation).
    :param on_settled: called with ``(batch number, outcomes of every id)`` once a batch is settled (a
        :class:`~.record.UniformOutcomes` for a batch accepted whole: no object per id).
    :param on_open: called with ``(batch number, known outcomes)`` for a batch the run stopped in.
    :param max_concurrency: batches in flight at most (1 to 16).
    :param throttle_count: returns how many 429 answers the transport has seen so far.
    :param means_already_cancelled: True for a refusal that, for a single id, means it is already cancelled
        (the connection's ``already_cancelled_codes``); such an id is ``already_cancelled`` without a read-back,
        which is how a refused external id is settled when readAll items carry no ``externalId``.
    """

    def __init__(
        self,
        send: Callable[[list[str]], None],
        *,
        field: str,
        batch_size: int,
        isolate_rejections: bool,
        done_label: str,
        log: logging.Logger | Any,
        read_back: ReadBackFunction | None = None,
        on_settled: Callable[[int, Sequence[IdOutcome]], None] | None = None,
        on_open: Callable[[int, Sequence[IdOutcome]], None] | None = None,
        max_concurrency: int = 1,
        throttle_count: Callable[[], int] | None = None,
        means_already_cancelled: Callable[[Exception], bool] | None = None,
    ) -> None:
        if not 1 <= max_concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"max_concurrency must be 1 to {MAX_CONCURRENCY}, got {max_concurrency}")
        self.send = send
        self.field = field
        self.batch_size = batch_size
        self.isolate_rejections = isolate_rejections
        self.done_label = done_label
        self.log = log
        self.read_back_ids = read_back
        self.on_settled = on_settled
        self.on_open = on_open
        self.max_concurrency = max_concurrency
        self.throttle_count = throttle_count
        self.means_already_cancelled = means_already_cancelled
        self.counts: Counter[Outcome] = Counter()
        self.requests = 0
        self.read_backs = 0
        self.resumed_batches = 0
        self.settled_numbers: set[int] = set()
        self.request_works = False  # True once any request of this run succeeded
        self.rejections: list[Rejection] = []  # the first MAX_REPORTED_IDS refused ids
        self.window = max_concurrency
        self.total_ids = 0
        self.total_batches = 0
        self._lock = threading.Lock()

    # --- what the operators read -------------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Ids in requests HPGames accepted."""
        return self.counts[Outcome.CANCELLED]

    @property
    def rejected(self) -> int:
        """Ids HPGames refused on their own."""
        return self.counts[Outcome.REFUSED]

    # --- the run -----------------------------------------------------------------------------------------------

    def run(
        self,
        batches: Iterable[tuple[int, list[str]]] | Sequence[str],
        *,
        total_ids: int | None = None,
        settled: Mapping[int, Mapping[Outcome, int]] | None = None,
    ) -> None:
        """Settle every batch not in ``settled`` (their counts are restored); raise :class:`BatchRunFailed` on a stop.

        ``batches`` are ``(number, ids)`` pairs read one at a time (an id source's), or a plain id list.
        """
        if total_ids is None:
            ids = list(batches)  # type: ignore[arg-type]  # a plain id list
            total_ids, batches = len(ids), numbered_batches(ids, self.batch_size)
        self.total_ids = total_ids
        self.total_batches = count_batches(total_ids, self.batch_size)
        settled = settled or {}
        if settled:
            self.log.info("Resuming: %d batches settled by an earlier try are not sent again", len(settled))
        source = iter(batches)  # type: ignore[arg-type]
        requeued: deque[_Batch] = deque()
        pending: dict[Future[Sequence[IdOutcome]], _Batch] = {}
        stops: list[_BatchStopped] = []
        seen_throttles = self._throttles()
        ahead: deque[_Batch] = deque()  # the next batch, read from the source while requests are in flight
        epoch = [0]  # +1 at each decrease: a batch sent before it does not raise the window (it saw the old one)

        def refill() -> list[_Batch]:
            submitted: list[_Batch] = []
            while not stops and len(pending) < self.window:
                batch = requeued.popleft() if requeued else ahead.popleft() if ahead else self._next(source, settled)
                if batch is None:
                    break
                batch.epoch = epoch[0]
                batch.started.clear()
                batch.submitted_at = time.perf_counter()
                pending[pool.submit(self._settle_batch, batch)] = batch
                submitted.append(batch)
            return submitted

        # Even at max_concurrency 1 the request runs in a worker thread: checkpoint writes and reading the
        # next batch overlap the request in flight (a batch is still checkpointed only once settled).
        pool = ThreadPoolExecutor(self.max_concurrency, "bulk-cancel")
        slow = False  # the last answered request took at least HEAD_START_MIN_RTT
        try:
            while True:
                refill()
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                ready: list[tuple[int, Sequence[IdOutcome]]] = []
                for future in sorted(finished, key=lambda done: pending[done].number):
                    batch = pending.pop(future)
                    slow = time.perf_counter() - batch.submitted_at >= HEAD_START_MIN_RTT
                    clean = True
                    try:
                        ready.append((batch.number, future.result()))
                    except _Throttled as throttled:
                        clean = False
                        requeued.append(throttled.batch)
                        self.log.warning(
                            "batch %d was throttled (HTTP 429) after every retry; it is sent again", batch.number
                        )
                    except _BatchStopped as stop:
                        stops.append(stop)
                        if self.on_open is not None:
                            self.on_open(stop.batch.number, stop.batch.known())
                    now = self._throttles()
                    if not clean or now > seen_throttles:
                        if batch.epoch == epoch[0]:  # one decrease per throttling episode
                            before, self.window = self.window, max(1, self.window // 2)
                            epoch[0] += 1
                            self.log.info(
                                "HPGames throttled (HTTP 429): %d batches in flight at most, was %d",
                                self.window,
                                before,
                            )
                    elif self.window < self.max_concurrency and batch.epoch == epoch[0]:
                        self.window += 1
                    seen_throttles = now
                # The next requests go out before this thread writes the checkpoints: it waits (briefly) until each
                # worker has begun and, while requests are slow, gives it a head start, so that the worker's request
                # does not queue behind this thread for the GIL (1.5 ms of the 3.6 ms between an answer and the next
                # request at 20 ms RTT). Only the order changes: a batch is still checkpointed once settled.
                submitted = refill() if ready else []
                for sent in submitted:
                    sent.started.wait(WORKER_START_WAIT)
                if submitted and slow:
                    time.sleep(REQUEST_HEAD_START)
                while ready:
                    self._settle(*ready[0])
                    ready.pop(0)
                if not stops and not ahead and not requeued:
                    upcoming = self._next(source, settled)
                    if upcoming is not None:
                        ahead.append(upcoming)
        except BaseException:  # interrupted (a signal, a failed checkpoint write): report what was in flight
            for number, outcomes in ready:  # answered, not yet checkpointed
                self._report_open(number, outcomes)
            for batch in requeued:
                self._report_open(batch.number, batch.known())
            for batch in pending.values():
                self._report_interrupted(batch)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if stops:
            for batch in requeued:  # throttled, to be sent again: what it already did is known
                self._report_open(batch.number, batch.known())
            stops.sort(key=lambda stop: stop.batch.number)
            raise self._failure(stops, list(requeued)) from stops[0].error

    def _report_interrupted(self, batch: _Batch) -> None:
        """Report a batch still in flight when the run was interrupted: its unknown ids are ``unconfirmed``."""
        known = batch.known_by_id()
        why = "in flight when the run was interrupted; it may or may not have been applied"
        outcomes = [known.get(item) or IdOutcome(item, Outcome.UNCONFIRMED, message=why) for item in batch.ids]
        self._report_open(batch.number, outcomes)

    def _report_open(self, number: int, outcomes: Sequence[IdOutcome]) -> None:
        """``on_open`` for a batch the run ends in without settling it; a failure to note it is only logged."""
        if self.on_open is None or not outcomes:
            return
        try:
            self.on_open(number, outcomes)
        except Exception as error:  # the run's own failure is what gets raised
            self.log.warning("Could not note batch %d as open: %s", number, error)

    def _throttles(self) -> int:
        return self.throttle_count() if self.throttle_count is not None else 0

    def _next(
        self, source: Iterator[tuple[int, list[str]]], settled: Mapping[int, Mapping[Outcome, int]]
    ) -> _Batch | None:
        """The next batch to send; batches settled before are skipped and their counts restored."""
        for number, ids in source:
            if number not in settled:
                return _Batch(number, list(ids))
            self.counts.update({Outcome(name): count for name, count in settled[number].items()})
            self.settled_numbers.add(number)
            self.resumed_batches += 1
        return None

    def _settle(self, number: int, outcomes: Sequence[IdOutcome]) -> None:
        """Count a settled batch, report it, log progress."""
        if isinstance(outcomes, UniformOutcomes):  # accepted whole: nothing refused, no object per id
            counts = outcomes.counts()
        else:
            counts = Counter(outcome.outcome for outcome in outcomes)
            for outcome in outcomes:
                if outcome.outcome is Outcome.REFUSED and len(self.rejections) < MAX_REPORTED_IDS:
                    self.rejections.append(Rejection.from_outcome(outcome))
        self.counts.update(counts)
        self.settled_numbers.add(number)
        if self.on_settled is not None:
            self.on_settled(number, outcomes)
        extra = "".join(
            f", {counts[kind]} {label}"
            for kind, label in ((Outcome.ALREADY_CANCELLED, "already cancelled"), (Outcome.REFUSED, "rejected"))
            if counts[kind]
        )
        progress = len(self.settled_numbers)
        self.log.info(
            "batch %d/%d (%d%%): %d %s%s",
            number,
            self.total_batches,
            progress * 100 // self.total_batches,
            counts[Outcome.CANCELLED],
            self.done_label,
            extra,
        )

    # --- one batch (runs in a worker thread when max_concurrency > 1) -----------------------------------------

    def _settle_batch(self, batch: _Batch) -> Sequence[IdOutcome]:
        """Every id of ``batch`` settled; raises :class:`_BatchStopped` or :class:`_Throttled`."""
        batch.started.set()
        # A requeued batch keeps what it knew; with nothing known, all of it goes (no copy of the list).
        rest = [item for item in batch.ids if item not in batch.outcomes] if batch.outcomes else batch.ids
        if rest:
            self._send(batch, rest)
        return batch.settled()

    def _attempt(self, batch: _Batch, ids: list[str]) -> Exception | None:
        """One request; ``None`` when it succeeded (its ids are cancelled), else its error."""
        with self._lock:
            self.requests += 1
        try:
            self.send(ids)
        except Exception as error:  # classified by the caller; anything unexpected stops with an exact report
            return error
        if not batch.outcomes and len(ids) == len(batch.ids):  # the whole batch in one request: no object per id
            batch.accepted_whole = True
        else:
            for item in ids:
                batch.outcomes[item] = IdOutcome(item, Outcome.CANCELLED)
        self.request_works = True
        return None

    def _send(self, batch: _Batch, ids: list[str]) -> None:
        error = self._attempt(batch, ids)
        if error is None:
            return
        verdict = self._classify(error, len(ids))
        if verdict is BatchVerdict.STOP:
            self._fail(batch, ids, error)
            return
        if len(ids) == 1 and self._settle_by_code(batch, ids[0], error):
            return
        if is_item_refusal(error) and self._reconcile(batch, ids):
            return
        if verdict is BatchVerdict.REJECT:
            self._reject(batch, ids[0], error)
            return
        if isinstance(error, RewardsApiError) and error.status_code == TOO_LARGE_STATUS:
            self.log.warning("%d %s were too large for one request (HTTP 413); splitting", len(ids), self.field)
        elif not self.request_works:
            self._probe(batch, ids, error)
            return
        else:
            self.log.debug("%d %s refused together (%s); splitting them", len(ids), self.field, error)
        self._halve(batch, ids)

    def _reconcile(self, batch: _Batch, ids: list[str]) -> bool:
        """After a refusal: read the batch back once; ids shown CANCELLED are settled, the rest sent again.

        Returns True when that handled ``ids`` (some were already cancelled); False to go on splitting.
        """
        if self.read_back_ids is None or batch.read_back is not None:
            return False
        batch.read_back = self._read(batch.ids)
        found = [item for item in ids if item in batch.read_back.cancelled]
        if not found:
            return False
        for item in found:
            batch.outcomes[item] = IdOutcome(
                item, Outcome.ALREADY_CANCELLED, message="refused, then read back as CANCELLED"
            )
        self.log.info("%d %s refused were already cancelled (read back)", len(found), self.field)
        rest = [item for item in ids if item not in batch.read_back.cancelled]
        if rest:
            self._send(batch, rest)
        return True

    def _settle_by_code(self, batch: _Batch, item: str, error: Exception) -> bool:
        """Settle ``item``, refused alone, as ``already_cancelled`` if its refusal's code says so; True if it did."""
        if self.means_already_cancelled is None or not self.means_already_cancelled(error):
            return False
        code = error.vendor_code if isinstance(error, RewardsApiError) else None
        why = f"refused with errorCode {code}, which already_cancelled_codes says means already cancelled"
        batch.outcomes[item] = outcome_of_error(item, Outcome.ALREADY_CANCELLED, error, why)
        self.request_works = True  # the vendor read the request and judged the reward: it is well-formed
        return True

    def _read(self, ids: list[str]) -> ReadBack:
        """One read-back; a failed read is an empty, failed one (its ids stay unsettled by it)."""
        assert self.read_back_ids is not None
        with self._lock:
            self.read_backs += 1
        try:
            return self.read_back_ids(ids)
        except Exception as error:  # a failed read settles nothing; the caller goes on without it
            self.log.warning("Reading %d %s back failed: %s", len(ids), self.field, error)
            return ReadBack(frozenset(), f"the read-back failed: {error}", failed=True)

    def _fail(self, batch: _Batch, ids: list[str], error: Exception) -> None:
        """A request failed for good: settle it by read-back if its answer may have been lost, else stop."""
        throttled = isinstance(error, RewardsApiError) and error.status_code == THROTTLED_STATUS
        if throttled and self.window > 1:
            raise _Throttled(batch, error) from error
        read = self._read(ids) if self.read_back_ids is not None and is_lost_answer(error) else None
        if read is not None and not read.failed:
            for item in ids:
                if item in read.cancelled:
                    batch.outcomes[item] = IdOutcome(
                        item,
                        Outcome.ALREADY_CANCELLED,
                        message=f"confirmed by a read-back after the request failed: {error}",
                    )
            if all(item in read.cancelled for item in ids):
                self.log.warning(
                    "%d %s: the request failed (%s) but a read-back confirms every one", len(ids), self.field, error
                )
                return
        why = f"sent in a request that failed ({error}); it may or may not have been applied"
        if read is not None and read.unknown_reason:
            why += f"; {read.unknown_reason}"
        for item in ids:
            if item not in batch.outcomes:
                batch.outcomes[item] = outcome_of_error(item, Outcome.UNCONFIRMED, error, why)
        raise _BatchStopped(batch, error) from error

    def _probe(self, batch: _Batch, ids: list[str], batch_error: Exception) -> None:
        """Send the first and last id alone; stop if both fail exactly as the batch did, else go on with the rest."""
        probes = [ids[0], ids[-1]]
        refused: list[tuple[str, Exception]] = []
        for probe in probes:
            error = self._attempt(batch, [probe])
            if error is None or self._settle_by_code(batch, probe, error):
                break
            if self._classify(error, 1) is BatchVerdict.STOP:
                self._fail(batch, [probe], error)
                break
            refused.append((probe, error))
        unvouched = batch.read_back is not None and not batch.read_back.failed and batch.read_back.unknown_reason
        if len(refused) == 2 and all(same_refusal(error, batch_error) for _, error in refused) and not unvouched:
            for probe, _ in refused:
                batch.outcomes.pop(probe, None)  # refused with the request: never sent on their own merit
            problem = RewardsError(
                f"{batch_error}; the first and the last id sent alone were refused the same way, so the request "
                "itself is wrong (base URL, signature or merchant), not its ids"
            )
            raise _BatchStopped(batch, problem) from batch_error
        for probe, error in refused:
            self._reject(batch, probe, error)
        if refused:  # the refused probes may have been the only refused ids: send the rest whole
            if len(ids) > 2:
                self._send(batch, ids[1:-1])
        else:  # the first id went through: the refused ones are among the rest
            self._halve(batch, ids[1:])

    def _halve(self, batch: _Batch, ids: list[str]) -> None:
        half = len(ids) // 2
        for part in (ids[:half], ids[half:]):
            if part:
                self._send(batch, part)

    def _reject(self, batch: _Batch, item: str, error: Exception) -> None:
        read = batch.read_back
        if read is not None and read.failed:  # refused, but the read-back that would settle it failed: retryable
            why = f"refused ({error}); whether it is already cancelled is unknown: {read.unknown_reason}"
            batch.outcomes[item] = outcome_of_error(item, Outcome.UNCONFIRMED, error, why)
            raise _BatchStopped(batch, error) from error
        why = None
        if read is not None and read.unknown_reason:
            why = f"{getattr(error, 'vendor_message', None) or error}; not known to be cancelled: {read.unknown_reason}"
        outcome = outcome_of_error(item, Outcome.REFUSED, error, why)
        batch.outcomes[item] = outcome
        self.log.warning("%s rejected: %s: %s", self.field, Rejection.from_outcome(outcome).describe(), outcome.message)

    def _classify(self, error: Exception, size: int) -> BatchVerdict:
        """Split the request, reject its single id, or stop the run."""
        status = error.status_code if isinstance(error, RewardsApiError) else None
        if status == TOO_LARGE_STATUS and size > 1:
            return BatchVerdict.SPLIT
        if self.isolate_rejections and is_item_refusal(error):
            return BatchVerdict.SPLIT if size > 1 else BatchVerdict.REJECT
        return BatchVerdict.STOP

    # --- the stop report ---------------------------------------------------------------------------------------

    def _failure(self, stops: list[_BatchStopped], requeued: list[_Batch]) -> BatchRunFailed:
        first_stop = stops[0]
        number, batch = first_stop.batch.number, first_stop.batch
        open_batches = [stop.batch for stop in stops] + requeued
        for unsettled in open_batches:  # the open batches count too: what is known of them is exact
            self.counts.update(Counter(outcome.outcome for outcome in unsettled.known()))
            for outcome in unsettled.known():
                if outcome.outcome is Outcome.REFUSED and len(self.rejections) < MAX_REPORTED_IDS:
                    self.rejections.append(Rejection.from_outcome(outcome))
        first = (number - 1) * self.batch_size + 1
        last = first + len(batch.ids) - 1
        known = sum(self.counts.values())
        not_attempted = self.total_ids - known
        open_batches.sort(key=lambda unsettled: unsettled.number)
        open_numbers = {unsettled.number for unsettled in open_batches}
        finished = spans(self.settled_numbers) or "no batch finished"
        for unsettled in open_batches:
            done_in_batch = sum(1 for o in unsettled.known() if o.outcome is Outcome.CANCELLED)
            if done_in_batch:
                finished += f", plus {done_in_batch} of batch {unsettled.number}"
        untried = [
            f"{len(unsettled.ids) - len(unsettled.outcomes)} more of batch {unsettled.number}"
            for unsettled in open_batches
            if len(unsettled.ids) > len(unsettled.outcomes)
        ]
        never = set(range(1, self.total_batches + 1)) - self.settled_numbers - open_numbers
        untried += [spans(never)] if never else []
        already = self.counts[Outcome.ALREADY_CANCELLED]
        rejected = f" ({describe_rejections(self.rejections, self.rejected)})" if self.rejected else ""
        message = (
            f"Stopped at batch {number}/{self.total_batches} ({self.field} {first}-{last} of {self.total_ids}): "
            f"{first_stop.error}. {self.done} {self.done_label} ({finished})"
            f"{f', {already} already cancelled' if already else ''}; {self.rejected} rejected{rejected}; "
            f"{self.counts[Outcome.UNCONFIRMED]} unconfirmed (sent in the failed request, which may or may not "
            f"have been applied); {not_attempted} not attempted ({' and '.join(untried) or 'none'}). "
            f"The summary is in XCom under key {SUMMARY_XCOM_KEY!r}."
        )
        details = {
            "error": str(first_stop.error),
            "failed_batch": number,
            "failed_range": [first, last],
            "unconfirmed": self.counts[Outcome.UNCONFIRMED],
            "not_attempted": not_attempted,
        }
        return BatchRunFailed(message, details)
