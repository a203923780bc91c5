"""BatchRunner against an in-memory vendor: outcomes, reconciliation, lost answers, AIMD, concurrency, stops."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from airflow_provider_rewards.exceptions import BatchRunFailed, RewardsApiError
from airflow_provider_rewards.utils.batching import BatchRunner, ReadBack, spans
from airflow_provider_rewards.utils.record import IdOutcome, Outcome

log = logging.getLogger("test_batching")
IDS = [f"id-{n:03d}" for n in range(50)]


def api_error(status: int | None, code: str | None = None, message: str = "refused") -> RewardsApiError:
    return RewardsApiError(
        vendor="HPGames",
        method="POST",
        path="/bulkCancel",
        status_code=status,
        vendor_code=code,
        vendor_message=message,
    )


class FakeVendor:
    """bulkCancel all or nothing, like the sandbox: ``refuse(ids)`` may return an error to raise instead.

    ``already_refused``: a batch holding a cancelled id is refused whole with 409 1010 (the stricter vendor).
    """

    def __init__(
        self,
        *,
        cancelled: set[str] | None = None,
        already_refused: bool = True,
        refuse: Callable[[list[str]], RewardsApiError | None] = lambda ids: None,
        delay: Callable[[list[str]], float] = lambda ids: 0.0,
        read_back_reason: str | None = None,
    ) -> None:
        self.cancelled = set(cancelled or ())
        self.already_refused = already_refused
        self.refuse = refuse
        self.delay = delay
        self.read_back_reason = read_back_reason
        self.sent: list[list[str]] = []
        self.reads = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def send(self, ids: list[str]) -> None:
        with self.lock:
            self.sent.append(list(ids))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay(ids))
            error = self.refuse(ids)
            if error is not None:
                raise error
            if self.already_refused and self.cancelled & set(ids):
                raise api_error(409, "1010", "reward already cancelled")
            self.cancelled |= set(ids)
        finally:
            with self.lock:
                self.in_flight -= 1

    def read_back(self, ids: list[str]) -> ReadBack:
        """With ``read_back_reason`` (external ids, readAll without ``externalId``) the read shows none of them."""
        self.reads += 1
        if self.read_back_reason:
            return ReadBack(frozenset(), self.read_back_reason)
        return ReadBack(frozenset(item for item in ids if item in self.cancelled))


class Checkpoints:
    """What the runner reported: settled batches (with outcomes) and open ones."""

    def __init__(self) -> None:
        self.settled: dict[int, list[IdOutcome]] = {}
        self.open: dict[int, list[IdOutcome]] = {}
        self.settle_order: list[int] = []

    def settle(self, number: int, outcomes: list[IdOutcome]) -> None:
        assert number not in self.settled, f"batch {number} settled twice"
        self.settled[number] = outcomes
        self.settle_order.append(number)

    def note_open(self, number: int, outcomes: list[IdOutcome]) -> None:
        self.open[number] = outcomes

    def outcomes(self) -> dict[str, Outcome]:
        return {o.id: o.outcome for batch in self.settled.values() for o in batch}


def make_runner(vendor: FakeVendor, checkpoints: Checkpoints, **kwargs) -> BatchRunner:
    options = {
        "field": "reward_ids",
        "batch_size": 10,
        "isolate_rejections": True,
        "done_label": "cancelled",
        "log": log,
        "read_back": vendor.read_back,
        "on_settled": checkpoints.settle,
        "on_open": checkpoints.note_open,
        **kwargs,
    }
    return BatchRunner(vendor.send, **options)


def test_spans_compress_batch_numbers():
    assert spans([5, 1, 2, 3, 7, 8]) == "batches 1-3, batch 5, batches 7-8"
    assert spans([]) == ""


def test_a_lost_answer_read_back_as_cancelled_lets_the_run_go_on():
    lost = {"done": False}

    def refuse(ids: list[str]) -> RewardsApiError | None:
        if IDS[10] in ids and not lost["done"]:
            lost["done"] = True
            vendor.cancelled |= set(ids)  # applied, then the connection dropped
            return api_error(None, message="ConnectionError: connection reset")
        return None

    vendor = FakeVendor(refuse=refuse)
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints)
    runner.run(IDS)
    outcomes = checkpoints.outcomes()
    assert [outcomes[item] for item in IDS[10:20]] == [Outcome.ALREADY_CANCELLED] * 10
    assert runner.counts == Counter({Outcome.CANCELLED: 40, Outcome.ALREADY_CANCELLED: 10})
    assert (len(vendor.sent), vendor.reads) == (5, 1)
    assert "connection reset" in checkpoints.settled[2][0].message


def test_a_failure_no_read_back_settles_stops_with_the_batch_unconfirmed():
    vendor = FakeVendor(refuse=lambda ids: api_error(503, message="down") if IDS[20] in ids else None)
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints)
    with pytest.raises(BatchRunFailed) as info:
        runner.run(IDS)
    assert sorted(checkpoints.settled) == [1, 2]
    assert {o.outcome for o in checkpoints.open[3]} == {Outcome.UNCONFIRMED}
    assert len(checkpoints.open[3]) == 10
    assert "20 cancelled (batches 1-2); 0 rejected; 10 unconfirmed" in str(info.value)
    assert "20 not attempted (batches 4-5)" in str(info.value)
    assert info.value.details["failed_batch"] == 3


def test_a_200_with_an_error_code_is_isolated_like_a_4xx():
    bad = IDS[4]
    vendor = FakeVendor(refuse=lambda ids: api_error(200, "1004", "Reward not found") if bad in ids else None)
    checkpoints = Checkpoints()
    make_runner(vendor, checkpoints).run(IDS[:10])
    refused = [o for o in checkpoints.settled[1] if o.outcome is Outcome.REFUSED]
    assert refused == [IdOutcome(bad, Outcome.REFUSED, 200, "1004", "Reward not found")]


def test_a_batch_refused_whole_for_cancelled_ids_is_read_back_once_not_split():
    vendor = FakeVendor(cancelled={IDS[2], IDS[7]})
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints)
    runner.run(IDS[:10])
    assert vendor.sent == [IDS[:10], [item for item in IDS[:10] if item not in (IDS[2], IDS[7])]]
    assert vendor.reads == 1
    assert runner.counts == Counter({Outcome.CANCELLED: 8, Outcome.ALREADY_CANCELLED: 2})


def test_the_wrong_request_probe_still_stops_when_the_read_back_finds_nothing():
    vendor = FakeVendor(refuse=lambda ids: api_error(404, "1404", "No route"))
    checkpoints = Checkpoints()
    with pytest.raises(BatchRunFailed, match="the request itself is wrong"):
        make_runner(vendor, checkpoints).run(IDS)
    assert len(vendor.sent) == 3  # the batch, its first and its last id
    assert checkpoints.open == {1: []}  # nothing known: all 10 are not attempted


def test_the_probe_does_not_stop_on_ids_a_read_back_cannot_vouch_for():
    """External ids when readAll carries no externalId: refused ids may simply be cancelled."""
    vendor = FakeVendor(
        refuse=lambda ids: api_error(409, "1010", "reward already cancelled"), read_back_reason="no externalId"
    )
    checkpoints = Checkpoints()
    make_runner(vendor, checkpoints).run(IDS[:4])
    outcomes = checkpoints.settled[1]
    assert {o.outcome for o in outcomes} == {Outcome.REFUSED}
    assert all("no externalId" in o.message for o in outcomes)


def already_cancelled_code(error: Exception) -> bool:
    """The connection's ``already_cancelled_codes`` set to the fake vendor's code, 1010."""
    return isinstance(error, RewardsApiError) and error.vendor_code == "1010"


def test_a_lost_answer_whose_resend_is_refused_settles_by_the_already_cancelled_code():
    """External ids, readAll without externalId: the first send was applied and its answer lost, the resend
    refused whole; split down to single ids, each refused with 1010 is already cancelled, without more reads."""
    vendor = FakeVendor(cancelled=set(IDS[:4]), read_back_reason="no externalId")
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, means_already_cancelled=already_cancelled_code)
    runner.run(IDS[:4])
    outcomes = checkpoints.settled[1]
    assert [(o.id, o.outcome) for o in outcomes] == [(item, Outcome.ALREADY_CANCELLED) for item in IDS[:4]]
    assert all(
        (o.status_code, o.vendor_code) == (409, "1010") and "already_cancelled_codes" in o.message for o in outcomes
    )
    assert vendor.reads == 1  # the batch's one read-back; single ids settle by their code
    # the batch, its first id alone (the probe), then the other three halved: 1, and 2 refused and split
    assert [len(sent) for sent in vendor.sent] == [4, 1, 1, 2, 1, 1]
    assert runner.counts == Counter({Outcome.ALREADY_CANCELLED: 4})


def test_only_a_single_id_refusal_settles_by_code_the_rest_is_still_sent():
    vendor = FakeVendor(cancelled={IDS[5]}, read_back_reason="no externalId")
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, means_already_cancelled=already_cancelled_code)
    runner.run(IDS[:10])
    outcomes = {o.id: o.outcome for o in checkpoints.settled[1]}
    assert outcomes.pop(IDS[5]) is Outcome.ALREADY_CANCELLED
    assert set(outcomes.values()) == {Outcome.CANCELLED}
    assert vendor.cancelled == set(IDS[:10])


def test_a_code_not_configured_to_mean_cancelled_stays_refused():
    vendor = FakeVendor(refuse=lambda ids: api_error(409, "1011", "reward is CLOSED") if IDS[3] in ids else None)
    checkpoints = Checkpoints()
    make_runner(vendor, checkpoints, means_already_cancelled=already_cancelled_code).run(IDS[:10])
    refused = [o for o in checkpoints.settled[1] if o.outcome is not Outcome.CANCELLED]
    assert refused == [IdOutcome(IDS[3], Outcome.REFUSED, 409, "1011", "reward is CLOSED")]


def test_settled_batches_are_skipped_and_their_counts_restored():
    vendor = FakeVendor()
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints)
    runner.run(
        [(n, IDS[(n - 1) * 10 : n * 10]) for n in range(1, 6)],
        total_ids=50,
        settled={1: Counter({Outcome.CANCELLED: 9, Outcome.REFUSED: 1}), 3: Counter({Outcome.CANCELLED: 10})},
    )
    assert vendor.sent == [IDS[10:20], IDS[30:40], IDS[40:]]
    assert sorted(checkpoints.settled) == [2, 4, 5]
    assert runner.counts == Counter({Outcome.CANCELLED: 49, Outcome.REFUSED: 1})
    assert runner.resumed_batches == 2


def test_concurrent_batches_settle_out_of_order_each_exactly_once():
    vendor = FakeVendor(already_refused=False, delay=lambda ids: 0.05 if IDS[0] in ids else 0.01)
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, max_concurrency=4)
    runner.run(IDS)
    assert sorted(checkpoints.settled) == [1, 2, 3, 4, 5]
    assert checkpoints.settle_order[0] != 1  # batch 1 was slow: others settled first
    assert 1 < vendor.most_in_flight <= 4
    assert runner.counts == Counter({Outcome.CANCELLED: 50})


def test_a_stop_waits_for_the_batches_in_flight_and_settles_them():
    vendor = FakeVendor(
        refuse=lambda ids: api_error(401, "1001", "bad signature") if IDS[10] in ids else None,
        delay=lambda ids: 0.0 if IDS[10] in ids else 0.1,
    )
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, max_concurrency=3)
    with pytest.raises(BatchRunFailed) as info:
        runner.run(IDS)
    assert sorted(checkpoints.settled) == [1, 3]  # in flight with batch 2: finished and checkpointed
    assert list(checkpoints.open) == [2]
    assert {ids[0] for ids in vendor.sent} == {IDS[0], IDS[10], IDS[20]}  # nothing submitted after the stop
    assert "20 cancelled (batch 1, batch 3)" in str(info.value)
    assert "20 not attempted (batches 4-5)" in str(info.value)


def test_aimd_halves_on_a_throttle_and_grows_back_after_clean_batches():
    throttles = {"count": 0}

    def refuse(ids: list[str]) -> None:
        if IDS[20] in ids:
            throttles["count"] += 1  # the transport saw a 429, then its retry went through
        return None

    vendor = FakeVendor(refuse=refuse, delay=lambda ids: 0.02)
    windows: list[int] = []
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, max_concurrency=4, throttle_count=lambda: throttles["count"])
    runner.on_settled = lambda number, outcomes: (checkpoints.settle(number, outcomes), windows.append(runner.window))
    runner.run(IDS * 1 + [f"x-{n}" for n in range(50)])
    assert runner.counts[Outcome.CANCELLED] == 100
    assert min(windows) < 4  # halved once the throttled batch settled
    assert runner.window == 4  # then raised by one per clean batch, back to the maximum


def test_a_429_that_outlasts_the_retries_sends_the_batch_again_at_half_the_window():
    throttled = {"left": 1}

    def refuse(ids: list[str]) -> RewardsApiError | None:
        if IDS[10] in ids and throttled["left"]:
            throttled["left"] -= 1
            return api_error(429, message="Too Many Requests")
        return None

    vendor = FakeVendor(refuse=refuse)
    checkpoints = Checkpoints()
    runner = make_runner(vendor, checkpoints, max_concurrency=2)
    runner.run(IDS)
    assert [batch for batch in vendor.sent if IDS[10] in batch] == [IDS[10:20], IDS[10:20]]
    assert runner.counts == Counter({Outcome.CANCELLED: 50})
    assert vendor.reads == 0  # nothing to reconcile: a 429 applied nothing and the resend was accepted


def test_max_concurrency_is_bounded():
    with pytest.raises(ValueError, match="max_concurrency must be 1 to 16"):
        make_runner(FakeVendor(), Checkpoints(), max_concurrency=17)


class Interrupted(BaseException):
    """Stands for a signal raised in the main thread (Airflow's task termination)."""


def test_an_interruption_reports_the_batches_in_flight_as_unconfirmed():
    vendor = FakeVendor(delay=lambda ids: 0.3 if IDS[10] in ids else 0.0)
    checkpoints = Checkpoints()

    def settle(number: int, outcomes: list[IdOutcome]) -> None:
        checkpoints.settle(number, outcomes)
        raise Interrupted

    runner = make_runner(vendor, checkpoints, max_concurrency=2)
    runner.on_settled = settle
    with pytest.raises(Interrupted):
        runner.run(IDS)
    assert list(checkpoints.settled) == [1]
    assert [(o.id, o.outcome) for o in checkpoints.open[2]] == [(item, Outcome.UNCONFIRMED) for item in IDS[10:20]]
    assert "interrupted" in checkpoints.open[2][0].message


def test_an_id_refused_while_its_read_back_failed_is_unconfirmed_and_stops_the_run_retryably():
    """Refused, maybe because it is already cancelled, but the read could not tell: never a final 'refused'."""

    class ReadFails(FakeVendor):
        def read_back(self, ids: list[str]) -> ReadBack:
            self.reads += 1
            return ReadBack(frozenset(), "the read-back failed: HTTP 503", failed=True)

    vendor = ReadFails(cancelled={IDS[3]})
    checkpoints = Checkpoints()
    with pytest.raises(BatchRunFailed) as info:
        make_runner(vendor, checkpoints).run(IDS[:20])
    assert not checkpoints.settled  # batch 1 is open: a retry sends it again
    open_outcomes = {o.id: o for o in checkpoints.open[1]}
    assert open_outcomes[IDS[3]].outcome is Outcome.UNCONFIRMED
    assert "the read-back failed: HTTP 503" in open_outcomes[IDS[3]].message
    assert Outcome.REFUSED not in {o.outcome for o in checkpoints.open[1]}
    assert info.value.details["failed_batch"] == 1
