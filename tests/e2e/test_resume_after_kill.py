"""Issue #14 acceptance: a worker SIGKILLed in the middle of a 100,000-id bulk cancel, then retried.

A sandbox holds 100,000 generated IN_PROGRESS rewards besides the demo seed and answers every vendor
request after ``LATENCY_MS``, so the run takes about half a minute. A subprocess
(``bulk_cancel_worker.py``: the operator's ``execute()`` with a minimal task context) cancels them from
a file (``reward_ids_path``, one id per line) into ``results_path``, ``batch_size=500``. Once the
checkpoint holds ``KILL_AFTER`` settled batches the process is SIGKILLed (by PID), then started again
with the same arguments (``resume=True`` is the default), at ``max_concurrency`` 1 and 4 (batches then
settle out of order, and up to 4 are in flight at the kill). Asserted:

* every id is in results.jsonl exactly once, with one outcome, and the summary's counts agree;
* no batch settled before the kill is sent again (the sandbox's request log: ``batch_digest`` per
  ``bulkCancel``, compared with :func:`rewards_sandbox.id_set_digest` of each batch), no batch is sent
  twice by the second run, and every batch the second run did not send was in flight at the kill;
* the results equal the sandbox's final state: every targeted reward CANCELLED, nothing else changed.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rewards_sandbox as seed
from rewards_sandbox import id_set_digest
from rewards_sandbox.demo import Credentials, airflow_env
from rewards_sandbox.seed import parse_seed
from rewards_sandbox.testing import reward_statuses, running_sandbox

pytestmark = pytest.mark.e2e

N = 100_000
BATCH_SIZE = 500
BATCHES = N // BATCH_SIZE
LATENCY_MS = 120  # x 200 batches: about 25 s for a whole run
KILL_AFTER = 40  # settled batches in the checkpoint when the worker is killed
WORKER = Path(__file__).with_name("bulk_cancel_worker.py")
ROOT = Path(__file__).resolve().parents[2]
BULK_CANCEL = "/api/v1/integration/rewards/bulkCancel"
SETTLED = ("cancelled", "already_cancelled")
ID_RE = re.compile(r"9e000000-0000-4000-8000-\d{12}")


def generated_seed(count: int) -> dict:
    """The demo seed plus ``count`` generated IN_PROGRESS rewards of the demo merchant."""
    data = seed.demo_seed()
    data["hpgames"]["generated_rewards"] = [
        {
            "merchantId": seed.DEMO_HPGAMES_MERCHANT_ID,
            "rewardConfigurationId": seed.DEMO_HPGAMES_CONFIG_ID,
            "count": count,
        }
    ]
    return data


@pytest.fixture(scope="module")
def campaign() -> tuple[dict, list[str]]:
    """The seed and its generated reward ids, in file order."""
    data = generated_seed(N)
    generated = parse_seed(data).generated_rewards[0]
    return data, [generated.reward_id(n) for n in range(N)]


@pytest.fixture
def sandbox(campaign):
    with running_sandbox(seed=campaign[0], latency_ms=LATENCY_MS, revoke_seconds=1.0) as server:
        yield server


class Worker:
    """Runs bulk_cancel_worker.py as a child process; :meth:`stop` kills it by PID if still alive."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def checkpoint_parts(results: Path) -> list[Path]:
    """The settled-batch parts written so far (temporary names excluded)."""
    folder = results / "checkpoint"
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and "tmp" not in p.name]


