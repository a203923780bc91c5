"""Campaign teardown: revoke Thanx issuance jobs, cancel HPGames rewards, verify nothing is left.

Every target defaults to empty and the configuration filter to none: run with no conf, the DAG does
nothing, says so in the report task's log, and succeeds. Pass the targets at trigger time::

    airflow dags trigger rewards_campaign_teardown -c '{"issuance_job_ids": ["job_1"],
        "hpgames_reward_ids": ["<uuid>"], "hpgames_external_reward_ids": ["ext-1"],
        "hpgames_player_ids": ["player-1"], "reward_configuration_id": null}'

At campaign scale (10^5 to 10^7 rewards) pass files instead of lists: a warehouse export, one id per
line, or a CSV / JSON Lines file with ``hpgames_ids_column`` naming the column or key (``.gz`` is read
as gzip). Any URI an installed fsspec filesystem serves works (``file://``, ``s3://``, ``gs://`` ...)::

    airflow dags trigger rewards_campaign_teardown -c '{
        "hpgames_reward_ids_path": "s3://exports/campaign-42/rewards.csv.gz", "hpgames_ids_column": "reward_id",
        "hpgames_results_path": "s3://exports/campaign-42/teardown"}'

Each file has its own task next to the list's; a list left empty and a path left null skip their task.
Ids are streamed (memory grows with the batch size, not with the file), the whole file is validated
before the first cancel, and the task writes a record of every id (``results.jsonl``: one line per id
with its outcome, plus ``summary.json`` and ``manifest.json``) under
``<hpgames_results_path>/<task_id>/``, or, when that param is null, next to the file
(``<file>.results/<dag_id>/<run_id>/<task_id>/``). A retry, or a new run with the same
``hpgames_results_path``, resumes after the last batch the record settled. Each results.jsonl is also an
Asset event of the alias ``airflow-provider-rewards-results``, for audit DAGs to schedule on.

Flow:
1. ``revoke_thanx_jobs``: one mapped task per issuance job. Retry-safe: a job already revoking or
   revoked counts as done. At most ``REWARDS_THANX_MAX_ACTIVE`` (2) at once per run, in pool
   ``REWARDS_THANX_POOL`` when set (README "Rate budget").
2. ``wait_until_revoked``: a deferrable sensor per job, so waiting holds no worker slot.
3. ``cancel_rewards_by_id``, ``cancel_rewards_by_external_id``, ``cancel_rewards_by_player``:
   batched HPGames cancellations, in parallel with the Thanx branch.
   ``cancel_rewards_by_id_file``, ``cancel_rewards_by_external_id_file``, ``cancel_rewards_by_player_file``:
   the same for the ids in files.
4. ``teardown_report``: :class:`~airflow_provider_rewards.operators.report.RewardsTeardownReportOperator`
   (``all_done``): reads every target given as a list back and fails naming what is left or could not
   be read; it also fails the run when any task of it failed. Ids given as files are not read back by
   the report (that would hold millions of ids): their audit is each file task's record, complete even
   when the task fails, in which every id ends ``cancelled`` or ``already_cancelled`` when the task
   succeeded, and ``refused`` (with HTTP status and vendor code), ``unconfirmed`` or ``not_attempted``
   when it did not (then the task, so the run, fails).

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
# Thanx rate budget (README "Rate budget"): at most THANX_MAX_ACTIVE revoke tasks of one run at once, and, when
# REWARDS_THANX_POOL names a pool you created (airflow pools set thanx_api 2 "..."), at most its slots across every
# DAG using the credential. Unset, the tasks use default_pool: a pool that does not exist would block them forever.
THANX_POOL = os.environ.get("REWARDS_THANX_POOL") or "default_pool"
THANX_MAX_ACTIVE = int(os.environ.get("REWARDS_THANX_MAX_ACTIVE", "2"))


# Each HPGames task's record goes to <hpgames_results_path>/<task_id>; with the param null, to the operator's
# default (next to a file source; no record for a list).
RESULTS_PATH = (
    "{{ (params.hpgames_results_path.rstrip('/') ~ '/' ~ task.task_id) if params.hpgames_results_path else None }}"
)


def id_list(title: str, description: str) -> Param:
    """A list-of-ids param that defaults to empty: a destructive DAG carries no targets of its own."""
    return Param([], type="array", items={"type": "string"}, title=title, description=description)


def optional_text(title: str, description: str) -> Param:
    """A path, column or id param that defaults to null: no file, no filter."""
    return Param(None, type=["null", "string"], title=title, description=description)


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
        "hpgames_reward_ids_path": optional_text(
            "File of HPGames reward ids", "URI or path of a file of reward ids (UUIDs), e.g. a warehouse export."
        ),
        "hpgames_external_reward_ids_path": optional_text(
            "File of HPGames external reward ids", "URI or path of a file of the ids your system gave the rewards."
        ),
        "hpgames_player_ids_path": optional_text(
            "File of HPGames player ids", "URI or path of a file of players whose live rewards are all cancelled."
        ),
        "hpgames_ids_column": optional_text(
            "Id column of the files", "CSV header or JSON Lines key holding the ids. Not needed for one id per line."
        ),
        "hpgames_results_path": optional_text(
            "Where the records go",
            "Folder (URI) for each HPGames task's record, under <task_id>/. Default: next to each file.",
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
        pool=THANX_POOL,
        max_active_tis_per_dagrun=THANX_MAX_ACTIVE,  # not on the sensor: a deferred wait counts as active
    ).expand(issuance_job_id=thanx_job_ids())

    @task
    def jobs_to_wait_for(params: dict[str, Any], revoked: list[dict[str, Any]]) -> list[str]:
        """Every revoked job, unless this is a dry run (nothing was revoked, nothing to wait for)."""
        return [] if params["dry_run"] else [summary["issuance_job_id"] for summary in revoked]

    wait = ThanxIssuanceJobSensor.partial(
        task_id="wait_until_revoked",
        merchant_id="{{ params.thanx_merchant_id }}",
        pool=THANX_POOL,  # a deferred wait takes no slot unless the pool has include_deferred
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(hours=12).total_seconds(),
    ).expand(issuance_job_id=jobs_to_wait_for(revoked=revoke.output))

    cancel_by_id = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_id",
        reward_ids="{{ params.hpgames_reward_ids }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_external_id = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_external_id",
        external_ids="{{ params.hpgames_external_reward_ids }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_player = HPGamesCancelRewardsByQueryOperator(
        task_id="cancel_rewards_by_player",
        player_ids="{{ params.hpgames_player_ids }}",
        reward_configuration_id="{{ params.reward_configuration_id }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_id_file = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_id_file",
        reward_ids_path="{{ params.hpgames_reward_ids_path }}",
        ids_column="{{ params.hpgames_ids_column }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_external_id_file = HPGamesBulkCancelRewardsOperator(
        task_id="cancel_rewards_by_external_id_file",
        external_ids_path="{{ params.hpgames_external_reward_ids_path }}",
        ids_column="{{ params.hpgames_ids_column }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_by_player_file = HPGamesCancelRewardsByQueryOperator(
        task_id="cancel_rewards_by_player_file",
        player_ids_path="{{ params.hpgames_player_ids_path }}",
        ids_column="{{ params.hpgames_ids_column }}",
        reward_configuration_id="{{ params.reward_configuration_id }}",
        results_path=RESULTS_PATH,
        if_empty="skip",
        dry_run="{{ params.dry_run }}",
    )
    cancel_tasks = [
        cancel_by_id,
        cancel_by_external_id,
        cancel_by_player,
        cancel_by_id_file,
        cancel_by_external_id_file,
        cancel_by_player_file,
    ]

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

    [wait, *cancel_tasks] >> report
