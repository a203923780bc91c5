"""Waiting at scale: K concurrent ``ThanxIssuanceJobTrigger`` runs in one event loop versus ``HttpSensorTrigger``.

Setup: the sandbox runs in its own process, seeded with K (+ warm-up) completed issuance jobs, and
``--revoke-seconds`` long enough that every job still reads ``revoking`` when the run ends. The
parent revokes every job first (``POST .../revoke``, 202 ``revoking``), as the revoke operator does
before it defers.

Each side then runs in a fresh interpreter, one asyncio event loop, the way the triggerer runs
triggers: K trigger instances are created one at a time with ``await asyncio.sleep(0)`` around each
``create_task`` (as ``TriggerRunner.create_triggers`` does), each task consuming ``trigger.run()``.

* ours: ``ThanxIssuanceJobTrigger(job, merchant, poll_interval=P).run()`` (connection
  ``thanx_default`` from ``AIRFLOW_CONN_THANX_DEFAULT``); every poll reads 200 ``revoking``.
* baseline: ``airflow.providers.http.triggers.http.HttpSensorTrigger(endpoint=..., method="GET",
  poke_interval=P)`` on the same endpoint (``GET /partner/issuance_jobs/<id>?merchant_id=``, same
  Thanx headers, an ``http`` connection to the same sandbox). ``HttpSensorTrigger`` waits for "not
  404", so it polls ids that do not exist (yet): every poll is a 404, its only way to keep waiting.
  Its polls go through the same routing, authentication and lookup in the sandbox; the answer is
  smaller than a job, which favours the baseline.

* budgeted: ours again, on connection ``thanx_budgeted`` (the default budget: 4 requests/s and
  1,800 per 900 s), ``--budget-k`` triggers (10,000) on one credential, against the sandbox with
  ``rate_limit`` 5/s,2000/900s (the published Thanx limits) set for this side only. The budget, not
  the poll interval, paces these polls: after a ramp, requests/s and 429s over a steady window come
  from the sandbox's request log. The unbudgeted ``ours`` side (connection extra with both limits 0)
  is the one compared with ``HttpSensorTrigger``.

Measured in the client process only: RSS after every trigger completed ``--settle-polls`` polls
minus RSS before the first was created, per trigger; CPU seconds (``time.process_time()``) over a
steady window divided by the polls completed in it (a poll = one call of
``ThanxHook.aget_issuance_job`` / ``HttpAsyncHook.run``, counted by a thin wrapper applied to both);
event-loop lag as the oversleep of a ticker coroutine (``asyncio.sleep(0.01)``), worst over the
whole run (startup included) and over the steady window. Logs go to a file, as in a triggerer.

Usage: ``python bench/waiting.py [--k 1000] [--budget-k 10000] [--poll-interval S] [--window S]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MERCHANT_ID = "k2lye10h32l5wzo"  # the sandbox demo Thanx merchant and credential (seed.DEMO_THANX_*)
CLIENT_ID = "sandbox_demo_client"
ACCESS_TOKEN = "sandbox_demo_access_token_7f3c9a21"
THANX_HEADERS = {
    "Authorization": f"Bearer {ACCESS_TOKEN}",
    "X-ClientId": CLIENT_ID,
    "Accept-Version": "v4.0",
    "Content-Type": "application/json",
}
WARMUP = 20
TICK = 0.01
TARGET_RSS_KB = 30.0
TARGET_CPU_RATIO = 1.0
TARGET_LAG_MS = 100.0
LAG_TARGET_K = 1000
BUDGET_TARGET_K = 10_000
VENDOR_RATE_LIMIT = "5/s,2000/900s"  # the published Thanx limits, enforced by the sandbox for the budgeted side
UNLIMITED = {"max_requests_per_second": 0, "max_requests_per_window": 0}
EXPERIMENTS = ("gc-freeze", "per-poll-client", "pool-16", "pool-4")


def job_id(index: int) -> str:
    return f"job_{index:06d}"


def warm_job_id(index: int) -> str:
    return f"warm_{index:03d}"


def seed(k: int) -> dict[str, Any]:
    jobs = [job_id(i) for i in range(k)] + [warm_job_id(i) for i in range(WARMUP)]
    return {
        "thanx": {
            "merchants": [{"id": MERCHANT_ID, "name": "Pizza Company", "handle": "pizzacompany"}],
            "credentials": [
                {
                    "client_id": CLIENT_ID,
                    "access_token": ACCESS_TOKEN,
                    "merchant_ids": [MERCHANT_ID],
                    "scopes": ["rewards.issue"],
                }
            ],
            "campaigns": [{"id": "camp_bench", "merchant_id": MERCHANT_ID, "variant_ids": ["var_bench"]}],
            "issuance_jobs": [
                {
                    "id": job,
                    "merchant_id": MERCHANT_ID,
                    "campaign_id": "camp_bench",
                    "variant_id": "var_bench",
                    "state": "completed",
                    "total_count": 100,
                    "created_at": "2025-06-15T10:30:00Z",
                }
                for job in jobs
            ],
        }
    }


# ---------------------------------------------------------------------------------------------
# Child: one event loop, K triggers of one kind
# ---------------------------------------------------------------------------------------------
class Polls:
    """Completed polls, in total and per trigger key; how many triggers reached ``settle`` polls."""

    def __init__(self, settle: int) -> None:
        self.settle = settle
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.per_key: dict[str, int] = {}
        self.first = 0
        self.settled = 0
        self.latencies: list[float] = []

    def done(self, key: str, seconds: float) -> None:
        self.total += 1
        self.latencies.append(seconds)
        count = self.per_key[key] = self.per_key.get(key, 0) + 1
        if count == 1:
            self.first += 1
        if count == self.settle:
            self.settled += 1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Ticker:
    """Oversleep of ``asyncio.sleep(TICK)``, i.e. how long the loop was busy elsewhere, per stage."""

    def __init__(self) -> None:
        self.lags: dict[str, list[float]] = {}
        self.stage = "idle"

    async def run(self) -> None:
        import asyncio

        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.setdefault(self.stage, []).append(time.perf_counter() - before - TICK)

    def summary(self, stage: str) -> dict[str, float]:
        lags = sorted(self.lags.get(stage) or [0.0])
        return {"max_ms": lags[-1] * 1000, "p99_ms": lags[int(len(lags) * 0.99)] * 1000, "ticks": len(lags)}


class GcWatch:
    """Pauses of the cyclic garbage collector (``gc.callbacks``), by generation, per ticker stage."""

    def __init__(self, ticker: Ticker) -> None:
        self.ticker = ticker
        self.started = 0.0
        self.pauses: dict[str, dict[int, list[float]]] = {}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            stage = self.pauses.setdefault(self.ticker.stage, {0: [], 1: [], 2: []})
            stage[info["generation"]].append(time.perf_counter() - self.started)

    def summary(self, stage: str) -> dict[str, Any]:
        pauses = self.pauses.get(stage, {})
        full = pauses.get(2, [])
        young = pauses.get(0, []) + pauses.get(1, [])
        return {
            "gen2_count": len(full),
            "gen2_max_ms": max(full, default=0.0) * 1000,
            "young_max_ms": max(young, default=0.0) * 1000,
        }


def instrument(kind: str, polls: Polls, experiments: list[str] = ()):
    """Count completed polls with the same thin wrapper on both sides; return ``make(key) -> trigger``."""
    poll_interval = float(os.environ["BENCH_POLL_INTERVAL"])
    if kind in ("ours", "budgeted"):
        from airflow_provider_rewards.hooks.thanx import ThanxHook
        from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger

        original = ThanxHook.aget_issuance_job

        async def counted(self, job, *args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(self, job, *args, **kwargs)
            finally:
                polls.done(job, time.perf_counter() - started)

        ThanxHook.aget_issuance_job = counted
        if "per-poll-client" in experiments:
            import httpx

            from airflow_provider_rewards.hooks.transport import ssl_verify

            class PerPollClient:
                """Stands in for the per-run client: every request gets its own AsyncClient, closed at once."""

                async def __aenter__(self) -> PerPollClient:
                    return self

                async def __aexit__(self, *exc_info: object) -> None:
                    return None

                async def request(self, *args: Any, **kwargs: Any) -> httpx.Response:
                    async with httpx.AsyncClient(verify=ssl_verify()) as client:
                        return await client.request(*args, **kwargs)

                async def aclose(self) -> None:
                    return None

            ThanxIssuanceJobTrigger._client = staticmethod(lambda budget: PerPollClient())
        for name in experiments:
            if name.startswith("pool-"):  # another pool size (and in-flight cap) than the budget's
                from airflow_provider_rewards.hooks import rate_limit

                rate_limit.MAX_POOL_SIZE = int(name.removeprefix("pool-"))
        conn_id = "thanx_budgeted" if kind == "budgeted" else "thanx_default"

        def make(key: str):
            return ThanxIssuanceJobTrigger(
                issuance_job_id=key, merchant_id=MERCHANT_ID, thanx_conn_id=conn_id, poll_interval=poll_interval
            )

        return make

    from airflow.providers.http.hooks.http import HttpAsyncHook
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    original = HttpAsyncHook.run

    async def counted(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            polls.done(kwargs["endpoint"], time.perf_counter() - started)

    HttpAsyncHook.run = counted

    def make(key: str):
        return HttpSensorTrigger(
            endpoint=f"partner/issuance_jobs/missing_{key}",
            http_conn_id="thanx_http",
            method="GET",
            data={"merchant_id": MERCHANT_ID},
            headers=THANX_HEADERS,
            poke_interval=poll_interval,
        )

    return make


def child(args: Any) -> None:
    import asyncio
    import gc

    c.raise_open_files_limit()
    polls = Polls(args.settle_polls)
    make = instrument(args.kind, polls, args.experiment)
    ticker = Ticker()
    gc_watch = GcWatch(ticker)
    gc.callbacks.append(gc_watch)
    events: list[Any] = []

    crashed: list[str] = []  # triggers whose run() raised (the baseline's connection timeouts at 10,000)

    async def consume(trigger) -> None:
        try:
            async for event in trigger.run():
                events.append(event.payload)
        except Exception as exc:
            crashed.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    async def until(condition, timeout: float, what: str) -> float:
        started = time.perf_counter()
        while not condition():
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started

    async def stop(tasks) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def budgeted() -> dict[str, Any]:
        """K triggers queued on one budget: the request rate and 429s the sandbox saw over a steady window."""
        ticker_task = asyncio.create_task(ticker.run())
        warm = [asyncio.create_task(consume(make(warm_job_id(i)))) for i in range(4)]
        await until(lambda: polls.first >= 4, 120, "warm-up")
        await stop(warm)
        polls.reset()
        gc.collect()
        await asyncio.sleep(0.5)
        rss_before, started = c.rss_mb(), time.perf_counter()
        ticker.stage = "startup"
        tasks = []
        for index in range(args.k):
            await asyncio.sleep(0)
            tasks.append(asyncio.create_task(consume(make(job_id(index)))))
            await asyncio.sleep(0)
        created = time.perf_counter() - started
        await asyncio.sleep(args.ramp)  # the queue forms; the pace settles to the budget
        ticker.stage = "steady"
        cpu_a, polls_a, wall_a, epoch_a = time.process_time(), polls.total, time.perf_counter(), time.time()
        polls.latencies.clear()
        rss_samples = []
        while time.perf_counter() - wall_a < args.window:
            await asyncio.sleep(min(0.5, max(0.0, args.window - (time.perf_counter() - wall_a))))
            rss_samples.append(c.rss_mb())
        cpu_b, polls_b, wall_b, epoch_b = time.process_time(), polls.total, time.perf_counter(), time.time()
        ticker.stage = "end"
        statuses = sorted({str(event.get("status")) for event in events if isinstance(event, dict)})
        polled = polls.first  # before the cancellation below, which the wrapper would count
        await stop(tasks)
        ticker_task.cancel()
        return {
            "kind": args.kind,
            "k": args.k,
            "create_s": created,
            "ramp_s": args.ramp,
            "window_s": wall_b - wall_a,
            "window_epoch": [epoch_a, epoch_b],
            "window_polls": polls_b - polls_a,
            "polls_per_s": (polls_b - polls_a) / (wall_b - wall_a),
            "cpu_per_poll_us": (cpu_b - cpu_a) * 1e6 / max(1, polls_b - polls_a),
            "triggers_polled": polled,
            "rss_before_mb": rss_before,
            "rss_per_trigger_kb": (statistics.median(rss_samples) - rss_before) * 1024 / args.k,
            "lag_steady_max_ms": ticker.summary("steady")["max_ms"],
            "events": len(events),
            "event_statuses": statuses,
        }

    async def main() -> dict[str, Any]:
        ticker_task = asyncio.create_task(ticker.run())
        # Warm-up: lazy imports, the connection lookup machinery, the first client; not measured.
        warm = [asyncio.create_task(consume(make(warm_job_id(i)))) for i in range(WARMUP)]
        await until(lambda: polls.first >= WARMUP, 120, "warm-up")
        await stop(warm)
        polls.reset()
        events.clear()
        gc.collect()
        await asyncio.sleep(0.5)

        if "gc-freeze" in args.experiment:  # what a triggerer that froze its start-up heap would see
            gc.freeze()
        rss_before = c.rss_mb()
        cpu_before = time.process_time()
        started = time.perf_counter()
        ticker.stage = "startup"
        tasks = []
        for index in range(args.k):  # the way TriggerRunner.create_triggers starts triggers
            await asyncio.sleep(0)
            trigger = make(job_id(index))
            tasks.append(asyncio.create_task(consume(trigger)))
            await asyncio.sleep(0)
        created = time.perf_counter() - started
        gone = lambda: len(events) + len(crashed)  # noqa: E731 - triggers that stopped waiting never settle
        first = await until(lambda: polls.first + gone() >= args.k, 900, "first poll of every trigger")
        cpu_started = time.process_time()
        await until(lambda: polls.settled + gone() >= args.k, 900, f"{args.settle_polls} polls of every trigger")
        settled = time.perf_counter() - started
        rss_waiting = c.rss_mb()

        ticker.stage = "steady"
        cpu_a, polls_a, wall_a = time.process_time(), polls.total, time.perf_counter()
        polls.latencies.clear()
        rss_samples = []
        while time.perf_counter() - wall_a < args.window:  # RSS sampled through the window; its median is used
            await asyncio.sleep(min(0.5, max(0.0, args.window - (time.perf_counter() - wall_a))))
            rss_samples.append(c.rss_mb())
        cpu_b, polls_b, wall_b = time.process_time(), polls.total, time.perf_counter()
        ticker.stage = "end"
        rss_end = c.rss_mb()
        finished = sum(task.done() for task in tasks)
        statuses = sorted({str(event.get("status") if isinstance(event, dict) else event) for event in events})
        await stop(tasks)
        ticker_task.cancel()
        steady, startup = ticker.summary("steady"), ticker.summary("startup")
        gc_startup, gc_steady = gc_watch.summary("startup"), gc_watch.summary("steady")
        return {
            "kind": args.kind,
            "k": args.k,
            "poll_interval_s": float(os.environ["BENCH_POLL_INTERVAL"]),
            "rss_before_mb": rss_before,
            "rss_waiting_mb": rss_waiting,
            "rss_end_mb": rss_end,
            "rss_window_median_mb": statistics.median(rss_samples),
            "rss_window_max_mb": max(rss_samples),
            "rss_per_trigger_kb": (statistics.median(rss_samples) - rss_before) * 1024 / args.k,
            "rss_per_trigger_max_kb": (max(rss_samples) - rss_before) * 1024 / args.k,
            "create_s": created,
            "all_first_poll_s": (first + created),
            "settled_s": settled,
            "cpu_per_start_ms": (cpu_started - cpu_before) * 1000 / args.k,
            "window_s": wall_b - wall_a,
            "window_polls": polls_b - polls_a,
            "polls_per_s": (polls_b - polls_a) / (wall_b - wall_a),
            "cpu_window_s": cpu_b - cpu_a,
            "cpu_per_poll_us": (cpu_b - cpu_a) * 1e6 / max(1, polls_b - polls_a),
            "poll_latency_p50_ms": percentile(polls.latencies, 0.5) * 1000,
            "poll_latency_p99_ms": percentile(polls.latencies, 0.99) * 1000,
            "lag_startup_max_ms": startup["max_ms"],
            "lag_steady_max_ms": steady["max_ms"],
            "lag_steady_p99_ms": steady["p99_ms"],
            "lag_max_ms": max(startup["max_ms"], steady["max_ms"]),
            "gc_gen2_count": gc_startup["gen2_count"] + gc_steady["gen2_count"],
            "gc_gen2_max_ms": max(gc_startup["gen2_max_ms"], gc_steady["gen2_max_ms"]),
            "gc_young_max_ms": max(gc_startup["young_max_ms"], gc_steady["young_max_ms"]),
            "objects_tracked": len(gc.get_objects()),
            "finished_before_end": finished,
            "events": len(events),
            "event_statuses": statuses,
            "crashed": len(crashed),
            "crashes": sorted(set(crashed))[:5],
            "peak_rss_mb": c.peak_rss_mb(),
        }

    c.write_result(args.result_file, asyncio.run(budgeted() if args.kind == "budgeted" else main()))


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------
def revoke_all(base_url: str, jobs: list[str]) -> float:
    """Revoke every job over one keep-alive connection; each must answer 202 ``revoking``."""
    started = time.perf_counter()
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = json.dumps({"merchant_id": MERCHANT_ID})
    try:
        for job in jobs:
            connection.request("POST", f"/partner/issuance_jobs/{job}/revoke", body=body, headers=THANX_HEADERS)
            response = connection.getresponse()
            payload = json.loads(response.read())
            if response.status != 202 or payload["issuance_job"]["state"] != "revoking":
                raise RuntimeError(f"revoke {job}: HTTP {response.status} {payload}")
    finally:
        connection.close()
    return time.perf_counter() - started


def run_side(
    kind: str, args: Any, env: dict[str, str], sandbox: c.Sandbox, workdir: Path, repeat: int
) -> dict[str, Any]:
    sandbox.admin("DELETE", "requests")
    server_cpu = sandbox.cpu_seconds()
    k = args.budget_k if kind == "budgeted" else args.k
    child_args = ["--kind", kind, "--k", str(k), "--window", str(args.window)]
    child_args += ["--settle-polls", str(args.settle_polls), "--ramp", str(args.ramp)]
    child_args += [f"--experiment={name}" for name in args.experiment]
    result = c.run_child(Path(__file__), child_args, env, workdir, f"waiting-{kind}-{repeat}", timeout=3600)
    result["server_cpu_s"] = sandbox.cpu_seconds() - server_cpu
    result["server_requests"] = sandbox.request_tally()
    requests = sum(result["server_requests"].values())
    result["server_cpu_per_request_us"] = result["server_cpu_s"] * 1e6 / max(1, requests)
    if kind == "budgeted":
        return budget_figures(result, sandbox)
    c.say(
        f"  {kind} run {repeat + 1}: {result['k']:,} triggers waiting after {result['settled_s']:.1f} s, "
        f"{result['window_polls']:,} polls in {result['window_s']:.1f} s, "
        f"{result['rss_per_trigger_kb']:.1f} KB/trigger, {result['cpu_per_poll_us']:.0f} us CPU/poll, "
        f"worst lag {result['lag_max_ms']:.1f} ms; sandbox saw {result['server_requests']}"
    )
    return result


def budget_figures(result: dict[str, Any], sandbox: c.Sandbox) -> dict[str, Any]:
    """Add what the sandbox saw in the budgeted side's steady window: requests, their peak per second, 429s."""
    start, end = result["window_epoch"]
    times, throttled = [], 0
    for entry in sandbox.admin("GET", "requests")["requests"]:
        at = dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
        if entry["path"].startswith("/partner/issuance_jobs/") and start <= at <= end:
            times.append(at)
            throttled += entry["status"] == 429
    times.sort()
    first = 0
    peak = 0
    for last, at in enumerate(times):
        while times[first] <= at - 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    result.update(
        server_window_requests=len(times),
        server_requests_per_s=max(0, len(times) - 1) / max(1e-9, end - start),  # n requests, n - 1 intervals
        server_peak_per_1s=peak,
        server_window_429=throttled,
    )
    c.say(
        f"  budgeted: {result['k']:,} triggers on one credential, created in {result['create_s']:.1f} s; "
        f"after a {result['ramp_s']:g} s ramp the sandbox saw {len(times)} requests in {end - start:.1f} s "
        f"({result['server_requests_per_s']:.2f}/s, at most {peak} in any 1 s), {throttled} x 429; "
        f"{result['rss_per_trigger_kb']:.1f} KB/trigger, {result['triggers_polled']:,} triggers polled at least once, "
        f"worst steady lag {result['lag_steady_max_ms']:.1f} ms"
    )
    return result