def batch_of(ids: list[str]) -> dict[str, int]:
    """``{id: 1-based batch number}`` of a file without duplicates."""
    return {rid: index // BATCH_SIZE + 1 for index, rid in enumerate(ids)}


def digests_by_batch(ids: list[str]) -> dict[int, str]:
    return {
        number: id_set_digest(ids[(number - 1) * BATCH_SIZE : number * BATCH_SIZE], lower=True)
        for number in range(1, BATCHES + 1)
    }


def sent_digests(sandbox) -> list[str]:
    return [entry["batch_digest"] for entry in sandbox.request_log() if entry["path"] == BULK_CANCEL]


def settled_request_log(sandbox, quiet: float = 0.5, timeout: float = 15.0) -> list[str]:
    """The bulkCancel digests once the log has stopped growing for ``quiet`` seconds.

    The sandbox logs a request when it has answered it: requests a killed worker left in flight are logged
    after the kill, and must count as the first try's, not the retry's.
    """
    deadline = time.monotonic() + timeout
    seen = sent_digests(sandbox)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sent_digests(sandbox)
        if len(now) == len(seen):
            return now
        seen = now
    raise AssertionError(f"the sandbox's request log kept growing for {timeout} s after the kill")


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_a_killed_bulk_cancel_resumes_after_its_last_settled_batch(
    sandbox, campaign, workers, tmp_path, max_concurrency
):
    started = time.monotonic()
    _, ids = campaign
    ids_file = tmp_path / "reward_ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    results, summary_file = tmp_path / "results", tmp_path / "summary.json"
    env = airflow_env(tmp_path / "airflow-home", ROOT / "dags", sandbox.base_url, Credentials.demo())
    args = ["--reward-ids-path", str(ids_file), "--results-path", str(results)]
    args += ["--batch-size", str(BATCH_SIZE), "--max-concurrency", str(max_concurrency), "--out", str(summary_file)]
    before = sandbox.snapshot()
    by_batch, digests = batch_of(ids), digests_by_batch(ids)

    # First try: killed once the checkpoint holds KILL_AFTER batches.
    first = Worker(env, args, tmp_path / "worker-1.log")
    workers.append(first)
    deadline = time.monotonic() + 60
    while len(checkpoint_parts(results)) < KILL_AFTER:
        assert first.process.poll() is None, f"the worker ended before the kill:\n{first.tail()}"
        assert time.monotonic() < deadline, f"no {KILL_AFTER} settled batches within 60 s:\n{first.tail()}"
        time.sleep(0.05)
    first.kill()
    confirmed_ids = {rid for part in checkpoint_parts(results) for rid in ID_RE.findall(part.read_text())}
    confirmed = {by_batch[rid] for rid in confirmed_ids}
    assert KILL_AFTER <= len(confirmed) < BATCHES, f"{len(confirmed)} batches settled: the kill was not mid-run"
    assert confirmed_ids == {rid for rid in ids if by_batch[rid] in confirmed}, (
        "a checkpoint part holds part of a batch"
    )
    at_kill = reward_statuses(sandbox.snapshot())
    assert all(at_kill[rid] == "CANCELLED" for rid in confirmed_ids), "a settled batch is not cancelled"
    first_run = settled_request_log(sandbox)
    assert len(first_run) == len(set(first_run)), "the first try sent a batch twice"
    in_flight = set(first_run) - {digests[number] for number in confirmed}
    sandbox.clear_request_log()

    # Second try: the same command.
    second = Worker(env, args, tmp_path / "worker-2.log")
    workers.append(second)
    assert second.process.wait(timeout=90) == 0, f"the retry failed:\n{second.tail()}"
    second_run = sent_digests(sandbox)
    assert not set(second_run) & {digests[number] for number in confirmed}, "a settled batch was sent again"
    assert max(collections.Counter(second_run).values()) == 1, "the retry sent a batch twice"
    unsent = {digests[number] for number in range(1, BATCHES + 1) if number not in confirmed} - set(second_run)
    assert unsent <= in_flight, "a batch that was never sent is missing from the retry"

    # Every id exactly once with one outcome; the counts agree; the sandbox agrees.
    lines = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines() if line.strip()]
    outcomes = {line["id"]: line["outcome"] for line in lines}
    assert len(lines) == N, "results.jsonl does not hold one line per id"
    assert set(outcomes) == set(ids), "results.jsonl does not hold every id"
    assert {line["field"] for line in lines} == {"reward_ids"}
    assert all(line["batch"] == by_batch[line["id"]] for line in lines)
    counts = collections.Counter(outcomes.values())
    assert set(counts) <= set(SETTLED), counts
    summary = json.loads(summary_file.read_text())
    assert sum(summary.get(outcome, 0) for outcome in SETTLED) == N, summary
    after = reward_statuses(sandbox.snapshot())
    assert all(after[rid] == "CANCELLED" for rid in ids)
    untouched = reward_statuses(before)
    assert {rid: s for rid, s in after.items() if rid not in by_batch} == {
        rid: s for rid, s in untouched.items() if rid not in by_batch
    }, "a reward outside the file changed"
    assert time.monotonic() - started < 90
