"""The checks of a distributed teardown run, as functions of what the run left behind.

Each ``*_problems`` function returns a list of problems (empty: the check passed), each naming what is wrong
(a job, a reward, a batch, a task) so that :func:`require_clean` can fail with all of them at once, followed by
every component's log tail. They take plain data (sandbox snapshots, the sandbox's request log, task states,
a results file), so ``test_checks.py`` proves them on runs made to be wrong without starting Airflow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards_sandbox import id_set_digest

from tests.e2e.stack import AirflowStack

LIVE = "IN_PROGRESS"
#: Outcomes of results.jsonl that mean the reward is cancelled now.
DONE_OUTCOMES = frozenset({"cancelled", "already_cancelled"})
BULK_CANCEL_PATH = "/api/v1/integration/rewards/bulkCancel"
#: At most this many ids are quoted per problem; the count is always given.
QUOTED = 10


@dataclass(frozen=True)
class Targets:
    """What a teardown run was asked to take back (reward ids lowercased)."""

    thanx_merchant_id: str
    hpgames_merchant_id: str
    issuance_job_ids: frozenset[str] = frozenset()
    reward_ids: frozenset[str] = frozenset()
    player_ids: frozenset[str] = frozenset()


def quoted(ids: Iterable[str]) -> str:
    """``n: a, b, c ...`` with at most :data:`QUOTED` ids, sorted."""
    ordered = sorted(ids)
    more = f" ... and {len(ordered) - QUOTED} more" if len(ordered) > QUOTED else ""
    return f"{len(ordered)}: {', '.join(ordered[:QUOTED])}{more}"


def _jobs(snapshot: Mapping[str, Any], merchant_id: str) -> dict[str, str]:
    jobs = snapshot["thanx"]["merchants"][merchant_id]["issuance_jobs"]
    return {job_id: job["state"] for job_id, job in jobs.items()}


def _rewards(snapshot: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (merchant, reward_id): reward
        for merchant, data in snapshot["hpgames"]["merchants"].items()
        for reward_id, reward in data["rewards"].items()
    }


def targeted_rewards(before: Mapping[str, Any], targets: Targets) -> set[str]:
    """Ids of the rewards the run aims at: listed by id, or live at the start and held by a listed player."""
    rewards = before["hpgames"]["merchants"][targets.hpgames_merchant_id]["rewards"]
    return {
        reward_id
        for reward_id, reward in rewards.items()
        if reward_id.lower() in targets.reward_ids
        or (reward.get("playerId") in targets.player_ids and reward.get("status") == LIVE)
    }


def sandbox_problems(before: Mapping[str, Any], after: Mapping[str, Any], targets: Targets) -> list[str]:
    """Everything targeted torn down (jobs revoked, rewards not live), nothing else changed (any merchant)."""
    problems = []
    jobs_after = _jobs(after, targets.thanx_merchant_id)
    missing_jobs = sorted(targets.issuance_job_ids - set(jobs_after))
    if missing_jobs:
        problems.append(f"targeted Thanx jobs unknown to the sandbox {quoted(missing_jobs)}")
    left_jobs = [
        f"{j} ({jobs_after[j]})" for j in targets.issuance_job_ids & set(jobs_after) if jobs_after[j] != "revoked"
    ]
    if left_jobs:
        problems.append(f"Thanx jobs not revoked {quoted(left_jobs)}")
    changed_jobs = [
        f"{merchant}/{job_id} ({state} -> {after['thanx']['merchants'][merchant]['issuance_jobs'][job_id]['state']})"
        for merchant, data in before["thanx"]["merchants"].items()
        for job_id, job in data["issuance_jobs"].items()
        if (state := job["state"]) != after["thanx"]["merchants"][merchant]["issuance_jobs"][job_id]["state"]
        and not (merchant == targets.thanx_merchant_id and job_id in targets.issuance_job_ids)
    ]
    if changed_jobs:
        problems.append(f"Thanx jobs changed but NOT targeted {quoted(changed_jobs)}")

    targeted = targeted_rewards(before, targets)
    rewards_before, rewards_after = _rewards(before), _rewards(after)
    merchant = targets.hpgames_merchant_id
    left = [rid for rid in targeted if rewards_after[(merchant, rid)]["status"] == LIVE]
    if left:
        problems.append(f"targeted HPGames rewards still live {quoted(left)}")
    known = {rid.lower() for (m, rid) in rewards_before if m == merchant}
    unknown = targets.reward_ids - known
    if unknown:
        problems.append(f"targeted HPGames reward ids unknown to the sandbox {quoted(unknown)}")
    collateral = [
        f"{key[1]} ({reward['status']} -> {rewards_after[key]['status']})"
        for key, reward in rewards_before.items()
        if reward["status"] != rewards_after[key]["status"] and not (key[0] == merchant and key[1] in targeted)
    ]
    if collateral:
        problems.append(f"HPGames rewards changed but NOT targeted {quoted(collateral)}")
    return problems


def task_problems(states: Mapping[str, Sequence[str]], expected: Mapping[str, str]) -> list[str]:
    """Every task of ``expected`` present and every one of its instances (map indexes) in the expected state."""
    problems = []
    for task_id, wanted in sorted(expected.items()):
        got = list(states.get(task_id, ()))
        if not got:
            problems.append(f"task {task_id}: no task instance (expected {wanted})")
        elif any(state != wanted for state in got):
            problems.append(f"task {task_id}: expected every instance {wanted}, got {dict(Counter(got))}")
    unexpected = sorted(set(states) - set(expected))
    if unexpected:
        problems.append(f"unexpected tasks {quoted(unexpected)}")
    return problems


def results_problems(results_file: Path, expected_ids: Iterable[str]) -> list[str]:
    """The results record lists every targeted id exactly once, each ``cancelled`` or ``already_cancelled``."""
    if not results_file.is_file():
        return [f"results file {results_file} is missing"]
    seen: Counter[str] = Counter()
    not_done: list[str] = []
    with results_file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return [f"results file {results_file} line {number} is not JSON: {line[:200]!r}"]
            seen[record["id"]] += 1
            if record.get("outcome") not in DONE_OUTCOMES:
                not_done.append(f"{record['id']} ({record.get('outcome')})")
    expected = {str(i).lower() for i in expected_ids}
    problems = []
    if not_done:
        problems.append(f"results file {results_file}: ids not cancelled {quoted(not_done)}")
    missing = expected - set(seen)
    if missing:
        problems.append(f"results file {results_file}: targeted ids missing {quoted(missing)}")
    extra = set(seen) - expected
    if extra:
        problems.append(f"results file {results_file}: ids that were not targeted {quoted(extra)}")
    repeated = [i for i, n in seen.items() if n > 1]
    if repeated:
        problems.append(f"results file {results_file}: ids listed more than once {quoted(repeated)}")
    return problems


def batches(ids: Sequence[str], size: int) -> list[list[str]]:
    """The batches a bulk operator sends for ``ids`` (already unique, in order)."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def batch_problems(
    request_log: Iterable[Mapping[str, Any]], expected: Sequence[Sequence[str]], resends: int
) -> list[str]:
    """Every expected batch (by its id-set digest) sent with a 200 answer, none that was not expected, and at
    most ``resends`` sent more than once (a batch in flight when a worker died may be sent again)."""
    digests = {id_set_digest(batch, lower=True): number for number, batch in enumerate(expected, 1)}
    sent = Counter(
        entry.get("batch_digest")
        for entry in request_log
        if entry["path"] == BULK_CANCEL_PATH and entry["status"] == 200 and entry.get("batch_field") == "ids"
    )
    problems = []
    never = [f"batch {n}" for digest, n in digests.items() if not sent[digest]]
    if never:
        problems.append(f"batches never sent (their ids were lost) {quoted(never)}")
    unexpected = [str(d) for d in sent if d not in digests]
    if unexpected:
        problems.append(f"bulkCancel batches that match no expected batch {quoted(unexpected)}")
    again = [f"batch {digests[d]} x{n}" for d, n in sent.items() if d in digests and n > 1]
    if len(again) > resends:
        problems.append(f"batches resent (at most {resends} allowed) {quoted(again)}")
    return problems


def require_clean(problems: Sequence[str], stack: AirflowStack, what: str = "distributed teardown") -> None:
    """Fail naming every problem, followed by every component's log tail; return when there is none."""
    if problems:
        raise stack.fail(f"{what}: {len(problems)} check(s) failed:\n- " + "\n- ".join(problems))
