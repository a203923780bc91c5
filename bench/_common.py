"""Shared helpers of the benchmarks: scale switches, RSS/CPU readings, target lines, the sandbox process.

Every benchmark script is a parent that starts the sandbox in its own process (so its CPU and memory
never count as the client's) and runs each measured phase in a fresh child interpreter (so every
phase's peak RSS and CPU are its own). Children write their figures as JSON to ``--result-file``;
their stdout/stderr (Airflow's task and trigger logs) go to a log file, as a worker or triggerer
would write them, and are only shown when a child fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PYTHON = sys.executable
TARGET_PREFIX = "target "
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


def quick() -> bool:
    """``BENCH_QUICK=1``: every script at a scale that finishes within a minute, all together."""
    return os.environ.get("BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def scale_label() -> str:
    return "QUICK" if quick() else "FULL"


# ---------------------------------------------------------------------------------------------
# Readings
# ---------------------------------------------------------------------------------------------
def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size of a process, in MiB (from /proc/<pid>/statm)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process used so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (thousands of sockets); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        new = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def target(name: str, value: str, goal: str, ok: bool, *, prefix: str = TARGET_PREFIX) -> bool:
    """Print ``target <name>: <value> (goal <goal>) PASS|MISS``; return ``ok``.

    Experiments (configurations other than the product as shipped) print with another ``prefix``, so that
    ``run_all.py`` never takes them for results.
    """
    print(f"{prefix}{name}: {value} (goal {goal}) {'PASS' if ok else 'MISS'}", flush=True)
    return ok


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Print a plain-text table (also valid inside a Markdown code block)."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(padded))
    lines.insert(1, "  ".join("-" * w for w in widths))
    say("\n".join(lines))


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


# ---------------------------------------------------------------------------------------------
# Airflow environment of child processes
# ---------------------------------------------------------------------------------------------
def airflow_env(home: Path, connections: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Environment of a child: private AIRFLOW_HOME, no examples, connections as AIRFLOW_CONN_* JSON."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "PYTHONUNBUFFERED": "1",
    }
    for conn_id, fields in (connections or {}).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)
    return env


def run_child(
    script: Path, args: Sequence[str], env: dict[str, str], workdir: Path, name: str, timeout: float = 1800
) -> dict[str, Any]:
    """Run ``python script --child ... --result-file F`` and return the JSON it wrote.

    The child's stdout/stderr go to ``<workdir>/<name>.log``; on failure the tail is printed.
    """
    result_file = workdir / f"{name}.json"
    log_file = workdir / f"{name}.log"
    command = [PYTHON, str(script), "--child", *args, "--result-file", str(result_file)]
    with open(log_file, "wb") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT)
    if done.returncode != 0 or not result_file.exists():
        tail = log_file.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"child {name} failed (exit {done.returncode}); log tail:\n{tail}")
    result = json.loads(result_file.read_text())
    with open(log_file, errors="replace") as log:
        result["log_lines"] = sum(1 for _ in log)
    result["log_file"] = str(log_file)
    return result


def write_result(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=1))


def child_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory for seeds, results, logs and AIRFLOW_HOME; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"rewards-bench-{prefix}-") as path:
        yield Path(path)


# ---------------------------------------------------------------------------------------------
# The sandbox, in its own process
# ---------------------------------------------------------------------------------------------
@dataclass
class Sandbox:
    """A running ``python -m rewards_sandbox`` process bound to 127.0.0.1."""

    process: subprocess.Popen
    base_url: str
    credentials: dict[str, str]
    startup_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
        """Call a ``/_sandbox/*`` inspection route (stdlib only, so the caller needs no client library)."""
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}/_sandbox/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def bulk_cancel_ids(self) -> int:
        """Ids in the ``bulkCancel`` requests answered 200 since the log was last cleared (from ``batch_size``)."""
        entries = self.admin("GET", "requests")["requests"]
        return sum(e.get("batch_size", 0) for e in entries if e["path"].endswith("/bulkCancel") and e["status"] == 200)

    def clear_requests(self) -> None:
        self.admin("DELETE", "requests")

    def request_tally(self) -> dict[str, int]:
        """``{"<METHOD> <path kind> <status>": count}`` over the sandbox's request log (last 100,000)."""
        tally: dict[str, int] = {}
        for entry in self.admin("GET", "requests")["requests"]:
            path = entry["path"]
            kind = path.rsplit("/", 1)[-1] if "/api/" in path else "/".join(path.split("/")[:3]) + "/<id>"
            key = f"{entry['method']} {kind} {entry['status']}"
            tally[key] = tally.get(key, 0) + 1
        return tally


def write_seed(path: Path, seed: dict[str, Any], rewards: Iterator[dict[str, Any]] | None = None) -> float:
    """Write a JSON seed file, streaming ``rewards`` into ``hpgames.rewards``; return its size in MiB.

    Streaming keeps a 1,000,000-reward seed (about 180 MB of JSON) out of this process's memory.
    """
    with open(path, "w", encoding="utf-8") as out:
        if rewards is None:
            json.dump(seed, out)
        else:
            hpgames = {key: value for key, value in seed.get("hpgames", {}).items() if key != "rewards"}
            head = json.dumps({**seed, "hpgames": hpgames})
            out.write(head[:-2])  # drop the closing "}}" of hpgames and the seed
            out.write(', "rewards": [' if hpgames else '"rewards": [')
            for index, reward in enumerate(rewards):
                out.write("," if index else "")
                out.write(json.dumps(reward, separators=(",", ":")))
            out.write("]}}")
    return path.stat().st_size / 2**20


@contextlib.contextmanager
def sandbox_process(
    seed_file: Path,
    *,
    revoke_seconds: float = 5.0,
    startup_timeout: float = 600,
    log_file: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[Sandbox]:
    """Start the sandbox CLI on 127.0.0.1:0 with ``seed_file`` (and ``extra_args``, e.g. ``--latency-ms 20``);
    always stopped (SIGTERM, then SIGKILL)."""
    command = [
        PYTHON,
        "-m",
        "rewards_sandbox",
        "--host",
        LOOPBACK,
        "--port",
        "0",
        "--seed",
        str(seed_file),
        "--revoke-seconds",
        str(revoke_seconds),
        *extra_args,
    ]
    stderr = open(log_file, "wb") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        values: dict[str, str] = {}
        assert process.stdout is not None
        deadline = time.monotonic() + startup_timeout
        for line in process.stdout:
            key, _, value = line.strip().partition("=")
            values[key] = value
            if key == "ready" or time.monotonic() > deadline:
                break
        if values.get("ready") != "1" or not values.get("base_url", "").startswith(f"http://{LOOPBACK}:"):
            raise RuntimeError(f"the sandbox did not start (exit code {process.poll()}); got {values}")
        yield Sandbox(process, values["base_url"], values, time.perf_counter() - started)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if log_file:
            stderr.close()  # type: ignore[union-attr]


class TaskInstanceStub:
    """What the operators use of ``context["ti"]`` (as in tests/operators/conftest.py), and a record's identity."""

    dag_id, run_id, task_id, map_index, try_number = "bench", "bench__1", "bulk_cancel", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return None


def minimal_context() -> dict[str, Any]:
    """The operator tests' context, plus the ``outlet_events`` accessor a real task gets (for Asset events)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": TaskInstanceStub(), "params": {}, "outlet_events": OutletEventAccessors()}


# ---------------------------------------------------------------------------------------------
# HPGames helpers (stdlib only; the parent processes never import Airflow)
# ---------------------------------------------------------------------------------------------
def hpgames_signed(fields: dict[str, Any], merchant_id: str, secret: str) -> dict[str, Any]:
    """``fields`` plus ``merchantId``, ``timestamp`` (epoch ms) and ``hash`` (HMAC-SHA256 of merchantId+timestamp)."""
    import hashlib
    import hmac

    timestamp = time.time_ns() // 1_000_000
    signature = hmac.new(secret.encode(), f"{merchant_id}{timestamp}".encode(), hashlib.sha256).hexdigest()
    return {**fields, "merchantId": merchant_id, "timestamp": timestamp, "hash": signature}


def hpgames_post(base_url: str, action: str, body: dict[str, Any], timeout: float = 600) -> Any:
    """POST a signed body to ``/api/v1/integration/rewards/<action>``; the decoded JSON answer (None if empty)."""
    import urllib.request

    request = urllib.request.Request(
        f"{base_url}/api/v1/integration/rewards/{action}", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
    return json.loads(payload) if payload.strip() else None
