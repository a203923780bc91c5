from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time

import httpx
import pytest

from airflow_provider_rewards.exceptions import RewardsConnectionConfigError
from airflow_provider_rewards.hooks import rate_limit
from airflow_provider_rewards.hooks.rate_limit import (
    AsyncRateLimiter,
    CredentialPaused,
    RateBudget,
    SyncRateLimiter,
    credential_key,
    reset_sync_limiters,
    shared_async_client,
    shared_limiter,
    sync_limiter,
)
from tests.conftest import THANX_CLIENT_ID, THANX_TOKEN, THANX_URL, FakeClock

NO_LIMIT = RateBudget(max_requests_per_second=0, max_requests_per_window=0)


def grant_times(budget: RateBudget, count: int, penalty: float = 0.0) -> list[float]:
    clock = FakeClock()
    limiter = SyncRateLimiter(budget, clock=clock)
    limiter.sleep = clock.sleep
    limiter.penalize(penalty)
    times = []
    for _ in range(count):
        limiter.acquire()
        times.append(clock.now - 100.0)
    return times


def most_in_any_window(times: list[float], span: float) -> int:
    """Most grants in any half-open interval [t, t + span)."""
    return max(sum(start <= t < start + span - 1e-9 for t in times) for start in times)


def test_defaults_respect_the_published_thanx_limits():
    budget = RateBudget.from_extra({"unrelated": "x", "window_seconds": ""})
    assert budget == RateBudget(4.0, 1800, 900.0, 1)
    times = grant_times(budget, 1801)
    assert most_in_any_window(times[:9], 1.0) == 4
    assert times[1800] == pytest.approx(900.0)  # the 1,801st waits for the first to leave the 15-minute window


def test_extra_values_are_read_and_divided_between_triggerers():
    budget = RateBudget.from_extra(
        {"max_requests_per_second": "2", "max_requests_per_window": 100, "window_seconds": 60, "triggerer_count": "4"}
    )
    assert budget == RateBudget(2.0, 100, 60.0, 4)
    times = grant_times(budget, 26)
    assert times[:3] == [0.0, 2.0, 4.0]  # 2/s shared by 4 triggerers: one request every 2 s here
    assert times[25] == pytest.approx(60.0)  # 100 per window shared by 4: the 26th waits for the window


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_requests_per_second", -1),
        ("max_requests_per_second", math.nan),
        ("max_requests_per_second", "inf"),
        ("max_requests_per_second", "fast"),
        ("max_requests_per_window", 10.5),
        ("max_requests_per_window", True),
        ("window_seconds", [900]),
        ("triggerer_count", 0),
    ],
)
def test_invalid_extra_value_names_the_field(name, value):
    with pytest.raises(RewardsConnectionConfigError, match=rf"'thanx_default', field extra\.{name}: must be"):
        RateBudget.from_extra({name: value}, "thanx_default")


def test_per_second_rate_is_never_exceeded():
    times = grant_times(RateBudget(max_requests_per_second=4, max_requests_per_window=0), 20)
    assert most_in_any_window(times, 1.0) == 4
    assert times[-1] == pytest.approx(19 * 0.25)


def test_window_limit_is_never_exceeded():
    times = grant_times(RateBudget(max_requests_per_second=0, max_requests_per_window=5, window_seconds=10), 12)
    assert most_in_any_window(times, 10.0) == 5
    assert times == [0.0] * 5 + [10.0] * 5 + [20.0] * 2


def test_zero_disables_both_limits():
    assert grant_times(NO_LIMIT, 500) == [0.0] * 500


def test_penalty_pauses_then_resumes_at_the_normal_rate():
    times = grant_times(RateBudget(max_requests_per_second=2, max_requests_per_window=0), 3, penalty=3.0)
    assert times == pytest.approx([3.0, 3.5, 4.0])


def test_sync_limiter_spaces_requests_from_several_threads():
    limiter = SyncRateLimiter(RateBudget(max_requests_per_second=200, max_requests_per_window=100, window_seconds=10))
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2)
    grants = list(limiter._grants)
    assert len(grants) == 20
    assert min(b - a for a, b in itertools.pairwise(grants)) >= 0.005 - 1e-6
    assert time.monotonic() - start >= 19 * 0.005


