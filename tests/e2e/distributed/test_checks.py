"""The test of the test: the distributed run's checks fail, naming what is left, on runs made to be wrong.

A small sandbox (3 batches of 500 reward ids, 2 Thanx jobs, 2 players) receives a teardown sent batch by
batch over HTTP, exactly as the bulk operator sends it; one variant skips a batch (and a job), one resends a
batch, one cancels a reward no one targeted. The same functions the distributed e2e test calls must fail
on each, naming the rewards, batches, jobs and tasks, and :func:`~checks.require_clean` must carry the
components' log tails. The same run without the fault passes, so a failure is the fault's doing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import requests
from rewards_sandbox import DEMO_HPGAMES_MERCHANT_ID, DEMO_THANX_MERCHANT_ID, SandboxServer
from rewards_sandbox.testing import HPGAMES_REWARDS_PATH, hpgames_body, thanx_headers

from tests.e2e.distributed import checks
from tests.e2e.distributed.conftest import SMALL, generated_id, job_ids, query_player_ids, reward_ids
from tests.e2e.stack import StackError

IDS = reward_ids(SMALL["by_id"])
BATCHES = checks.batches(IDS, 500)
TARGETS = checks.Targets(
    thanx_merchant_id=DEMO_THANX_MERCHANT_ID,
    hpgames_merchant_id=DEMO_HPGAMES_MERCHANT_ID,
    issuance_job_ids=frozenset(job_ids(SMALL["jobs"])),
    reward_ids=frozenset(IDS),
    player_ids=frozenset(query_player_ids(SMALL["players"])),
)


def post(sandbox: SandboxServer, action: str, fields: dict[str, object]) -> None:
    response = requests.post(
        f"{sandbox.base_url}{HPGAMES_REWARDS_PATH}/{action}", json=hpgames_body(fields), timeout=10
    )
    assert response.status_code == 200, response.text


def teardown(
    sandbox: SandboxServer, batches: Sequence[Sequence[str]], jobs: Sequence[str], extra_ids: Sequence[str] = ()
) -> tuple[dict, dict]:
    """Send the teardown the way the DAG does (jobs revoked, ``batches`` bulk-cancelled, players by query);
    return the sandbox's snapshots before and after."""
    before = sandbox.snapshot()
    for job_id in jobs:
        response = requests.post(
            f"{sandbox.base_url}/partner/issuance_jobs/{job_id}/revoke",
            json={"merchant_id": DEMO_THANX_MERCHANT_ID},
            headers=thanx_headers(),
            timeout=10,
        )
        assert response.status_code == 202, response.text
    for batch in batches:
        post(sandbox, "bulkCancel", {"ids": list(batch)})
    if extra_ids:
        post(sandbox, "bulkCancel", {"ids": list(extra_ids)})
    post(sandbox, "bulkCancelByQuery", {"playerIds": sorted(TARGETS.player_ids)})
    return before, sandbox.snapshot()


def all_problems(sandbox: SandboxServer, before: dict, after: dict, resends: int = 1) -> list[str]:
    return checks.sandbox_problems(before, after, TARGETS) + checks.batch_problems(
        sandbox.request_log(), BATCHES, resends=resends
    )


def fails_naming(logged_stack, problems: list[str], *names: str) -> str:
    """``require_clean`` raises; its message names every one of ``names`` and ends with the log tails."""
    with pytest.raises(StackError) as failure:
        checks.require_clean(problems, logged_stack)
    message = str(failure.value)
    for name in names:
        assert name in message, f"{name!r} not named in:\n{message}"
    assert "----- worker1.stdout.log (exit code 0) -----" in message
    assert "worker1: task cancel_rewards_by_id_file started" in message
    return message


def test_the_clean_run_passes(small_sandbox, logged_stack):
    before, after = teardown(small_sandbox, BATCHES, sorted(TARGETS.issuance_job_ids))

    assert all_problems(small_sandbox, before, after) == []
    checks.require_clean([], logged_stack)  # returns


