"""Campaign teardown: revoke Thanx issuance jobs, cancel HPGames rewards, verify nothing is left.

Copy this DAG, change the params' defaults (they match the built-in sandbox's demo seed) or pass
them at trigger time (``airflow dags trigger rewards_campaign_teardown -c '{"issuance_job_ids": [...]}'``),
and schedule it if the teardown should recur.

Flow:
1. ``revoke_thanx_jobs``: one mapped task per issuance job. Retry-safe: a job already revoking or
   revoked counts as done.
2. ``wait_until_revoked``: a deferrable sensor per job, so waiting holds no worker slot.
3. ``cancel_rewards_by_id``, ``cancel_rewards_by_external_id``, ``cancel_rewards_by_player``:
   batched HPGames cancellations, in parallel with the Thanx branch.
4. ``teardown_report``: runs even when a task before it failed, reads every state back and fails,
   naming what is left, if anything targeted is still live or could not be read back (or if any
   task failed). A read that fails is retried as a task retry; a known leftover fails at once.

An empty list skips its branch. ``dry_run`` validates and logs everything that would be done
and changes nothing. Running the DAG twice is safe: the second run finds everything torn down.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_rewards.exceptions import RewardsError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor

log = logging.getLogger(__name__)

# Seconds between polls of a revoking job. 60 s is polite to the Thanx API; the demo lowers it.
POLL_INTERVAL = float(os.environ.get("REWARDS_TEARDOWN_POLL_INTERVAL", "60"))
# Seconds before a failed task is tried again (twice at most). 60 s gives a struggling API room; tests lower it.
RETRY_DELAY = float(os.environ.get("REWARDS_TEARDOWN_RETRY_DELAY", "60"))


def id_list(title: str, default: list[str], description: str) -> Param:
    return Param(default, type="array", items={"type": "string"}, title=title, description=description)


with DAG(
    dag_id="rewards_campaign_teardown",
    description="Revoke Thanx issuance jobs and cancel HPGames rewards, then verify nothing is left",
    schedule=None,  # on demand. For a nightly teardown: schedule="0 3 * * *" (catchup stays off)
    catchup=False,
    render_template_as_native_obj=True,  # "{{ params.x }}" renders to the list/bool itself, not a string
    default_args={"retries": 2, "retry_delay": timedelta(seconds=RETRY_DELAY)},
    tags=["rewards", "teardown", "thanx", "hpgames"],
    params={
        "thanx_merchant_id": Param("k2lye10h32l5wzo", type="string", title="Thanx merchant id"),
        "issuance_job_ids": id_list(
            "Thanx issuance job ids",
            ["job_demo_1", "job_demo_2", "job_demo_3", "job_demo_failed"],
            "Jobs whose rewards are revoked (completed or failed jobs).",
        ),
        "hpgames_reward_ids": id_list(
            "HPGames reward ids (UUIDs)",
            [f"5e1f0000-0000-4000-8000-00000000010{n}" for n in range(1, 6)],
            "Rewards cancelled by their HPGames id.",
        ),
        "hpgames_external_reward_ids": id_list(
            "HPGames external reward ids",
            [f"ext-cancel-00{n}" for n in range(1, 6)],
            "Rewards cancelled by the id your system gave them.",
        ),
        "hpgames_player_ids": id_list(
            "HPGames player ids",
            ["player-005", "player-006"],
            "Players whose live rewards are all cancelled (narrowed by reward_configuration_id).",
        ),
        "reward_configuration_id": Param(
            "c0f1a000-0000-4000-8000-000000000002",
            type=["null", "string"],
            title="Reward configuration id (UUID, optional)",
            description="Only cancel the players' rewards of this configuration.",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Log what would be done; change nothing."),
    },
) as dag:

    @task
    def thanx_job_ids(params: dict[str, Any]) -> list[str]:
        """The jobs to revoke; an empty list skips the whole Thanx branch."""
        return list(params["issuance_job_ids"])

    revoke = ThanxRevokeIssuanceJobOperator.partial(
        task_id="revoke_thanx_jobs",
        merchant_id="{{ params.thanx_merchant_id }}",
        dry_run="{{ params.dry_run }}",
    ).expand(issuance_job_id=thanx_job_ids())

    @task
    def jobs_to_wait_for(params: dict[str, Any], revoked: list[dict[str, Any]]) -> list[str]:
        """Every revoked job, unless this is a dry run (nothing was revoked, nothing to wait for)."""
        return [] if params["dry_run"] else [summary["issuance_job_id"] for summary in revoked]

    wait = ThanxIssuanceJobSensor.partial(
        task_id="wait_until_revoked",
        merchant_id="{{ params.thanx_merchant_id }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(hours=12).total_seconds(),
    ).expand(issuance_job_id=jobs_to_wait_for(revoked=revoke.output))

    cancel_by_id = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_id",
        reward_ids="{{ params.hpgames_reward_ids }}",
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_external_id = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_external_id",
        external_ids="{{ params.hpgames_external_reward_ids }}",
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_player = HPGamesCancelRewardsByQueryOperator(
        task_id="cancel_rewards_by_player",
        player_ids="{{ params.hpgames_player_ids }}",
        reward_configuration_id="{{ params.reward_configuration_id }}",
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )

    # all_done: the report runs even after a failed task, so a failed teardown always says what is left.
    @task(trigger_rule="all_done")
    def teardown_report(params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """Read every targeted job and reward back; fail naming whatever is still live or could not be read,
        or if a task failed."""
        thanx, hpgames = ThanxHook(), HPGamesHook()
        merchant = params["thanx_merchant_id"]
        not_verified: dict[str, str] = {}  # what could not be read back, and why: never counted as done
        jobs_left: dict[str, str] = {}
        for job_id in params["issuance_job_ids"]:
            try:
                state = thanx.get_issuance_job(job_id, merchant)["state"]
            except RewardsError as error:
                not_verified[f"thanx job {job_id}"] = str(error)
            else:
                if state != "revoked":
                    jobs_left[job_id] = state
        live: list[dict[str, Any]] = []
        if params["hpgames_reward_ids"] or params["hpgames_external_reward_ids"] or params["hpgames_player_ids"]:
            try:
                live = hpgames.read_rewards(status="IN_PROGRESS")
            except RewardsError as error:
                not_verified["hpgames rewards"] = str(error)
        by_id = {reward.get("id", "").lower() for reward in live}
        by_external = {reward.get("externalId") for reward in live}
        config = params["reward_configuration_id"]
        rewards_left = sorted(
            {rid for rid in params["hpgames_reward_ids"] if rid.lower() in by_id}
            | {eid for eid in params["hpgames_external_reward_ids"] if eid in by_external}
            | {
                f"{reward['id']} (player {reward['playerId']})"
                for reward in live
                if reward.get("playerId") in params["hpgames_player_ids"]
                and (config is None or reward.get("rewardConfigurationId") == config.lower())
            }
        )
        report = {"dry_run": params["dry_run"], "jobs_not_revoked": jobs_left, "rewards_still_live": rewards_left}
        if not_verified:
            report["not_verified"] = not_verified
        failed = 0 if ti is None else ti.get_ti_count(ti.dag_id, run_ids=[ti.run_id], states=["failed"])
        failed_tasks = f"{failed} task instance(s) of this run failed; see their logs" if failed else ""
        also_failed = f". {failed_tasks}" if failed else ""
        if not_verified:  # possibly transient: a normal failure, so Airflow retries the task and reads again
            raise RewardsError(f"Teardown incomplete: {report}; could not read back {len(not_verified)}{also_failed}")
        if params["dry_run"]:
            log.info("Dry run: would tear down %d jobs, %d live rewards: %s", len(jobs_left), len(rewards_left), report)
        elif jobs_left or rewards_left:
            raise AirflowFailException(f"Teardown incomplete: {report}{also_failed}")
        else:
            log.info("Teardown complete: every targeted job is revoked and no targeted reward is live")
        if failed:  # e.g. an id that failed validation or that HPGames refused: never report success over it
            done = "The dry run listed what is left" if params["dry_run"] else "Nothing targeted is left to tear down"
            raise AirflowFailException(f"{done}, but {failed_tasks}")
        return report

    [wait, cancel_by_id, cancel_by_external_id, cancel_by_player] >> teardown_report()