def test_a_pause_longer_than_the_caller_allows_raises_and_grants_nothing():
    clock = FakeClock()
    limiter = SyncRateLimiter(RateBudget(max_requests_per_second=2, max_requests_per_window=0), clock=clock)
    limiter.sleep = clock.sleep
    limiter.penalize(3)
    with pytest.raises(CredentialPaused, match=r"paused for another 3\.0s after a 429") as info:
        limiter.acquire(max_pause=2)
    assert info.value.seconds == 3
    assert (clock.now, list(limiter._grants)) == (100.0, [])  # neither waited nor granted
    limiter.acquire(max_pause=3)  # a pause within what the caller allows is waited out
    assert clock.now == 103.0


@pytest.mark.parametrize(("max_pause", "granted_at"), [(math.inf, 105.0), (3.0, None)])
def test_a_pause_another_thread_sets_while_this_one_waits_is_honoured(max_pause, granted_at):
    """The fake clock moves only in sleeps, so the clock after ``acquire`` is the grant's time."""
    clock = FakeClock()
    limiter = SyncRateLimiter(RateBudget(max_requests_per_second=1, max_requests_per_window=0), clock=clock)

    def sleep_while_another_thread_gets_a_429(seconds: float) -> None:
        if not limiter.paused_for():
            limiter.penalize(5)  # at 100, while this thread waits for its 1 s slot
        clock.sleep(seconds)

    limiter.sleep = sleep_while_another_thread_gets_a_429
    limiter.acquire()  # the slot at 100
    if granted_at is None:
        with pytest.raises(CredentialPaused, match=r"another 4\.0s"):
            limiter.acquire(max_pause=max_pause)
        assert clock.now == 101.0  # woke from the 1 s slot wait, then refused the 4 s left of the pause
    else:
        limiter.acquire(max_pause=max_pause)
        assert clock.now == granted_at  # the slot (101) was not enough: it also waited out the pause


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_invalid_penalty_is_refused(seconds):
    with pytest.raises(ValueError, match="penalty must be"):
        SyncRateLimiter(NO_LIMIT).penalize(seconds)


async def grant_order(limiter: AsyncRateLimiter, dues: dict[str, float | None]) -> list[str]:
    order: list[str] = []

    async def wait(name: str, due_at: float | None) -> None:
        await limiter.acquire(due_at)
        order.append(name)

    await limiter.acquire()  # occupy the first slot, so that every waiter below has to queue
    await asyncio.gather(*(wait(name, due) for name, due in dues.items()))
    return order


async def test_async_waiters_are_spaced_by_the_rate():
    limiter = AsyncRateLimiter(RateBudget(max_requests_per_second=20, max_requests_per_window=0))
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(8)))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05 - 0.002
    assert times[-1] - times[0] < 7 * 0.05 + 1.0  # no idle slots; generous for a loaded CI machine


async def test_async_waiters_are_served_oldest_due_first_fifo_on_ties():
    limiter = AsyncRateLimiter(RateBudget(max_requests_per_second=50, max_requests_per_window=0))
    now = limiter.clock()
    dues = {"late": now - 1, "oldest": now - 9, "tie-first": now - 5, "tie-second": now - 5, "now": None}
    assert await grant_order(limiter, dues) == ["oldest", "tie-first", "tie-second", "late", "now"]


async def test_async_waiter_is_not_served_before_it_is_due():
    limiter = AsyncRateLimiter(NO_LIMIT)
    now = limiter.clock()
    assert await grant_order(limiter, {"later": now + 0.15, "sooner": now + 0.05, "due": None}) == [
        "due",
        "sooner",
        "later",
    ]
    assert limiter.clock() - now >= 0.15


async def test_async_penalty_delays_every_waiter_then_resumes():
    limiter = AsyncRateLimiter(NO_LIMIT)
    start = limiter.clock()
    limiter.penalize(0.2)
    await asyncio.gather(limiter.acquire(), limiter.acquire())
    assert limiter.clock() - start >= 0.2
    resumed = limiter.clock()
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert limiter.clock() - resumed < 0.5  # no spacing left once the pause is over (NO_LIMIT)


async def test_cancelled_waiter_neither_wedges_the_queue_nor_keeps_a_slot():
    limiter = AsyncRateLimiter(RateBudget(max_requests_per_second=2, max_requests_per_window=0))
    await limiter.acquire()
    first, doomed, last = (asyncio.create_task(limiter.acquire()) for _ in range(3))
    await asyncio.sleep(0)
    doomed.cancel()
    start = limiter.clock()
    await asyncio.wait_for(asyncio.gather(first, last), timeout=3)
    assert limiter.clock() - start < 1.4  # two slots of 0.5 s, not three
    assert doomed.cancelled()
    assert limiter._heap == []


