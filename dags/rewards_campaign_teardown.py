"""Campaign teardown: revoke Thanx issuance jobs, cancel HPGames rewards, verify nothing is left.

Every target defaults to empty and the configuration filter to none: run with no conf, the DAG does
nothing, says so in the report task's log, and succeeds. Pass the targets at trigger time::

    airflow dags trigger rewards_campaign_teardown -c '{"issuance_job_ids": ["job_1"],
        "hpgames_reward_ids": ["<uuid>"], "hpgames_external_reward_ids": ["ext-1"],
        "hpgames_player_ids": ["player-1"], "reward_configuration_id": null}'

Flow:
1. ``revoke_thanx_jobs``: one mapped task per issuance job. Retry-safe: a job already revoking or
   revoked counts as done.
2. ``wait_until_revoked``: a deferrable sensor per job, so waiting holds no worker slot.
3. ``cancel_rewards_by_id``, ``cancel_rewards_by_external_id``, ``cancel_rewards_by_player``:
   batched HPGames cancellations, in parallel with the Thanx branch.
4. ``teardown_report``: :class:`~airflow_provider_rewards.operators.report.RewardsTeardownReportOperator`
   (``all_done``): reads every target back and fails naming what is left or could not be read.

An empty list skips its branch. ``dry_run`` validates and logs everything that would be done
and changes nothing. Running the DAG twice is safe: the second run finds everything torn down.
This file only wires the provider's operators; it holds no teardown logic.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.operators.report import RewardsTeardownReportOperator
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor

# Seconds between polls of a revoking job. 60 s is polite to the Thanx API; the demo lowers it.
POLL_INTERVAL = float(os.environ.get("REWARDS_TEARDOWN_POLL_INTERVAL", "60"))
# Seconds before a failed task is tried again (twice at most). 60 s gives a struggling API room; tests lower it.
RETRY_DELAY = float(os.environ.get("REWARDS_TEARDOWN_RETRY_DELAY", "60"))


def id_list(title: str, description: str) -> Param:
    """A list-of-ids param that defaults to empty: a destructive DAG carries no targets of its own."""
    return Param([], type="array", items={"type": "string"}, title=title, description=description)


with DAG(
    dag_id="rewards_campaign_teardown",
    description="Revoke Thanx issuance jobs and cancel HPGames rewards, then verify nothing is left",
    schedule=None,  # on demand. For a nightly teardown: schedule="0 3 * * *" (catchup stays off)
    catchup=False,
    render_template_as_native_obj=True,  # "{{ params.x }}" renders to the list/bool itself, not a string
    default_args={"retries": 2, "retry_delay": timedelta(seconds=RETRY_DELAY)},
    tags=["rewards", "teardown", "thanx", "hpgames"],
    params={
        "thanx_merchant_id": Param(
            None, type=["null", "string"], title="Thanx merchant id", description="Default: the connection's."
        ),
        "issuance_job_ids": id_list("Thanx issuance job ids", "Jobs whose rewards are revoked (completed or failed)."),
        "hpgames_reward_ids": id_list("HPGames reward ids (UUIDs)", "Rewards cancelled by their HPGames id."),
        "hpgames_external_reward_ids": id_list(
            "HPGames external reward ids", "Rewards cancelled by the id your system gave them."
        ),
        "hpgames_player_ids": id_list(
            "HPGames player ids", "Players whose live rewards are all cancelled (narrowed by reward_configuration_id)."
        ),
        "reward_configuration_id": Param(
            None,
            type=["null", "string"],
            title="Reward configuration id (UUID, optional)",
            description="Only cancel the players' rewards of this configuration. Default: none, all their rewards.",
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

    # all_done (the operator default): the report runs even after a failed task and says what is left.
    report = RewardsTeardownReportOperator(
        task_id="teardown_report",
        thanx_merchant_id="{{ params.thanx_merchant_id }}",
        issuance_job_ids="{{ params.issuance_job_ids }}",
        reward_ids="{{ params.hpgames_reward_ids }}",
        external_ids="{{ params.hpgames_external_reward_ids }}",
        player_ids="{{ params.hpgames_player_ids }}",
        reward_configuration_id="{{ params.reward_configuration_id }}",
        external_id_cancel_task_id=cancel_by_external_id.task_id,
        dry_run="{{ params.dry_run }}",
    )

    [wait, cancel_by_id, cancel_by_external_id, cancel_by_player] >> report
