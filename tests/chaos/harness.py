"""Run the flagship teardown DAG with ``airflow dags test`` against a sandbox, and judge what it did.

Shared by the chaos runs (``tests/chaos``) and the secret scan (``tests/security``):

* :func:`template_home` migrates one SQLite metadata database; :func:`fresh_home` copies it, so every run
  gets its own ``AIRFLOW_HOME`` (logs and database hold that run only) without paying for a migration.
* :func:`teardown_env` builds the Airflow environment with snappy transport settings in both connections'
  extras and short task retries (``REWARDS_TEARDOWN_RETRY_DELAY``), so faults cost seconds, not minutes.
* :func:`incomplete_report` reads the report the DAG's ``teardown_report`` task failed with.
* :func:`verdict_problems` checks a run against the sandbox's own account of what is left.
* :func:`record_problems` checks the cancel tasks' records (``results.jsonl``) against the sandbox.
"""

from __future__ import annotations

import ast
import collections
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards_sandbox.demo import Credentials, DagRunResult, TeardownReport, airflow_env, migrate

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
RETRY_DELAY_ENV = "REWARDS_TEARDOWN_RETRY_DELAY"
CONNECTION_VARIABLES = ("AIRFLOW_CONN_THANX_DEFAULT", "AIRFLOW_CONN_HPGAMES_DEFAULT")
#: Transport settings for runs against a local sandbox: the first backoff 0.1 s (doubling, capped at 1 s),
#: the default 5 retries, and short timeouts (a dropped connection is noticed at once anyway).
FAST_TRANSPORT: dict[str, Any] = {
    "retry_backoff": 0.1,
    "retry_backoff_max": 1.0,
    "connect_timeout": 5,
    "read_timeout": 15,
}
INCOMPLETE = "Teardown incomplete: "
#: The flagship's list tasks and the param each reads; a record of each is under <hpgames_results_path>/<task_id>.
LIST_TASK_PARAMS = {
    "cancel_rewards_by_id": "hpgames_reward_ids",
    "cancel_rewards_by_external_id": "hpgames_external_reward_ids",
    "cancel_rewards_by_player": "hpgames_player_ids",
}
#: The flagship's file tasks and the param naming each one's file (one id per line in the chaos runs).
FILE_TASK_PARAMS = {
    "cancel_rewards_by_id_file": "hpgames_reward_ids_path",
    "cancel_rewards_by_external_id_file": "hpgames_external_reward_ids_path",
    "cancel_rewards_by_player_file": "hpgames_player_ids_path",
}
#: Outcomes that say an id is done (the rest say it is not: refused, unconfirmed, not_attempted).
SETTLED_OUTCOMES = ("cancelled", "already_cancelled")


def template_home(root: Path) -> Path:
    """A migrated ``AIRFLOW_HOME`` under ``root`` to copy from (see :func:`fresh_home`)."""
    home = root / "template-home"
    home.mkdir(parents=True)
    migrate(airflow_env(home, DAGS_FOLDER, "http://127.0.0.1:9", Credentials.demo()))
    return home


def fresh_home(template: Path, home: Path) -> Path:
    """A new ``AIRFLOW_HOME`` holding a copy of the template's migrated database and nothing else."""
    home.mkdir(parents=True)
    shutil.copy2(template / "airflow.db", home / "airflow.db")
    return home


def teardown_env(
    home: Path,
    base_url: str,
    credentials: Credentials,
    *,
    dags_folder: Path = DAGS_FOLDER,
    poll_interval: float = 0.5,
    retry_delay: float = 1.0,
    transport: Mapping[str, Any] = FAST_TRANSPORT,
) -> dict[str, str]:
    """:func:`airflow_env`, plus ``transport`` in both connections' extras and a short task retry delay."""
    env = airflow_env(
        home, dags_folder, base_url, credentials, poll_interval=poll_interval, extra={RETRY_DELAY_ENV: str(retry_delay)}
    )
    for variable in CONNECTION_VARIABLES:
        add_extra(env, variable, transport)
    return env


