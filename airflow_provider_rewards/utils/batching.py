"""The batch engine: send ids in batches through one callable, isolate refused ids, keep exact counts.

Splitting, probing and stop rules are described on :class:`BatchRunner`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeVar

from airflow_provider_rewards.exceptions import BatchRunFailed, RewardsApiError, RewardsError

T = TypeVar("T")
SUMMARY_XCOM_KEY = "summary"
ITEM_REJECTION_STATUSES = frozenset({400, 404, 409, 410, 422})
TOO_LARGE_STATUS = 413
MAX_REPORTED_IDS = 100
MAX_IDS_IN_MESSAGE = 20


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def count_batches(total: int, size: int) -> int:
    """How many batches of at most ``size`` items ``total`` items make."""
    return -(-total // size)


def span(first: int, last: int) -> str:
    """``"batch 3"`` or ``"batches 3-5"``; empty when ``first > last``."""
    if first > last:
        return ""
    return f"batch {first}" if first == last else f"batches {first}-{last}"


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
    def from_error(cls, item: str, error: RewardsApiError) -> Rejection:
        """The rejection of ``item`` as the API's error describes it."""
        return cls(item, error.status_code, error.vendor_code, error.vendor_message)

    def as_dict(self) -> dict[str, Any]:
        """The XCom-safe form reported in summaries."""
        return asdict(self)

    def describe(self) -> str:
        """``<id> (HTTP <status> <vendor code>)`` for messages."""
        detail = " ".join(part for part in (f"HTTP {self.status_code}", self.vendor_code) if part)
        return f"{self.id} ({detail})"


def describe_rejections(rejections: Sequence[Rejection]) -> str:
    """The first rejected ids with status and vendor code, and how many more there are."""
    shown = ", ".join(rejection.describe() for rejection in rejections[:MAX_IDS_IN_MESSAGE])
    more = len(rejections) - MAX_IDS_IN_MESSAGE
    return f"{shown} and {more} more" if more > 0 else shown


def same_refusal(error: Exception, other: Exception) -> bool:
    """True when both are API errors with the same status and vendor code."""
    if not isinstance(error, RewardsApiError) or not isinstance(other, RewardsApiError):
        return False
    return (error.status_code, error.vendor_code) == (other.status_code, other.vendor_code)


class _RequestFailed(Exception):
    """Internal: a request failed in a way that stops the run; ``ids`` are those it may have applied."""

    def __init__(self, ids: list[str], error: Exception) -> None:
        super().__init__(str(error))
        self.ids = ids
        self.error = error