def test_a_run_that_skips_a_batch_and_a_job_fails_naming_what_is_left(small_sandbox, logged_stack):
    skipped = BATCHES[1]
    before, after = teardown(small_sandbox, [BATCHES[0], BATCHES[2]], sorted(TARGETS.issuance_job_ids)[:1])

    problems = all_problems(small_sandbox, before, after)

    assert len(problems) == 3, problems
    fails_naming(
        logged_stack,
        problems,
        "targeted HPGames rewards still live 500: ",
        min(skipped),  # the first id of the skipped batch, quoted by name
        "batches never sent (their ids were lost) 1: batch 2",
        f"Thanx jobs not revoked 1: {sorted(TARGETS.issuance_job_ids)[1]} (completed)",
    )


def test_an_untargeted_reward_cancelled_is_named(small_sandbox, logged_stack):
    bystander = generated_id(2, 7)  # a reward of the untouched entry

    before, after = teardown(small_sandbox, BATCHES, sorted(TARGETS.issuance_job_ids), extra_ids=[bystander])

    problems = all_problems(small_sandbox, before, after)
    fails_naming(
        logged_stack,
        problems,
        f"HPGames rewards changed but NOT targeted 1: {bystander} (IN_PROGRESS -> CANCELLED)",
        "bulkCancel batches that match no expected batch 1: sha256:",
    )


def test_a_batch_sent_twice_is_allowed_once_and_named_beyond(small_sandbox, logged_stack):
    before, after = teardown(small_sandbox, [*BATCHES, BATCHES[0], BATCHES[2]], sorted(TARGETS.issuance_job_ids))

    assert all_problems(small_sandbox, before, after, resends=2) == []
    problems = all_problems(small_sandbox, before, after, resends=1)
    fails_naming(logged_stack, problems, "batches resent (at most 1 allowed) 2: batch 1 x2, batch 3 x2")


@pytest.fixture
def write_results(tmp_path) -> Callable[[str, list[dict]], Path]:
    def write(name: str, lines: list[dict]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return path

    return write


def test_results_file_check_names_missing_repeated_and_failed_ids(write_results, logged_stack):
    ids = IDS[:4]
    lines = [
        {"id": ids[0], "outcome": "cancelled"},
        {"id": ids[1], "outcome": "already_cancelled"},
        {"id": ids[1], "outcome": "already_cancelled"},
        {"id": ids[2], "outcome": "not_attempted"},
    ]
    path = write_results("results.jsonl", lines)

    assert checks.results_problems(write_results("clean.jsonl", lines[:2]), ids[:2]) == []
    problems = checks.results_problems(path, ids)
    fails_naming(
        logged_stack,
        problems,
        f"ids not cancelled 1: {ids[2]} (not_attempted)",
        f"targeted ids missing 1: {ids[3]}",
        f"ids listed more than once 1: {ids[1]}",
    )
    assert checks.results_problems(path.parent / "absent.jsonl", ids) == [
        f"results file {path.parent / 'absent.jsonl'} is missing"
    ]


def test_task_check_names_every_task_not_in_its_expected_state(logged_stack):
    states = {"revoke_thanx_jobs": ["success", "failed", "success"], "teardown_report": ["success"], "extra": ["x"]}
    expected = {"revoke_thanx_jobs": "success", "teardown_report": "success", "cancel_rewards_by_id_file": "success"}

    problems = checks.task_problems(states, expected)

    fails_naming(
        logged_stack,
        problems,
        "task cancel_rewards_by_id_file: no task instance (expected success)",
        "task revoke_thanx_jobs: expected every instance success, got {'success': 2, 'failed': 1}",
        "unexpected tasks 1: extra",
    )
    assert checks.task_problems({"teardown_report": ["success"]}, {"teardown_report": "success"}) == []
