"""``make demo``: run the teardown DAG against the built-in sandbox and print a teardown report.

Steps: start the sandbox (demo seed) on a free loopback port; make a temporary ``AIRFLOW_HOME``
with ``thanx_default`` and ``hpgames_default`` pointing at the sandbox through ``AIRFLOW_CONN_*``;
``airflow db migrate``; ``airflow dags test rewards_campaign_teardown -c <targets>`` (the DAG
carries no targets of its own: :func:`demo_params` are passed as the run's conf); compare the
sandbox state before and after; print the report; stop the sandbox. Exit status 0 only when the DAG run
succeeded and the report is clean (everything targeted torn down, nothing else touched).

The pieces (:func:`airflow_env`, :func:`run_dag`, :func:`teardown_report`) are reused by the
end-to-end tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGSHIP_DAG_ID = "rewards_campaign_teardown"
POLL_INTERVAL_ENV = "REWARDS_TEARDOWN_POLL_INTERVAL"


@dataclass(frozen=True)
class Credentials:
    """What the two connections hold; the demo uses the sandbox's demo credentials."""

    thanx_client_id: str
    thanx_access_token: str
    thanx_merchant_id: str
    hpgames_merchant_id: str
    hpgames_secret: str

    @classmethod
    def demo(cls) -> Credentials:
        import rewards_sandbox as sandbox

        return cls(
            sandbox.DEMO_THANX_CLIENT_ID,
            sandbox.DEMO_THANX_ACCESS_TOKEN,
            sandbox.DEMO_THANX_MERCHANT_ID,
            sandbox.DEMO_HPGAMES_MERCHANT_ID,
            sandbox.DEMO_HPGAMES_SECRET,
        )


def demo_params() -> dict[str, Any]:
    """The flagship DAG run's conf (``-c``): what the sandbox's demo seed expects a teardown to take back.

    The DAG's own defaults are empty; these demo targets exist only here."""
    import rewards_sandbox as sandbox

    return {
        "thanx_merchant_id": sandbox.DEMO_THANX_MERCHANT_ID,
        "issuance_job_ids": list(sandbox.DEMO_THANX_REVOKE_JOB_IDS),
        "hpgames_reward_ids": list(sandbox.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS),
        "hpgames_external_reward_ids": list(sandbox.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS),
        "hpgames_player_ids": list(sandbox.DEMO_HPGAMES_QUERY_PLAYER_IDS),
        "reward_configuration_id": sandbox.DEMO_HPGAMES_EXTERNAL_CONFIG_UUID,
        "dry_run": False,
    }