def main() -> int:
    quick = c.quick()
    parser = c.child_parser(__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=LAG_TARGET_K, help="triggers per side (1000, quick included)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.0, help="seconds between polls (default max(10, K/166); quick 6)"
    )
    parser.add_argument(
        "--window", type=float, default=0.0, help="steady window, s (default max(30, 2 polls); quick 6)"
    )
    parser.add_argument(
        "--settle-polls", type=int, default=1 if quick else 2, help="polls every trigger completes first (2; quick 1)"
    )
    parser.add_argument(
        "--budget-k", type=int, default=BUDGET_TARGET_K, help="budgeted triggers on one credential (10000; 0 skips)"
    )
    parser.add_argument(
        "--ramp", type=float, default=5.0 if quick else 20.0, help="budgeted side: s before its window (20; quick 5)"
    )
    parser.add_argument("--revoke-seconds", type=float, default=86_400.0, help="sandbox revoke duration")
    parser.add_argument(
        "--repeat", type=int, default=1 if quick else 2, help="runs per side, interleaved (default 2; quick 1)"
    )
    parser.add_argument(
        "--experiment",
        action="append",
        choices=EXPERIMENTS,
        default=[],
        help="not the product as shipped: gc-freeze = gc.freeze() the start-up heap before creating the triggers "
        "(Airflow's triggerer does not); per-poll-client = "
        "our trigger opens an httpx.AsyncClient per poll instead of holding one for the whole run; "
        "pool-16 / pool-4 = the shared pool (and requests in flight) of an unlimited credential at 16 or 4, not 8",
    )
    parser.add_argument("--kind", choices=("ours", "http", "budgeted"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    poll_interval = args.poll_interval or (6.0 if quick else max(10.0, round(args.k / 166)))
    args.window = args.window or (6.0 if quick else max(30.0, 2 * poll_interval))
    if args.experiment:
        c.say(f"!! EXPERIMENT {', '.join(args.experiment)}: not the product as shipped, not a result for the targets")
    c.say(
        f"== waiting at scale ({c.scale_label()}): K={args.k:,} triggers per side, poll interval {poll_interval:g} s, "
        f"steady window {args.window:g} s, RSS after {args.settle_polls} polls of every trigger, "
        f"{args.repeat} run(s) per side, interleaved"
    )
    with c.workdir("waiting") as workdir:
        seed_file = workdir / "seed.json"
        c.write_seed(seed_file, seed(max(args.k, args.budget_k)))
        with c.sandbox_process(
            seed_file, revoke_seconds=args.revoke_seconds, log_file=workdir / "sandbox.log"
        ) as sandbox:
            jobs = [job_id(i) for i in range(max(args.k, args.budget_k))] + [warm_job_id(i) for i in range(WARMUP)]
            seconds = revoke_all(sandbox.base_url, jobs)
            c.say(
                f"  sandbox: pid {sandbox.pid}, {sandbox.base_url}, ready in {sandbox.startup_seconds:.1f} s; "
                f"{len(jobs):,} jobs revoked (202 revoking) in {seconds:.1f} s"
            )
            env = c.airflow_env(
                workdir / "airflow-home",
                {
                    "thanx_default": {
                        "conn_type": "thanx",
                        "host": sandbox.base_url,
                        "login": CLIENT_ID,
                        "password": ACCESS_TOKEN,
                        "extra": {"merchant_id": MERCHANT_ID, **UNLIMITED},
                    },
                    "thanx_budgeted": {
                        "conn_type": "thanx",
                        "host": sandbox.base_url,
                        "login": CLIENT_ID,
                        "password": ACCESS_TOKEN,
                        "extra": {"merchant_id": MERCHANT_ID},  # the default budget
                    },
                    "thanx_http": {"conn_type": "http", "host": sandbox.base_url},
                },
            )
            env["BENCH_POLL_INTERVAL"] = str(poll_interval)
            if args.budget_k:  # first, and reported at once: it is independent of the comparison below
                sandbox.admin("POST", "faults", {"rate_limit": VENDOR_RATE_LIMIT})
                try:
                    report_budget(args, run_side("budgeted", args, env, sandbox, workdir, 0))
                finally:
                    sandbox.admin("POST", "faults", {"rate_limit": None})
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "http": []}
            for repeat in range(args.repeat):  # interleaved, so that drift on the machine hits both sides alike
                for kind in runs:
                    runs[kind].append(run_side(kind, args, env, sandbox, workdir, repeat))
    return report(args, combine(runs["ours"]), combine(runs["http"]))


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures over its repeats: pooled CPU per poll, worst lags and pauses, mean of the rest."""
    if len(runs) == 1:
        return runs[0]
    combined: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [run[key] for run in runs]
        if key.startswith(("lag_", "gc_gen2_max", "gc_young_max")) or key == "rss_per_trigger_max_kb":
            combined[key] = max(values)
        elif key in ("events", "finished_before_end", "gc_gen2_count", "window_polls", "cpu_window_s", "window_s"):
            combined[key] = sum(values)
        elif key == "server_requests":
            combined[key] = {k: sum(run[key].get(k, 0) for run in runs) for run in runs for k in run[key]}
        elif isinstance(value, int | float) and not isinstance(value, bool):
            combined[key] = sum(values) / len(values)
        else:
            combined[key] = value
    combined["k"] = runs[0]["k"]
    combined["cpu_per_poll_us"] = combined["cpu_window_s"] * 1e6 / max(1, combined["window_polls"])
    combined["polls_per_s"] = combined["window_polls"] / combined["window_s"]
    combined["log_lines"] = runs[0]["log_lines"]
    return combined


def report_budget(args: Any, budgeted: dict[str, Any]) -> None:
    """The budgeted side's target line: requests/s within the budget, no 429, RSS per trigger."""
    from airflow_provider_rewards.hooks.rate_limit import RateBudget

    prefix = f"experiment ({'+'.join(args.experiment)}) " if args.experiment else c.TARGET_PREFIX
    rate, limit = budgeted["server_requests_per_s"], RateBudget().max_requests_per_second
    rss, throttled = budgeted["rss_per_trigger_kb"], budgeted["server_window_429"]
    at = "" if budgeted["k"] == BUDGET_TARGET_K else f", measured at {budgeted['k']:,} triggers"
    c.target(
        "10,000 waits on one credential within budget",
        f"{rate:.2f} requests/s, {throttled} x 429 over {budgeted['window_s']:.0f} s, {rss:.1f} KB per trigger{at}",
        f"<= {limit:g}/s, 0 x 429, <= {TARGET_RSS_KB:.0f} KB",
        rate <= limit and not throttled and rss <= TARGET_RSS_KB and budgeted["k"] >= BUDGET_TARGET_K,
        prefix=prefix,
    )


def report(args: Any, ours: dict[str, Any], theirs: dict[str, Any]) -> int:
    def row(label: str, key: str, fmt: str = "{:,.1f}", ratio: bool = True) -> list[str]:
        a, b = ours[key], theirs[key]
        shown = f"{a / b:.2f}x" if ratio and isinstance(a, int | float) and b else ""
        return [label, fmt.format(a), fmt.format(b), shown]

    rows = [
        row("triggers", "k", "{:,}", ratio=False),
        row("poll interval s", "poll_interval_s", "{:g}", ratio=False),
        row("RSS before triggers MB", "rss_before_mb"),
        row("RSS all waiting MB", "rss_waiting_mb"),
        row("RSS in window, median MB", "rss_window_median_mb"),
        row("RSS in window, max MB", "rss_window_max_mb"),
        row("RSS per waiting trigger KB (median)", "rss_per_trigger_kb"),
        row("RSS per waiting trigger KB (max)", "rss_per_trigger_max_kb"),
        row("s until every trigger polled once", "all_first_poll_s", "{:.2f}"),
        row("CPU per trigger start ms", "cpu_per_start_ms", "{:.2f}"),
        row("polls in steady window", "window_polls", "{:,}"),
        row("polls per s", "polls_per_s"),
        row("client CPU s in window", "cpu_window_s", "{:.2f}"),
        row("client CPU per poll us", "cpu_per_poll_us", "{:,.0f}"),
        row("poll latency p50 ms", "poll_latency_p50_ms"),
        row("poll latency p99 ms", "poll_latency_p99_ms"),
        row("sandbox CPU per request us", "server_cpu_per_request_us", "{:,.0f}"),
        row("worst loop lag, startup ms", "lag_startup_max_ms"),
        row("worst loop lag, steady ms", "lag_steady_max_ms"),
        row("p99 loop lag, steady ms", "lag_steady_p99_ms"),
        row("full (gen 2) GC runs", "gc_gen2_count", "{:,}", ratio=False),
        row("longest full GC pause ms", "gc_gen2_max_ms"),
        row("longest young GC pause ms", "gc_young_max_ms"),
        row("objects tracked by the GC", "objects_tracked", "{:,.0f}"),
        row("log lines written", "log_lines", "{:,}", ratio=False),
        row("events before cancel", "events", "{:,}", ratio=False),
    ]
    c.say("")
    c.table(rows, ["figure", "ThanxIssuanceJobTrigger (no budget)", "HttpSensorTrigger", "ours/theirs"])
    if ours["events"] or ours["finished_before_end"] or not all(k.endswith(" 200") for k in ours["server_requests"]):
        c.say(
            f"  ERROR: one of our triggers stopped waiting or a poll got an unexpected answer: {ours['events']} "
            f"events {ours['event_statuses']}, {ours.get('crashed', 0)} crashed {ours.get('crashes')}, "
            f"{ours['server_requests']}"
        )
        return 1
    c.say("  every poll of ours read 200 'revoking'; none of our triggers fired or failed before the end")
    if theirs["events"] or theirs.get("crashed"):
        c.say(
            f"  HttpSensorTrigger: {theirs['events']} waits ended with an event ({theirs['event_statuses']}) and "
            f"{theirs.get('crashed', 0)} with an exception ({theirs.get('crashes')}) before the end; "
            f"its figures count the rest; the sandbox saw {theirs['server_requests']}"
        )
    else:
        c.say("  every HttpSensorTrigger poll read a 404 (its only way to keep waiting); none fired before the end")
    prefix = f"experiment ({'+'.join(args.experiment)}) " if args.experiment else c.TARGET_PREFIX
    ratio = ours["cpu_per_poll_us"] / theirs["cpu_per_poll_us"]
    lag = ours["lag_max_ms"]
    at = "" if args.k == LAG_TARGET_K else f" (measured at {args.k:,} triggers)"
    c.say("")
    c.target(
        "RSS per waiting trigger",
        f"{ours['rss_per_trigger_kb']:.1f} KB (HttpSensorTrigger {theirs['rss_per_trigger_kb']:.1f} KB)",
        f"<= {TARGET_RSS_KB:.0f} KB",
        ours["rss_per_trigger_kb"] <= TARGET_RSS_KB,
        prefix=prefix,
    )
    c.target(
        "CPU per poll vs HttpSensorTrigger",
        f"{ratio:.2f}x ({ours['cpu_per_poll_us']:,.0f} us vs {theirs['cpu_per_poll_us']:,.0f} us)",
        f"<= {TARGET_CPU_RATIO:.1f}x",
        ratio <= TARGET_CPU_RATIO,
        prefix=prefix,
    )
    p50, their_p50 = ours["poll_latency_p50_ms"], theirs["poll_latency_p50_ms"]
    c.target(
        "poll latency p50 vs HttpSensorTrigger",
        f"{p50:,.1f} ms vs {their_p50:,.1f} ms{at}",
        "<= theirs",
        p50 <= their_p50,
        prefix=prefix,
    )
    c.target(
        "worst loop lag at 1,000 triggers",
        f"{lag:.1f} ms{at} (HttpSensorTrigger {theirs['lag_max_ms']:.1f} ms)",
        f"< {TARGET_LAG_MS:.0f} ms",
        lag < TARGET_LAG_MS and args.k >= LAG_TARGET_K,  # fewer triggers cannot prove the 1,000-trigger goal
        prefix=prefix,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