async def test_waiter_cancelled_right_after_its_grant_refunds_the_slot(monkeypatch):
    limiter = AsyncRateLimiter(RateBudget(max_requests_per_second=0, max_requests_per_window=1, window_seconds=5))
    refunds: list[float] = []
    refund = limiter.refund
    monkeypatch.setattr(limiter, "refund", lambda at: (refunds.append(at), refund(at)))
    later = asyncio.create_task(limiter.acquire(limiter.clock() + 30))  # keeps the queue non-empty
    granted = asyncio.create_task(limiter.acquire())
    for _ in range(2):  # the waiter queues, then the dispatcher grants it; the waiter has not resumed yet
        await asyncio.sleep(0)
    granted.cancel()
    await asyncio.wait_for(limiter.acquire(), timeout=1)  # would wait 5 s if the slot had leaked
    assert granted.cancelled()
    assert len(refunds) == 1
    later.cancel()


async def test_free_slot_with_nobody_queued_is_taken_without_queueing():
    limiter = AsyncRateLimiter(RateBudget(max_requests_per_second=1, max_requests_per_window=0))
    await limiter.acquire()
    assert limiter._dispatcher is None  # granted on the spot
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not second.done()
    assert len(limiter._heap) == 1  # no free slot: it queues
    await asyncio.wait_for(second, timeout=5)


async def test_shared_limiter_is_one_per_credential_and_follows_budget_changes():
    key = credential_key(THANX_URL, THANX_CLIENT_ID)
    first = shared_limiter(key, RateBudget())
    assert shared_limiter(key, NO_LIMIT) is first
    assert first.budget == NO_LIMIT
    assert shared_limiter(credential_key(THANX_URL, "another-client"), RateBudget()) is not first


async def test_shared_client_is_one_object_closed_after_its_last_user():
    built: list[httpx.AsyncClient] = []

    def factory() -> httpx.AsyncClient:
        built.append(httpx.AsyncClient())
        return built[-1]

    key = credential_key(THANX_URL, THANX_CLIENT_ID)
    async with shared_async_client(key, factory) as one:
        async with shared_async_client(key, factory) as two:
            assert one is two
        assert not one.is_closed
    assert one.is_closed
    assert len(built) == 1
    async with shared_async_client(key, factory) as three:
        assert three is not one
        assert not three.is_closed


async def test_registry_keys_never_hold_the_secret():
    key = credential_key(f"{THANX_URL}/", THANX_CLIENT_ID)
    assert key == credential_key(THANX_URL, THANX_CLIENT_ID)
    shared_limiter(key, RateBudget())
    async with shared_async_client(key, httpx.AsyncClient):
        registry = [*rate_limit._limiters.values(), *rate_limit._clients.values()]
        assert all(THANX_TOKEN not in name and THANX_CLIENT_ID not in name for table in registry for name in table)


@pytest.mark.parametrize(
    ("budget", "limited", "pool"),
    [
        (RateBudget(), True, 4),  # 4/s
        (RateBudget(max_requests_per_second=6.5), True, 7),  # one connection per request/s
        (RateBudget(max_requests_per_second=1), True, 4),  # at least 4
        (RateBudget(max_requests_per_second=100), True, 8),  # at most 8
        (RateBudget(max_requests_per_second=24, triggerer_count=4), True, 6),  # this triggerer's share: 6/s
        (RateBudget(max_requests_per_second=0), True, 8),  # a window alone still limits
        (NO_LIMIT, False, 8),
    ],
)
def test_limited_and_pool_size_follow_the_budget(budget, limited, pool):
    assert (budget.limited, budget.pool_size) == (limited, pool)


def test_sync_limiter_is_one_per_credential_per_process_and_reset_forgets_it():
    reset_sync_limiters()
    key = credential_key(THANX_URL, THANX_CLIENT_ID)
    first = sync_limiter(key, RateBudget())
    assert sync_limiter(key, NO_LIMIT) is first
    assert first.budget == NO_LIMIT
    assert sync_limiter(credential_key(THANX_URL, "another-client"), RateBudget()) is not first
    reset_sync_limiters()
    assert sync_limiter(key, RateBudget()) is not first


async def test_a_penalty_shows_in_paused_for_and_requests_in_flight_are_capped_at_the_pool_size():
    limiter = AsyncRateLimiter(NO_LIMIT)
    assert limiter.paused_for() == 0
    limiter.penalize(900)
    assert 899 < limiter.paused_for() <= 900
    assert limiter.in_flight._value == NO_LIMIT.pool_size