def add_extra(env: dict[str, str], variable: str, extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into the extra of the JSON connection in ``env[variable]``."""
    connection = json.loads(env[variable])
    connection["extra"] = {**connection.get("extra", {}), **extra}
    env[variable] = json.dumps(connection)


def incomplete_report(output: str) -> dict[str, Any] | None:
    """The report dict of the last ``Teardown incomplete: {...}`` failure in ``output``, or None."""
    start = output.rfind(INCOMPLETE)
    if start == -1:
        return None
    text = output[start + len(INCOMPLETE) :]
    depth = 0
    for end, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return ast.literal_eval(text[: end + 1])
    raise AssertionError(f"unterminated report after {INCOMPLETE!r}: {text[:500]!r}")


@dataclass(frozen=True)
class Outcome:
    """One run, for the per-seed record."""

    seed: int
    transport_retries: int
    succeeded: bool
    seconds: float
    faults: dict[str, int]
    requests: int
    task_retries: int
    left: list[str]
    already_cancelled: str = "ok"

    def line(self) -> str:
        verdict = "success, clean" if self.succeeded else f"FAILED naming what is left: {', '.join(self.left)}"
        return (
            f"seed {self.seed} (max_retries={self.transport_retries}, already cancelled: {self.already_cancelled}): "
            f"{verdict}; {self.seconds:.1f}s; "
            f"{self.requests} vendor requests, faults injected {dict(sorted(self.faults.items()))}, "
            f"task retries {self.task_retries}"
        )


def task_retries(output: str) -> int:
    """How many task tries of a ``dags test`` run failed and were retried."""
    return output.count("new_state=up_for_retry")


def reward_names(before: Mapping[str, Any], merchant_id: str, reward_id: str) -> set[str]:
    """Every name the DAG may use for a reward: its id (any case) and its external id."""
    reward = before["hpgames"]["merchants"][merchant_id]["rewards"][reward_id]
    return {reward_id.lower(), reward["externalId"]}


def verdict_problems(
    result: DagRunResult,
    report: TeardownReport,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    hpgames_merchant_id: str,
    thanx_merchant_id: str,
) -> list[str]:
    """What is wrong with a run, judged against the sandbox's state (``report`` from ``teardown_report``).

    * Nothing outside the targets changed, ever.
    * A successful DAG run left nothing targeted undone.
    * A failed DAG run failed with the report task's ``Teardown incomplete`` message, which names every job
      and reward still left (as left, or under ``not_verified`` when it could not be read back), and names
      nothing that was done (a job it names may only have finished revoking
      after the report read it: then it names it ``revoking``).
    """
    problems = [f"changed but not targeted: {item}" for item in report.collateral]
    if result.succeeded:
        if report.jobs_left or report.rewards_left:
            problems.append(f"the DAG run succeeded, but the teardown is not done:\n{report.render()}")
        return problems
    if not (report.jobs_left or report.rewards_left):
        # Everything was torn down, yet a task failed: allowed (a failure is never hidden), nothing to name.
        return problems
    named = incomplete_report(result.output)
    if named is None:
        return [*problems, f"the DAG run failed without a '{INCOMPLETE}' report naming what is left"]
    jobs_named: dict[str, str] = named["jobs_not_revoked"]
    rewards_named = " ".join(named["rewards_still_live"]).lower()
    not_verified: dict[str, str] = named.get("not_verified", {})  # what the report could not read back
    for job_id, state in report.jobs_left.items():
        if job_id not in jobs_named and f"thanx job {job_id}" not in not_verified:
            problems.append(f"job {job_id} is {state} but the failure does not name it: {named}")
    for reward_id in report.rewards_left:
        names = reward_names(before, hpgames_merchant_id, reward_id)
        if not any(name.lower() in rewards_named for name in names) and "hpgames rewards" not in not_verified:
            problems.append(f"reward {reward_id} is live but the failure does not name it: {named}")
    jobs_after = after["thanx"]["merchants"][thanx_merchant_id]["issuance_jobs"]
    for job_id, state in jobs_named.items():
        if job_id not in report.jobs_left and not (state == "revoking" and jobs_after[job_id]["state"] == "revoked"):
            problems.append(f"the failure names job {job_id} ({state}), which is {jobs_after[job_id]['state']}")
    live_names = set().union(*(reward_names(before, hpgames_merchant_id, rid) for rid in report.rewards_left))
    for entry in named["rewards_still_live"]:
        if entry.split(" (player ")[0].lower() not in {name.lower() for name in live_names}:
            problems.append(f"the failure names reward {entry}, which is not live")
    return problems


def read_record(folder: Path) -> list[dict[str, Any]] | None:
    """The lines of ``folder/results.jsonl``, or None when the task wrote no record."""
    path = folder / "results.jsonl"
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record_problems(
    results_root: Path,
    succeeded: bool,
    params: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    hpgames_merchant_id: str,
) -> list[str]:
    """What is wrong with the cancel tasks' records under ``results_root`` (the run's ``hpgames_results_path``):
    the list tasks', and the file tasks' of any file param given (a file of one id per line).

    * A record holds every target id of its task exactly once (a task with targets that wrote no record is
      only allowed in a failed run: its input was refused before anything was sent).
    * An id recorded ``cancelled``/``already_cancelled`` is done in the sandbox: the reward is CANCELLED, or the
      player has no live reward left (of the filtered configuration). A record never hides undone work.
    * In a successful run every recorded id is settled.
    """
    problems: list[str] = []
    rewards_before = before["hpgames"]["merchants"][hpgames_merchant_id]["rewards"]
    rewards_after = after["hpgames"]["merchants"][hpgames_merchant_id]["rewards"]
    by_external = {reward["externalId"]: rid for rid, reward in rewards_before.items()}
    config = (params.get("reward_configuration_id") or "").lower() or None

    def done(field: str, value: str) -> bool:
        if field == "player_ids":
            return not any(
                r["playerId"] == value
                and r["status"] == "IN_PROGRESS"
                and (config is None or r["rewardConfigurationId"].lower() == config)
                for r in rewards_after.values()
            )
        rid = value.lower() if field == "reward_ids" else by_external.get(value)
        return rid in rewards_after and rewards_after[rid]["status"] == "CANCELLED"

    tasks = {task_id: params.get(param) or [] for task_id, param in LIST_TASK_PARAMS.items()}
    for task_id, param in FILE_TASK_PARAMS.items():
        if params.get(param):
            tasks[task_id] = [line for line in Path(params[param]).read_text().splitlines() if line]
    for task_id, ids in tasks.items():
        uuids = task_id.startswith("cancel_rewards_by_id")
        targets = {str(t).lower() if uuids else str(t) for t in ids}
        lines = read_record(results_root / task_id)
        if not targets:
            continue
        if lines is None:
            if succeeded:
                problems.append(f"the run succeeded but {task_id} wrote no record in {results_root / task_id}")
            continue
        counts = collections.Counter(line["id"] for line in lines)
        if repeated := sorted(i for i, n in counts.items() if n > 1):
            problems.append(f"{task_id}'s record names {repeated} more than once")
        if set(counts) != targets:
            missing, extra = sorted(targets - set(counts)), sorted(set(counts) - targets)
            problems.append(f"{task_id}'s record misses {missing} and names {extra}, not targeted")
        for line in lines:
            settled = line["outcome"] in SETTLED_OUTCOMES
            if settled and not done(line["field"], line["id"]):
                problems.append(f"{task_id}'s record says {line['id']} is {line['outcome']}, but it is not done")
            if succeeded and not settled:
                problems.append(f"the run succeeded but {task_id}'s record says {line['id']} is {line['outcome']}")
    return problems