def airflow_env(
    home: Path,
    dags_folder: Path,
    base_url: str,
    credentials: Credentials,
    *,
    poll_interval: float = 1.0,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for Airflow commands: a private home, our DAGs, both connections at ``base_url``."""
    thanx = {
        "conn_type": "thanx",
        "host": base_url,
        "login": credentials.thanx_client_id,
        "password": credentials.thanx_access_token,
        "extra": {"merchant_id": credentials.thanx_merchant_id},
    }
    hpgames = {
        "conn_type": "hpgames",
        "host": base_url,
        "login": credentials.hpgames_merchant_id,
        "password": credentials.hpgames_secret,
    }
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW_CONN_THANX_DEFAULT": json.dumps(thanx),
        "AIRFLOW_CONN_HPGAMES_DEFAULT": json.dumps(hpgames),
        POLL_INTERVAL_ENV: str(poll_interval),
        **(extra or {}),
    }


def airflow(*args: str, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this interpreter; output captured, never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def migrate(env: Mapping[str, str]) -> None:
    """Create the metadata database in ``AIRFLOW_HOME`` (SQLite)."""
    done = airflow("db", "migrate", env=env)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


@dataclass(frozen=True)
class DagRunResult:
    """Outcome of one ``airflow dags test`` run."""

    succeeded: bool
    output: str
    seconds: float
    run_id: str | None = None


def run_dag(
    dag_id: str, env: Mapping[str, str], conf: Mapping[str, Any] | None = None, timeout: float = 600
) -> DagRunResult:
    """``airflow dags test dag_id [-c conf]``; success means exit 0 and a DAG run that ended in success."""
    args = ["dags", "test", dag_id]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    started = time.monotonic()
    done = airflow(*args, env=env, timeout=timeout)
    output = done.stdout + done.stderr
    finished = re.search(rf"DagRun Finished: dag_id={re.escape(dag_id)},.*? run_id=([^,]+),.*? state=(\w+),", output)
    succeeded = done.returncode == 0 and finished is not None and finished.group(2) == "success"
    return DagRunResult(succeeded, output, time.monotonic() - started, finished.group(1) if finished else None)


def task_states(dag_id: str, run_id: str, env: Mapping[str, str]) -> dict[str, list[str]]:
    """``{task_id: [state of each (mapped) instance]}`` of a finished run, from the metadata database."""
    done = airflow("tasks", "states-for-dag-run", dag_id, run_id, "-o", "json", env=env)
    if done.returncode != 0:
        raise RuntimeError(f"airflow tasks states-for-dag-run failed:\n{done.stderr[-3000:]}")
    states: dict[str, list[str]] = {}
    for row in json.loads(done.stdout[done.stdout.index("[") :]):
        states.setdefault(row["task_id"], []).append(row["state"])
    return states


@dataclass(frozen=True)
class Targets:
    """What a teardown run was asked to take back (the flagship DAG's params)."""

    thanx_merchant_id: str
    issuance_job_ids: Sequence[str] = ()
    hpgames_reward_ids: Sequence[str] = ()
    hpgames_external_reward_ids: Sequence[str] = ()
    hpgames_player_ids: Sequence[str] = ()
    reward_configuration_id: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Targets:
        return cls(**{name: params[name] for name in cls.__dataclass_fields__ if name in params})


@dataclass
class TeardownReport:
    """Targeted jobs and rewards, what became of them, and anything changed that was not targeted."""

    jobs_revoked: list[str] = field(default_factory=list)
    jobs_left: dict[str, str] = field(default_factory=dict)
    rewards_cancelled: list[str] = field(default_factory=list)
    rewards_left: dict[str, str] = field(default_factory=dict)
    collateral: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.jobs_left or self.rewards_left or self.collateral)

    def render(self) -> str:
        lines = [
            f"Thanx issuance jobs revoked: {len(self.jobs_revoked)}",
            f"HPGames rewards cancelled:  {len(self.rewards_cancelled)}",
        ]
        if self.jobs_left:
            lines.append("Jobs NOT revoked: " + ", ".join(f"{k} ({v})" for k, v in sorted(self.jobs_left.items())))
        if self.rewards_left:
            left = ", ".join(f"{k} ({v})" for k, v in sorted(self.rewards_left.items()))
            lines.append(f"Rewards still live: {left}")
        if self.collateral:
            lines.append("Changed but NOT targeted: " + ", ".join(self.collateral))
        lines.append("Left to tear down: nothing" if self.clean else "Teardown is NOT clean")
        return "\n".join(lines)


def _jobs(snapshot: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (merchant, job_id): job["state"]
        for merchant, data in snapshot["thanx"]["merchants"].items()
        for job_id, job in data["issuance_jobs"].items()
    }


def _rewards(snapshot: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (merchant, reward_id): reward
        for merchant, data in snapshot["hpgames"]["merchants"].items()
        for reward_id, reward in data["rewards"].items()
    }


def targeted_rewards(before: Mapping[str, Any], targets: Targets, hpgames_merchant_id: str) -> set[str]:
    """Reward ids a teardown aims at, by the provider's own rule
    (:meth:`~airflow_provider_rewards.operators.report.TeardownTargets.targets_reward`), applied to the
    sandbox's records (which know each reward's external id)."""
    from airflow_provider_rewards.operators.report import TeardownTargets

    # Built unvalidated on purpose: a test may name ids the provider refuses (they then match no record).
    rule = TeardownTargets(
        issuance_job_ids=(),
        reward_ids=tuple(str(rid).lower() for rid in targets.hpgames_reward_ids),
        external_ids=tuple(targets.hpgames_external_reward_ids),
        player_ids=tuple(targets.hpgames_player_ids),
        reward_configuration_id=targets.reward_configuration_id or None,
    )
    rewards = {rid: r for (m, rid), r in _rewards(before).items() if m == hpgames_merchant_id}
    return {rid for rid, reward in rewards.items() if rule.targets_reward(reward)}


def teardown_report(
    before: Mapping[str, Any], after: Mapping[str, Any], targets: Targets, hpgames_merchant_id: str
) -> TeardownReport:
    """Compare two sandbox snapshots against what the teardown targeted."""
    report = TeardownReport()
    jobs_before, jobs_after = _jobs(before), _jobs(after)
    target_jobs = {(targets.thanx_merchant_id, job_id) for job_id in targets.issuance_job_ids}
    for key in sorted(target_jobs):
        state = jobs_after.get(key, "missing")
        if state == "revoked":
            report.jobs_revoked.append(key[1])
        else:
            report.jobs_left[key[1]] = state
    rewards_before, rewards_after = _rewards(before), _rewards(after)
    target_rewards = {(hpgames_merchant_id, rid) for rid in targeted_rewards(before, targets, hpgames_merchant_id)}
    for key in sorted(target_rewards):
        status = rewards_after[key]["status"]
        if status == "CANCELLED":
            report.rewards_cancelled.append(key[1])
        elif status == "IN_PROGRESS":
            report.rewards_left[key[1]] = status
    report.collateral += [
        f"job {k[1]}" for k in jobs_before if k not in target_jobs and jobs_before[k] != jobs_after[k]
    ]
    report.collateral += [
        f"reward {k[1]}"
        for k in rewards_before
        if k not in target_rewards and rewards_before[k]["status"] != rewards_after[k]["status"]
    ]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="folder holding the example DAGs")
    parser.add_argument("--dag-id", default=FLAGSHIP_DAG_ID)
    parser.add_argument("--conf", type=json.loads, default=None, help="JSON conf for the DAG run (-c)")
    parser.add_argument("--revoke-seconds", type=float, default=3.0, help="sandbox: time a revocation takes")
    args = parser.parse_args(argv)

    from rewards_sandbox import running_sandbox

    credentials = Credentials.demo()
    params = {**demo_params(), **(args.conf or {})}
    targets = Targets.from_params(params)
    started = time.monotonic()
    with running_sandbox(revoke_seconds=args.revoke_seconds) as sandbox, tempfile.TemporaryDirectory() as home:
        print(f"Sandbox of both APIs at {sandbox.base_url}; AIRFLOW_HOME={home}")
        env = airflow_env(Path(home), args.dags_folder.resolve(), sandbox.base_url, credentials)
        migrate(env)
        before = sandbox.snapshot()
        print(f"Running: airflow dags test {args.dag_id}")
        result = run_dag(args.dag_id, env, params)  # the targets go in as conf, never as DAG defaults
        after = sandbox.snapshot()
    log = Path(tempfile.gettempdir()) / f"rewards-demo-{int(time.time())}.log"
    log.write_text(result.output)
    report = teardown_report(before, after, targets, credentials.hpgames_merchant_id)
    print("\n=== Teardown report ===")
    print(f"DAG run {args.dag_id}: {'success' if result.succeeded else 'FAILED'} ({result.seconds:.1f}s)")
    print(report.render())
    print(f"Time taken: {time.monotonic() - started:.1f}s (full Airflow output: {log})")
    if not result.succeeded:
        print("\n".join(result.output.splitlines()[-40:]), file=sys.stderr)
    return 0 if result.succeeded and report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
