"""Bulk cancel: ``HPGamesBulkCancelRewardsOperator`` versus one cancel request per reward.

Against the sandbox in its own process, seeded with every reward the run cancels (nothing is
answered 200 for an id the sandbox does not hold), this runs, each in a fresh interpreter:

1. ``per-reward HttpHook``: what an ``HttpOperator`` per reward does today, HTTP part only: a new
   ``airflow.providers.http.hooks.http.HttpHook(method="POST")`` and ``run()`` per reward, with the
   body signed by hand (HMAC-SHA256), to ``rewards/cancel``. Only the HTTP part is counted; the
   scheduling of one task per reward (seconds each) is left out, which favours the baseline.
2. ``per-reward requests.Session``: the most favourable per-reward variant: one ``requests.Session``
   (keep-alive) and one signed POST per reward.
3. ``bulk operator``: ``HPGamesBulkCancelRewardsOperator(reward_ids=[...]).execute(context)`` with
   the minimal context of tests/operators/conftest.py (``batch_size`` default 500 unless
   ``--batch-size``), timing ``execute()`` (input validation included).
4. (full scale) the bulk operator again at ``--rss-n`` ids (1,000,000) for the peak-RSS target.
5. ``streamed``: ``HPGamesBulkCancelRewardsOperator(reward_ids_path=<file>, results_path=<dir>)`` at
   ``--stream-base-n`` (100,000) and ``--stream-n`` (10,000,000) ids, one id per line in a file under
   /tmp (deleted afterwards), against a second sandbox started with ``--accept-unknown-ids`` (it answers
   200 for ids it does not hold and stores nothing, so 10^7 ids need no seed). Peak RSS is the child's
   ``ru_maxrss``; the sandbox's request log must show every id in a 200 ``bulkCancel`` and results.jsonl
   one line per id.
6. ``wire``: the streamed operator at ``--wire-n`` ids against a third sandbox with ``--latency-ms 20``
   (and ``--accept-unknown-ids``), at ``max_concurrency`` 1 and 4. The wire limit is
   ceil(N / batch_size) x 20 ms / max_concurrency; the figure is wire limit / ``execute()`` wall time.

Per-reward approaches run on a sample (``--sample`` rewards each) and are extrapolated linearly to
``--n``; the ratio compares the bulk operator's rewards per second with the FASTER per-reward
variant. Peak RSS is ``ru_maxrss`` of the child, which holds the id list it was given (the input).
At the end the sandbox is asked (``rewards/readAll``) which rewards are still IN_PROGRESS: exactly
the untouched control rewards must be.

Usage: ``python bench/bulk_cancel.py [--n 100000] [--sample 3000] [--batch-size 500] [--rss-n 1000000]
[--stream-n 10000000] [--stream-base-n 100000] [--wire-n 100000]``
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MERCHANT_ID = "1387a6cc-3651-4473-ae52-e415caea3395"  # the sandbox demo merchant (seed.DEMO_HPGAMES_*)
SECRET = "sandbox_hpgames_demo_secret_5d41"
CONFIG_ID = "c0f1a000-0000-4000-8000-000000000001"
CANCEL_ENDPOINT = "api/v1/integration/rewards/cancel"
MILLION = 1_000_000
GROUPS = {"httphook": 1, "session": 2, "bulk": 3, "bulk-rss": 4, "stream": 5, "wire": 6, "control": 9}
WARMUP = 50  # rewards each child cancels untimed first (lazy imports, first connection), per approach
CONTROLS = 10
TARGET_RATIO = 100.0
TARGET_RSS_MB = 300.0
TARGET_STREAM_RSS_MB = 150.0
TARGET_STREAM_GROWTH = 1.1
TARGET_WIRE_RATIO = 0.8
RTT_MS = 20.0
WIRE_CONCURRENCY = (1, 4)


def reward_id(group: int, index: int) -> str:
    """A valid, lower-case UUID per (group, index); negative indexes are the untimed warm-up rewards."""
    return f"{group:08x}-{'ffff' if index < 0 else '0000'}-4000-8000-{abs(index):012x}"


def seed_rewards(counts: dict[str, int]):
    for name, count in counts.items():
        group = GROUPS[name]
        for index in range(-WARMUP if name != "control" else 0, count):
            yield {
                "id": reward_id(group, index),
                "merchantId": MERCHANT_ID,
                "rewardConfigurationId": CONFIG_ID,
                "playerId": f"p{group}-{index}",
            }


def seed_head() -> dict[str, Any]:
    return {
        "hpgames": {
            "merchants": [{"id": MERCHANT_ID, "secret": SECRET, "name": "Bench Casino"}],
            "reward_configurations": [{"id": CONFIG_ID, "merchantId": MERCHANT_ID, "name": "Bench", "duration": 10080}],
        }
    }


# ---------------------------------------------------------------------------------------------
# Children
# ---------------------------------------------------------------------------------------------
def write_ids_file(path: Path, group: int, count: int) -> float:
    """``count`` distinct reward ids, one per line (as a warehouse export); returns the size in MiB."""
    with open(path, "w", encoding="ascii") as out:
        for start in range(0, count, 100_000):
            out.write("".join(f"{reward_id(group, i)}\n" for i in range(start, min(count, start + 100_000))))
    return path.stat().st_size / 2**20


def count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def stream_child(args: Any) -> None:
    """One streamed run: ``execute()`` of the operator on a file of ids, peak RSS of this process."""
    rss_start = c.rss_mb()
    from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator

    operator = HPGamesBulkCancelRewardsOperator(
        task_id="bulk_cancel",
        reward_ids_path=args.ids_file,
        results_path=args.results_dir,
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
    )
    context = c.minimal_context()
    rss_import = c.rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = operator.execute(context)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    c.write_result(
        args.result_file,
        {
            "rewards": args.count,
            "requests": summary.get("requests"),
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_start_mb": rss_start,
            "rss_import_mb": rss_import,
            "peak_rss_mb": c.peak_rss_mb(),
            "batch_size": args.batch_size,
            "max_concurrency": args.max_concurrency,
            "summary": {k: v for k, v in summary.items() if isinstance(v, int | float | str | bool | None)},
        },
    )


def child(args: Any) -> None:
    if args.phase == "stream":
        stream_child(args)
        return
    rss_start = c.rss_mb()
    base_url = os.environ["BENCH_BASE_URL"]
    summary: dict[str, Any] = {}
    if args.phase == "httphook":
        from airflow.providers.http.hooks.http import HttpHook

        def cancel_all(ids: list[str]) -> int:
            for rid in ids:
                body = c.hpgames_signed({"id": rid}, MERCHANT_ID, SECRET)
                HttpHook(method="POST", http_conn_id="hpgames_http").run(endpoint=CANCEL_ENDPOINT, json=body)
            return len(ids)

    elif args.phase == "session":
        import requests

        session = requests.Session()

        def cancel_all(ids: list[str]) -> int:
            url = f"{base_url}/{CANCEL_ENDPOINT}"
            for rid in ids:
                response = session.post(url, json=c.hpgames_signed({"id": rid}, MERCHANT_ID, SECRET), timeout=60)
                response.raise_for_status()
            return len(ids)

    else:
        from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator

        def cancel_all(ids: list[str]) -> int:
            operator = HPGamesBulkCancelRewardsOperator(
                task_id="bulk_cancel", reward_ids=ids, batch_size=args.batch_size
            )
            started = time.perf_counter()
            summary.update(operator.execute(c.minimal_context()))
            summary["execute_seconds"] = time.perf_counter() - started
            assert summary["cancelled"] == len(ids), summary
            assert summary["rejected"] == 0, summary
            return summary["requests"]

    cancel_all([reward_id(GROUPS[args.group], -index) for index in range(1, WARMUP + 1)])
    summary.clear()
    rss_import = c.rss_mb()
    ids = [reward_id(GROUPS[args.group], index) for index in range(args.count)]
    rss_ids = c.rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    requests_sent = cancel_all(ids)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.phase == "bulk":
        wall = summary.pop("execute_seconds")  # execute() only; constructing the operator is parse time
    c.write_result(
        args.result_file,
        {
            "rewards": len(ids),
            "requests": requests_sent,
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_start_mb": rss_start,
            "rss_import_mb": rss_import,
            "rss_ids_mb": rss_ids,
            "peak_rss_mb": c.peak_rss_mb(),
            "batch_size": args.batch_size if args.phase == "bulk" else 1,
        },
    )


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------
def run_phase(name: str, phase: str, group: str, count: int, batch_size: int, env, sandbox, workdir) -> dict:
    server_cpu = sandbox.cpu_seconds()
    args = ["--phase", phase, "--group", group, "--count", str(count), "--batch-size", str(batch_size)]
    result = c.run_child(Path(__file__), args, env, workdir, name)
    result["server_cpu_s"] = sandbox.cpu_seconds() - server_cpu
    result["rate"] = result["rewards"] / result["wall_s"]
    c.say(
        f"  {name}: {result['rewards']:,} rewards, {result['requests']:,} requests, {result['wall_s']:.2f} s, "
        f"{c.fmt_rate(result['rate'])} rewards/s, peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    return result


def main() -> int:
    parser = c.child_parser(__doc__.split("\n")[0])
    quick = c.quick()
    parser.add_argument("--n", type=int, default=50_000 if quick else 100_000, help="rewards the bulk operator cancels")
    parser.add_argument("--sample", type=int, default=300 if quick else 3000, help="rewards per per-reward variant")
    parser.add_argument("--batch-size", type=int, default=500, help="bulk operator batch_size (operator default 500)")
    parser.add_argument(
        "--rss-n",
        type=int,
        default=0 if quick else MILLION,
        help="ids of a second bulk run for the peak-RSS target (0: extrapolate linearly from --n)",
    )
    parser.add_argument(
        "--stream-n",
        type=int,
        default=500_000 if quick else 10_000_000,
        help="ids of the big streamed run (peak-RSS target at 10,000,000)",
    )
    parser.add_argument(
        "--stream-base-n", type=int, default=50_000 if quick else 100_000, help="ids of the small streamed run"
    )
    parser.add_argument(
        "--wire-n", type=int, default=20_000 if quick else 100_000, help="ids of the 20 ms RTT throughput runs"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", help=argparse.SUPPRESS)
    parser.add_argument("--max-concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    rss_n = 0 if args.rss_n == args.n else args.rss_n
    counts = {"httphook": args.sample, "session": args.sample, "bulk": args.n, "control": CONTROLS}
    if rss_n:
        counts["bulk-rss"] = rss_n
    c.say(
        f"== bulk cancel ({c.scale_label()}): n={args.n:,}, per-reward sample={args.sample:,}, "
        f"batch_size={args.batch_size}, peak-RSS run at {(rss_n or args.n):,} ids"
    )
    with c.workdir("bulk") as workdir:
        seed_file = workdir / "seed.json"
        started = time.perf_counter()
        size = c.write_seed(seed_file, seed_head(), seed_rewards(counts))
        c.say(
            f"  seed: {sum(counts.values()):,} rewards, {size:.0f} MB JSON, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        with c.sandbox_process(seed_file, log_file=workdir / "sandbox.log") as sandbox:
            c.say(
                f"  sandbox: pid {sandbox.pid}, {sandbox.base_url}, ready in {sandbox.startup_seconds:.1f} s, "
                f"RSS {sandbox.rss_mb():.0f} MB"
            )
            env = c.airflow_env(
                workdir / "airflow-home",
                {
                    "hpgames_default": {
                        "conn_type": "hpgames",
                        "host": sandbox.base_url,
                        "login": MERCHANT_ID,
                        "password": SECRET,
                    },
                    "hpgames_http": {"conn_type": "http", "host": sandbox.base_url},
                },
            )
            env["BENCH_BASE_URL"] = sandbox.base_url
            results = {
                "httphook": run_phase(
                    "per-reward HttpHook", "httphook", "httphook", args.sample, 1, env, sandbox, workdir
                ),
                "session": run_phase("per-reward Session", "session", "session", args.sample, 1, env, sandbox, workdir),
                "bulk": run_phase("bulk operator", "bulk", "bulk", args.n, args.batch_size, env, sandbox, workdir),
            }
            if rss_n:
                results["bulk-rss"] = run_phase(
                    "bulk operator (RSS run)", "bulk", "bulk-rss", rss_n, args.batch_size, env, sandbox, workdir
                )
            left = c.hpgames_post(
                sandbox.base_url, "readAll", c.hpgames_signed({"status": "IN_PROGRESS"}, MERCHANT_ID, SECRET)
            )
            tally = sandbox.request_tally()
        streamed = run_streamed(args, workdir)
    status = report(args, results, left, tally, rss_n)
    return report_streamed(args, streamed) or status


def sink_env(workdir: Path, sandbox: c.Sandbox) -> dict[str, str]:
    connection = {"conn_type": "hpgames", "host": sandbox.base_url, "login": MERCHANT_ID, "password": SECRET}
    return c.airflow_env(workdir / "airflow-home", {"hpgames_default": connection})


def stream_phase(
    name: str, group: str, count: int, concurrency: int, args: Any, sandbox: c.Sandbox, workdir: Path
) -> dict[str, Any]:
    """Write a file of ``count`` ids, run the streamed operator on it in a child, check and delete the files."""
    ids_file, results_dir = workdir / f"{name}.ids.txt", workdir / f"{name}.results"
    started = time.perf_counter()
    size = write_ids_file(ids_file, GROUPS[group], count)
    c.say(f"  {name}: {count:,} ids, {size:,.0f} MB file written in {time.perf_counter() - started:.1f} s")
    sandbox.clear_requests()
    phase_args = ["--phase", "stream", "--count", str(count), "--batch-size", str(args.batch_size)]
    phase_args += ["--ids-file", str(ids_file), "--results-dir", str(results_dir)]
    phase_args += ["--max-concurrency", str(concurrency)]
    try:
        result = c.run_child(Path(__file__), phase_args, sink_env(workdir, sandbox), workdir, name, timeout=3600)
        result["sent_ids"] = sandbox.bulk_cancel_ids()
        result["results_lines"] = count_lines(results_dir / "results.jsonl")
    finally:
        ids_file.unlink(missing_ok=True)
        shutil.rmtree(results_dir, ignore_errors=True)
    result["rate"] = count / result["wall_s"]
    c.say(
        f"  {name}: {count:,} ids, {result['requests']:,} requests, {result['wall_s']:.2f} s, "
        f"{c.fmt_rate(result['rate'])} ids/s, peak RSS {result['peak_rss_mb']:.0f} MB, "
        f"sandbox saw {result['sent_ids']:,} ids in bulkCancels answered 200, "
        f"results.jsonl {result['results_lines']:,} lines"
    )
    return result


def run_streamed(args: Any, workdir: Path) -> dict[str, dict[str, Any]]:
    """The streamed runs: peak RSS at two sizes (sink sandbox), then throughput at 20 ms RTT."""
    seed_file = workdir / "sink-seed.json"
    c.write_seed(seed_file, seed_head())
    out: dict[str, dict[str, Any]] = {}
    c.say(f"\n  streamed from a file, sandbox with --accept-unknown-ids, batch_size={args.batch_size}")
    with c.sandbox_process(seed_file, log_file=workdir / "sink.log", extra_args=["--accept-unknown-ids"]) as sink:
        out["stream-base"] = stream_phase("streamed-small", "stream", args.stream_base_n, 1, args, sink, workdir)
        out["stream"] = stream_phase("streamed-big", "stream", args.stream_n, 1, args, sink, workdir)
    extra = ["--accept-unknown-ids", "--latency-ms", f"{RTT_MS:g}"]
    c.say(f"\n  throughput, sandbox with --latency-ms {RTT_MS:g}")
    with c.sandbox_process(seed_file, log_file=workdir / "wire.log", extra_args=extra) as wire:
        for concurrency in WIRE_CONCURRENCY:
            name = f"wire-c{concurrency}"
            out[name] = stream_phase(name, "wire", args.wire_n, concurrency, args, wire, workdir)
    return out


def report_streamed(args: Any, out: dict[str, dict[str, Any]]) -> int:
    """Target lines of the streamed runs; 1 when the sandbox or the record does not confirm a run."""
    wrong = [
        name
        for name, result in out.items()
        if result["sent_ids"] != result["rewards"] or result["results_lines"] != result["rewards"]
    ]
    if wrong:
        c.say(f"  ERROR: the sandbox or results.jsonl does not confirm every id of {wrong}")
        return 1
    big, base = out["stream"], out["stream-base"]
    growth = big["peak_rss_mb"] / base["peak_rss_mb"]
    c.say(
        f"\n  streamed peak RSS: {big['peak_rss_mb']:.0f} MB at {big['rewards']:,} ids vs "
        f"{base['peak_rss_mb']:.0f} MB at {base['rewards']:,} ({growth:.2f}x); "
        f"{big['rss_import_mb']:.0f} MB after imports"
    )
    label = "" if big["rewards"] == 10_000_000 else f" (run at {big['rewards']:,} ids)"
    c.target(
        "peak RSS at 10,000,000 ids streamed",
        f"{big['peak_rss_mb']:.0f} MB{label}, {growth:.2f}x the run at {base['rewards']:,} ids",
        f"< {TARGET_STREAM_RSS_MB:.0f} MB and <= {TARGET_STREAM_GROWTH}x",
        big["peak_rss_mb"] < TARGET_STREAM_RSS_MB and growth <= TARGET_STREAM_GROWTH,
    )
    for concurrency in WIRE_CONCURRENCY:
        result = out[f"wire-c{concurrency}"]
        limit = math.ceil(result["rewards"] / args.batch_size) * RTT_MS / 1000 / concurrency
        ratio = limit / result["wall_s"]
        c.target(
            f"throughput vs wire limit at 20 ms RTT, max_concurrency {concurrency}",
            f"{ratio:.2f} ({result['wall_s']:.2f} s vs {limit:.2f} s for {result['rewards']:,} ids, "
            f"{result['requests']:,} requests)",
            f">= {TARGET_WIRE_RATIO}",
            ratio >= TARGET_WIRE_RATIO,
        )
    return 0


def report(args: Any, results: dict[str, dict], left: list, tally: dict[str, int], rss_n: int) -> int:
    n = args.n
    rows = []
    labels = {
        "httphook": "per-reward, new HttpHook.run() each",
        "session": "per-reward, one requests.Session",
        "bulk": f"bulk operator, batch_size {args.batch_size}",
        "bulk-rss": f"bulk operator, batch_size {args.batch_size}",
    }
    for key, result in results.items():
        measured = result["rewards"]
        time_for_n = n / result["rate"]
        rows.append(
            [
                labels[key],
                f"{measured:,}",
                f"{result['requests']:,}",
                f"{result['wall_s']:.2f}",
                c.fmt_rate(result["rate"]),
                f"{result['cpu_s'] / measured * 1e6:,.0f}",
                f"{result['server_cpu_s'] / measured * 1e6:,.0f}",
                f"{result['rss_ids_mb']:.0f}",
                f"{result['peak_rss_mb']:.0f}",
                "-" if key == "bulk-rss" else f"{time_for_n:,.1f}" + ("" if measured == n else " (extrapolated)"),
            ]
        )
    c.say("")
    c.table(
        rows,
        [
            "approach",
            "rewards",
            "requests",
            "wall s",
            "rewards/s",
            "client CPU us/reward",
            "server CPU us/reward",
            "RSS with ids MB",
            "peak RSS MB",
            f"s for {n:,}",
        ],
    )
    expected_left = CONTROLS
    ok_left = len(left) == expected_left and all(r["id"].startswith(f"{GROUPS['control']:08x}-") for r in left)
    errors = {key: count for key, count in tally.items() if not key.endswith(" 200")}
    c.say(
        f"\n  sandbox check: {len(left)} rewards still IN_PROGRESS (expected the {expected_left} controls): "
        f"{'ok' if ok_left else 'WRONG'}; requests by endpoint/status: {tally}"
    )
    if not ok_left or errors:
        c.say(f"  ERROR: the sandbox does not confirm the cancellations ({errors or left[:3]})")
        return 1

    best_key = max(("httphook", "session"), key=lambda key: results[key]["rate"])
    best = results[best_key]["rate"]
    bulk = results["bulk"]["rate"]
    ratio = bulk / best
    c.say(
        f"\n  bulk {c.fmt_rate(bulk)} rewards/s vs per-reward {c.fmt_rate(best)} rewards/s "
        f"({labels[best_key]}; HttpHook variant {c.fmt_rate(results['httphook']['rate'])}/s, "
        f"{bulk / results['httphook']['rate']:,.0f}x): {ratio:,.0f}x; per-reward rates measured on "
        f"{args.sample:,} rewards and extrapolated to {n:,}; only the HTTP part of per-reward is counted"
    )
    rss_result = results.get("bulk-rss", results["bulk"])
    if rss_result["rewards"] >= MILLION:
        peak = rss_result["peak_rss_mb"]
        value = f"{peak:.0f} MB at {rss_result['rewards']:,} ids"
    else:
        # Linear in the id count: everything above the post-import RSS is taken as proportional to the ids
        # (over-estimates: the fixed costs of the run are scaled too).
        measured = rss_result["rewards"]
        base = rss_result["rss_import_mb"]
        peak = base + (rss_result["peak_rss_mb"] - base) * MILLION / measured
        value = f"{peak:.0f} MB (extrapolated linearly from {rss_result['peak_rss_mb']:.0f} MB at {measured:,} ids)"
        c.say(
            f"  peak RSS at 1,000,000 ids is extrapolated: {base:.0f} MB after imports + "
            f"({rss_result['peak_rss_mb']:.0f} - {base:.0f}) MB x {MILLION / measured:g}"
        )
    c.say(
        f"  peak RSS includes the interpreter with Airflow imported ({rss_result['rss_import_mb']:.0f} MB) and the "
        f"input id list ({rss_result['rss_ids_mb'] - rss_result['rss_import_mb']:.0f} MB "
        f"at {rss_result['rewards']:,} ids)"
    )
    c.say("")
    c.target(
        "bulk cancel rewards per second vs per-reward",
        f"{ratio:,.0f}x",
        f">= {TARGET_RATIO:.0f}x",
        ratio >= TARGET_RATIO,
    )
    c.target("peak RSS at 1,000,000 ids", value, f"< {TARGET_RSS_MB:.0f} MB", peak < TARGET_RSS_MB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