class BatchRunner:
    """Send ids in batches through ``send``, isolating refused ids, with exact counts.

    A batch refused for something about its items (400, 404, 409, 410, 422) is halved recursively
    until the refused ids are found. Until a request of the run succeeds, the first and last ids are
    first sent alone: if both fail as the batch did, the request itself is wrong and the run stops.
    413 splits without blaming an id. Anything else stops the run with an exact report.

    :param send: makes one API call for a list of ids (raises ``RewardsApiError`` on failure).
    :param field: the operator argument the ids came from, for messages (``reward_ids``).
    :param batch_size: ids per batch.
    :param isolate_rejections: split refused batches to find refused single ids (bulk cancel);
        when False, a refusal stops the run (cancel by query, where a refusal is about the request).
    :param done_label: how progress lines name finished ids (``"cancelled"``).
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
    ) -> None:
        self.send = send
        self.field = field
        self.batch_size = batch_size
        self.isolate_rejections = isolate_rejections
        self.done_label = done_label
        self.log = log
        self.done = 0
        self.requests = 0
        self.request_works = False  # True once any request of this run succeeded
        self.rejections: list[Rejection] = []

    def run(self, ids: Sequence[str]) -> None:
        """Send every batch; raise :class:`BatchRunFailed` at the first failure that is not about an id."""
        total = count_batches(len(ids), self.batch_size)  # batches are sliced one at a time, not all up front
        for number, batch in enumerate(chunks(ids, self.batch_size), 1):
            done_before, rejected_before = self.done, len(self.rejections)
            try:
                self._send(list(batch))
            except _RequestFailed as failed:
                raise self._failure(ids, number, total, len(batch), done_before, rejected_before, failed) from (
                    failed.error
                )
            rejected = len(self.rejections) - rejected_before
            self.log.info(
                "batch %d/%d (%d%%): %d %s%s",
                number,
                total,
                number * 100 // total,
                self.done - done_before,
                self.done_label,
                f", {rejected} rejected" if rejected else "",
            )

    def _attempt(self, ids: list[str]) -> Exception | None:
        """One request; ``None`` when it succeeded (counted as done), else its error."""
        self.requests += 1
        try:
            self.send(ids)
        except Exception as error:  # classified by the caller; anything unexpected stops with an exact report
            return error
        self.done += len(ids)
        self.request_works = True
        return None

    def _send(self, ids: list[str]) -> None:
        error = self._attempt(ids)
        if error is None:
            return
        verdict = self._classify(error, len(ids))
        if verdict is BatchVerdict.STOP:
            raise _RequestFailed(ids, error) from error
        if verdict is BatchVerdict.REJECT:
            self._reject(ids[0], error)
            return
        if isinstance(error, RewardsApiError) and error.status_code == TOO_LARGE_STATUS:
            self.log.warning("%d %s were too large for one request (HTTP 413); splitting", len(ids), self.field)
        elif not self.request_works:
            self._probe(ids, error)
            return
        else:
            self.log.debug("%d %s refused together (%s); splitting them", len(ids), self.field, error)
        self._halve(ids)

    def _probe(self, ids: list[str], batch_error: Exception) -> None:
        """Send the first and last id alone; stop if both fail exactly as the batch did, else go on with the rest."""
        probes = [ids[0], ids[-1]]
        refused: list[tuple[str, Exception]] = []
        for probe in probes:
            error = self._attempt([probe])
            if error is None:
                break
            if self._classify(error, 1) is BatchVerdict.STOP:
                raise _RequestFailed([probe], error) from error
            refused.append((probe, error))
        if len(refused) == 2 and all(same_refusal(error, batch_error) for _, error in refused):
            problem = RewardsError(
                f"{batch_error}; the first and the last id sent alone were refused the same way, so the request "
                "itself is wrong (base URL, signature or merchant), not its ids"
            )
            raise _RequestFailed([], problem) from batch_error
        for probe, error in refused:
            self._reject(probe, error)
        if refused:  # the refused probes may have been the only refused ids: send the rest whole
            if len(ids) > 2:
                self._send(ids[1:-1])
        else:  # the first id went through: the refused ones are among the rest
            self._halve(ids[1:])

    def _halve(self, ids: list[str]) -> None:
        half = len(ids) // 2
        for part in (ids[:half], ids[half:]):
            if part:
                self._send(part)

    def _reject(self, item: str, error: Exception) -> None:
        rejection = Rejection.from_error(item, error)  # type: ignore[arg-type]  # classified as an API error
        self.rejections.append(rejection)
        self.log.warning("%s rejected: %s: %s", self.field, rejection.describe(), rejection.vendor_message)

    def _classify(self, error: Exception, size: int) -> BatchVerdict:
        """Split the request, reject its single id, or stop the run."""
        status = error.status_code if isinstance(error, RewardsApiError) else None
        if status == TOO_LARGE_STATUS and size > 1:
            return BatchVerdict.SPLIT
        if self.isolate_rejections and status in ITEM_REJECTION_STATUSES:
            return BatchVerdict.SPLIT if size > 1 else BatchVerdict.REJECT
        return BatchVerdict.STOP

    def _failure(
        self,
        ids: Sequence[str],
        number: int,
        total_batches: int,
        batch_length: int,
        done_before: int,
        rejected_before: int,
        failed: _RequestFailed,
    ) -> BatchRunFailed:
        first = (number - 1) * self.batch_size + 1
        last = first + batch_length - 1
        done_in_batch = self.done - done_before
        rejected_in_batch = len(self.rejections) - rejected_before
        unconfirmed = len(failed.ids)
        rest_of_batch = batch_length - done_in_batch - rejected_in_batch - unconfirmed
        not_attempted = rest_of_batch + len(ids) - last
        finished = span(1, number - 1) or "no batch finished"
        if done_in_batch:
            finished += f", plus {done_in_batch} of batch {number}"
        untried = [f"{rest_of_batch} more of batch {number}"] if rest_of_batch else []
        untried += [span(number + 1, total_batches)] if number < total_batches else []
        rejected = f" ({describe_rejections(self.rejections)})" if self.rejections else ""
        message = (
            f"Stopped at batch {number}/{total_batches} ({self.field} {first}-{last} of {len(ids)}): "
            f"{failed.error}. {self.done} {self.done_label} ({finished}); {len(self.rejections)} rejected{rejected}; "
            f"{unconfirmed} unconfirmed (sent in the failed request, which may or may not have been applied); "
            f"{not_attempted} not attempted ({' and '.join(untried) or 'none'}). "
            f"The summary is in XCom under key {SUMMARY_XCOM_KEY!r}."
        )
        details = {
            "error": str(failed.error),
            "failed_batch": number,
            "failed_range": [first, last],
            "unconfirmed": unconfirmed,
            "not_attempted": not_attempted,
        }
        return BatchRunFailed(message, details)
