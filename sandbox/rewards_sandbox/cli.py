"""``rewards-sandbox`` command: run the Thanx + HPGames sandbox until SIGINT/SIGTERM.

On start it prints one ``key=value`` line each: ``base_url``, then the accepted credentials
(``thanx_client_id``, ``thanx_access_token``, ``thanx_merchant_ids`` and ``hpgames_merchant_id``,
``hpgames_secret`` for the first of each; further ones get a ``_2``, ``_3`` ... suffix), then
``ready=1``. On shutdown it prints ``stopped=1`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from rewards_sandbox.config import ALREADY_CANCELLED_MODES, DEFAULT_FAULT_KINDS, FAULT_KINDS, SandboxConfig
from rewards_sandbox.seed import Seed, demo_seed, load_seed_file
from rewards_sandbox.server import SandboxServer


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rewards-sandbox``."""
    parser = argparse.ArgumentParser(
        prog="rewards-sandbox", description="Local sandbox of the Thanx Partner and HPGames rewards APIs."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    seed = parser.add_mutually_exclusive_group()
    seed.add_argument("--seed-demo", action="store_true", help="load the demo seed (the default)")
    seed.add_argument("--seed", metavar="FILE", help="load a JSON seed file instead of the demo seed")
    seed.add_argument("--print-demo-seed", action="store_true", help="print the demo seed as JSON and exit")
    parser.add_argument("--revoke-seconds", type=float, default=5.0, help="duration of a revoke (default 5)")
    parser.add_argument(
        "--issue-seconds",
        type=float,
        default=2.0,
        help="pending→processing→completed time of issued jobs (default 2)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fault probability per request, 0..1")
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the fault RNG (reproducible)")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_FAULT_KINDS),
        help=f"comma-separated fault kinds among {','.join(FAULT_KINDS)} "
        f"(default {','.join(DEFAULT_FAULT_KINDS)}; error_200 is opt-in)",
    )
    parser.add_argument("--retry-after-s", type=int, default=1, help="Retry-After of injected 429s")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each vendor request")
    parser.add_argument(
        "--timestamp-window-s",
        type=float,
        default=300.0,
        help="accepted HPGames timestamp skew (default 300)",
    )
    parser.add_argument("--log-requests", action="store_true", help="log vendor requests to stderr")
    parser.add_argument(
        "--log-bodies",
        action="store_true",
        help="also record request bodies (hash redacted) in /_sandbox/requests",
    )
    parser.add_argument(
        "--rate-limit",
        metavar="N/Ws,...",
        default=None,
        help="sliding windows per credential (Thanx access token, HPGames merchant), e.g. 5/s,2000/900s; "
        "over the limit: 429 + Retry-After (seconds until a slot frees); rejected requests do not count",
    )
    parser.add_argument(
        "--retry-after-override",
        type=int,
        metavar="N",
        default=None,
        help="send Retry-After: N on every 429 (rate limit and injected faults)",
    )
    parser.add_argument(
        "--already-cancelled",
        choices=ALREADY_CANCELLED_MODES,
        default="ok",
        help="cancel/bulkCancel of an already CANCELLED reward: ok (200, no-op; default) or refuse "
        "(409 errorCode 1010 'reward already cancelled', whole request refused, nothing changed)",
    )
    parser.add_argument(
        "--error-200-for",
        metavar="ACTION,...",
        default=None,
        help="HPGames actions (e.g. bulkCancel,readAll or reward-configurations/read) always answered "
        'HTTP 200 {"errorCode": 1003, "errorText": ...} with nothing changed',
    )
    parser.add_argument(
        "--now-ms",
        type=int,
        default=None,
        help="start the vendor clock at this epoch-ms time (default real time); see /_sandbox/clock",
    )
    parser.add_argument(
        "--read-all-external-id",
        action="store_true",
        help="add the undocumented externalId to rewards/readAll items (the vendor documents none)",
    )
    parser.add_argument(
        "--accept-unknown-ids",
        action="store_true",
        help="answer cancel/bulkCancel of ids the sandbox does not hold as a no-op 200 instead of a 404 "
        "(a sink for benchmarks at millions of ids; nothing is stored)",
    )
    return parser


def _credential_lines(parsed: Seed) -> list[str]:
    """``key=value`` lines naming the credentials a seed accepts."""
    lines = []
    for index, credential in enumerate(parsed.credentials, 1):
        suffix = "" if index == 1 else f"_{index}"
        lines += [
            f"thanx_client_id{suffix}={credential.client_id}",
            f"thanx_access_token{suffix}={credential.access_token}",
            f"thanx_merchant_ids{suffix}={','.join(credential.merchant_ids)}",
        ]
    for index, merchant in enumerate(parsed.hpg_merchants, 1):
        suffix = "" if index == 1 else f"_{index}"
        lines += [f"hpgames_merchant_id{suffix}={merchant.id}", f"hpgames_secret{suffix}={merchant.secret}"]
    return lines


def config_from_args(args: argparse.Namespace, seed: Mapping[str, Any]) -> SandboxConfig:
    """The :class:`SandboxConfig` of parsed ``rewards-sandbox`` arguments (raises ValueError if invalid)."""
    return SandboxConfig(
        host=args.host,
        port=args.port,
        seed=seed,
        revoke_seconds=args.revoke_seconds,
        issue_seconds=args.issue_seconds,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        fault_kinds=tuple(kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()),
        retry_after_s=args.retry_after_s,
        latency_ms=args.latency_ms,
        timestamp_window_s=args.timestamp_window_s,
        log_requests=args.log_requests,
        log_bodies=args.log_bodies,
        rate_limit=args.rate_limit,
        retry_after_override=args.retry_after_override,
        already_cancelled=args.already_cancelled,
        error_200_actions=args.error_200_for,
        now_ms=args.now_ms,
        read_all_external_id=args.read_all_external_id,
        accept_unknown_ids=args.accept_unknown_ids,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.print_demo_seed:
        print(json.dumps(demo_seed(), indent=2))
        return 0
    try:
        seed = load_seed_file(args.seed) if args.seed else demo_seed()
        config = config_from_args(args, seed)
        server = SandboxServer(config)
        base_url = server.start()
    except (OSError, ValueError) as exc:
        print(f"rewards-sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        lines = [f"base_url={base_url}", *_credential_lines(server.state.seed), "ready=1"]
        print("\n".join(lines), flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped=1", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
