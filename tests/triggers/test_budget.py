"""Many triggers in one event loop against the sandbox's rate limiter: one budget per credential."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from airflow_provider_rewards.hooks import rate_limit
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger

BUDGET = {"max_requests_per_second": 40, "max_requests_per_window": 250, "window_seconds": 10}
SANDBOX_LIMIT = "50/s,300/10s"  # the vendor's limits; the budget stays under both


def most_within(times: list[float], span: float) -> int:
    """Most entries in any interval [t, t + span)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - span:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def clients_built(monkeypatch):
    """Every ``httpx.AsyncClient`` the triggers built (the shared client of each credential)."""
    built = []
    original = ThanxIssuanceJobTrigger._client

    def recording(budget):
        built.append(original(budget))
        return built[-1]

    monkeypatch.setattr(ThanxIssuanceJobTrigger, "_client", staticmethod(recording))
    return built


async def test_200_waits_share_one_budget_and_one_client_and_all_see_revoked(budget_rig, clients_built):
    rig = budget_rig(200, BUDGET, rate_limit=SANDBOX_LIMIT)
    started = time.monotonic()
    events = await asyncio.wait_for(rig.wait_all(poll_interval=1.0), timeout=60)
    assert time.monotonic() - started < 45
    assert [[(e["status"], e["job"]["state"]) for e in job_events] for job_events in events] == [
        [("success", "revoked")]
    ] * 200
    log = rig.vendor_log()
    warm = log[0]["at"] + 2.0  # 200 triggers starting at once may bunch their first grants (a loaded loop)
    assert [e for e in log if e["status"] != 200 and e["at"] > warm] == []  # no 429 after warm-up
    times = [e["at"] for e in log if e["status"] == 200]
    assert most_within(times, 1.0) <= 40 + 2  # the budget, give or take the arrival jitter of two requests
    assert most_within(times, 10.0) <= 250 + 2
    assert (len(times) - 1) / (max(times) - min(times)) <= 40
    assert len({e["job"] for e in log[:200]}) >= 199  # oldest due first (a warm-up 429 may repeat one job)
    for job in rig.jobs:
        polls = [e["at"] for e in log if e["job"] == job]
        assert all(b - a >= 1.0 - 0.05 for a, b in itertools.pairwise(polls))  # a minimum interval
    assert len(clients_built) == 1
    assert clients_built[0].is_closed  # by the last trigger to end


async def test_a_429_storm_delays_but_never_fails_the_waits(budget_rig, capfd):
    rig = budget_rig(40, {**BUDGET, "max_retries": 0}, rate_limit=SANDBOX_LIMIT, retry_after_s=1)
    rig.server.set_faults(0.5, seed=15, kinds=["429"])

    async def calm_after(seconds: float) -> None:
        await asyncio.sleep(seconds)
        rig.server.set_faults(0.0)

    calm = asyncio.create_task(calm_after(4.0))
    events = await asyncio.wait_for(rig.wait_all(poll_interval=0.5), timeout=60)
    await calm
    assert {(e["status"], e["job"]["state"]) for job_events in events for e in job_events} == {("success", "revoked")}
    assert all(len(job_events) == 1 for job_events in events)
    log = rig.vendor_log()
    throttled = [e["at"] for e in log if e["status"] == 429]
    assert len(throttled) >= 3
    assert "rate-limited, will poll again" in capfd.readouterr().out  # a 429 outlasted the retries: a delayed poll
    # Each 429 paused the whole credential for its Retry-After (1 s): what follows most of them is a gap.
    after = [min((e["at"] for e in log if e["at"] > at), default=at + 1) - at for at in throttled]
    assert sorted(after)[len(after) // 2] >= 0.8


async def test_retry_after_900_pauses_the_credential_until_the_deadline_ends_every_wait(budget_rig):
    rig = budget_rig(30, {"max_requests_per_second": 0, "max_requests_per_window": 0}, rate_limit="5/s")
    rig.server.set_behaviours(retry_after_override=900)
    started = time.monotonic()
    events = await asyncio.wait_for(rig.wait_all(poll_interval=0.2, end_time=time.time() + 3), timeout=30)
    assert 2.5 <= time.monotonic() - started < 15
    statuses = {e["status"] for job_events in events for e in job_events}
    assert statuses == {"timeout"}  # never "error": the 429s only delayed the polls
    messages = {e["message"].split(" was ")[1] for job_events in events for e in job_events}
    assert messages <= {"still revoking at the deadline", "never read successfully at the deadline"}
    log = rig.vendor_log()
    first_429 = min(e["at"] for e in log if e["status"] == 429)
    assert max(e["at"] for e in log) - first_429 < 0.5  # only requests already on their way; then the pause held


async def test_the_deadline_ends_waits_still_queued_for_the_budget(budget_rig):
    rig = budget_rig(20, {"max_requests_per_second": 2}, revoke_seconds=3600)
    events = await asyncio.wait_for(rig.wait_all(poll_interval=0.1, end_time=time.time() + 2), timeout=30)
    messages = sorted(e["message"].split(" was ")[1] for job_events in events for e in job_events)
    assert {e["status"] for job_events in events for e in job_events} == {"timeout"}
    assert "never read successfully at the deadline" in messages  # still queued at the deadline
    assert "still revoking at the deadline" in messages
    assert len(rig.vendor_log()) <= 2 * 2 + 2  # 2/s for 2 s
    limiter = next(iter(next(iter(rate_limit._limiters.values())).values()))
    assert limiter._heap == []  # the cancelled waiters left no entry behind
