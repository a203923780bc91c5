"""Nightly campaign teardown: find what has ended since the last successful run and tear exactly that down.

Every night (``@daily``, no catchup, one run at a time):

1. ``plan`` (:class:`~airflow_provider_rewards.operators.campaigns.RewardsTeardownPlanOperator`), the dry run:
   the HPGames reward configurations whose ``endDate`` fell in the window, a snapshot of their live rewards,
   and the recorded Thanx issuance jobs (``thanx_job_record``) of campaigns whose ``end_at`` fell in it, plus
   those recorded in the window (``recorded_at``) for campaigns that ended before it.
   Written to ``<record_root>/rewards_nightly_teardown/<run_id>/`` (``plan.json`` and one file per target
   type). The window ends at the run's data interval end minus ``grace_period_hours`` and starts where the
   last successful run's ended (or the last real teardown's, if earlier); the first run looks back
   ``lookback_days``. ``ended_after``/``ended_before`` override both bounds for an on-demand catch-up.
2. ``approve_teardown``: above ``approval_threshold`` targets (default: 10,000 for scheduled runs, no limit for
   on-demand runs) the run waits
   for a person's Approve/Reject (Airflow's human-in-the-loop approval: counts per vendor and target type, a
   sample of ids, the plan's path). At or below it, and in a dry run, nothing is asked. A rejection skips
   the rest: nothing is torn down.
3. ``cancel_hpgames_rewards`` (the plan's reward ids, batched ``bulkCancel`` with a per-reward record) and
   ``thanx_jobs`` → ``revoke_thanx_jobs`` → ``wait_until_revoked`` (deferrable). Both read the plan's files,
   never a fresh discovery: nothing outside the approved plan is touched; a target gone in between is
   recorded as such.
4. ``teardown_record``: ``report.json`` next to the plan, the watermark, and an event of the Asset
   ``rewards_nightly_teardown_record``. When nothing has ended it says so and the run succeeds.

Settings: ``REWARDS_NIGHTLY_RECORD_ROOT`` (the ``record_root`` default) and ``REWARDS_THANX_JOB_RECORD`` (the
``thanx_job_record`` default) from the environment; poll interval ``REWARDS_TEARDOWN_POLL_INTERVAL``. This file
only wires the provider's operators; it holds no teardown logic.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from airflow_provider_rewards.operators.campaigns import (
    HPGamesCancelPlannedRewardsOperator,
    RewardsTeardownApprovalOperator,
    RewardsTeardownPlanOperator,
    RewardsTeardownRecordOperator,
    ThanxPlannedJobsOperator,
)
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor

POLL_INTERVAL = float(os.environ.get("REWARDS_TEARDOWN_POLL_INTERVAL", "60"))
RETRY_DELAY = float(os.environ.get("REWARDS_TEARDOWN_RETRY_DELAY", "60"))
#: The documented default of the nightly DAG: more targets than this in one night waits for a person.
NIGHTLY_APPROVAL_THRESHOLD = 10_000
#: Every run's report and record; downstream DAGs and audits can be scheduled on it.
RECORD_ASSET = Asset(name="rewards_nightly_teardown_record", uri="x-rewards://rewards_nightly_teardown/record")
PLAN_PATH = "{{ ti.xcom_pull(task_ids='plan')['plan_path'] }}"
DRY_RUN = "{{ params.dry_run }}"
#: The sha256 of each plan file, from the plan task's XCom: a file changed after the plan (and its approval) fails.
FINGERPRINT = "{{{{ ti.xcom_pull(task_ids='plan')['fingerprints']['{}'] }}}}"
#: The param when given; else the nightly default for scheduled runs and no limit (None) for on-demand ones.
APPROVAL_THRESHOLD = (
    "{{ params.approval_threshold if params.approval_threshold is not none else "
    f"({NIGHTLY_APPROVAL_THRESHOLD} if dag_run.run_type == 'scheduled' else none) }}}}"
)


def optional_text(default: str | None, title: str, description: str) -> Param:
    return Param(default, type=["null", "string"], title=title, description=description)


with DAG(
    dag_id="rewards_nightly_teardown",
    description="Every night: cancel the live rewards of ended HPGames configurations, revoke ended Thanx campaigns",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=RETRY_DELAY)},
    tags=["rewards", "teardown", "nightly", "thanx", "hpgames"],
    params={
        "record_root": optional_text(
            os.environ.get("REWARDS_NIGHTLY_RECORD_ROOT"),
            "Record root (URI)",
            "Where each run's plan, record and report go, e.g. s3://bucket/rewards-teardown. Required.",
        ),
        "thanx_job_record": optional_text(
            os.environ.get("REWARDS_THANX_JOB_RECORD"),
            "Thanx job record (URI)",
            "The file the issuing process appends job ids to (one per line, or JSON Lines with issuance_job_id "
            "and campaign_id). Null: no Thanx teardown.",
        ),
        "thanx_merchant_id": optional_text(None, "Thanx merchant id", "Default: the connection's."),
        "configuration_name": optional_text(None, "Configuration name filter", "Partial name match (readAll)."),
        "configuration_status": Param(None, type=["null", "string"], enum=[None, "ACTIVE", "INACTIVE"]),
        "reward_type": Param(None, type=["null", "string"], enum=[None, "FREE_BET"]),
        "grace_period_hours": Param(
            0, type="number", minimum=0, title="Grace period (hours)", description="Ended = endDate + this."
        ),
        "lookback_days": Param(
            None,
            type=["null", "number"],
            minimum=0,
            title="Lookback (days)",
            description="How far back a run with no earlier successful run looks. Null: 7 days.",
        ),
        "ended_after": optional_text(None, "Ended after (ISO 8601)", "Override the window's start (catch-up)."),
        "ended_before": optional_text(None, "Ended before (ISO 8601)", "Override the window's end."),
        "approval_threshold": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Approval threshold",
            description="More targets than this wait for a person's approval. Null: 10,000 for the nightly "
            "(scheduled) runs, no limit for on-demand runs.",
        ),
        "batch_size": Param(
            None, type=["null", "integer"], minimum=1, maximum=10_000, description="Ids per bulkCancel. Null: 500."
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Plan and list; change nothing."),
    },
) as dag:
    plan = RewardsTeardownPlanOperator(
        task_id="plan",
        record_root="{{ params.record_root }}",
        job_record="{{ params.thanx_job_record }}",
        thanx_merchant_id="{{ params.thanx_merchant_id }}",
        name="{{ params.configuration_name }}",
        status="{{ params.configuration_status }}",
        reward_type="{{ params.reward_type }}",
        grace_period="{{ params.grace_period_hours * 3600 }}",
        lookback="{{ none if params.lookback_days is none else params.lookback_days * 86400 }}",
        ended_after="{{ params.ended_after }}",
        ended_before="{{ params.ended_before }}",
        dry_run=DRY_RUN,
    )
    approve = RewardsTeardownApprovalOperator(
        task_id="approve_teardown",
        plan_task_id="plan",
        approval_threshold=APPROVAL_THRESHOLD,
        response_timeout=timedelta(hours=20),
        retries=0,
    )
    cancel = HPGamesCancelPlannedRewardsOperator(
        task_id="cancel_hpgames_rewards",
        plan_path=PLAN_PATH,
        batch_size="{{ params.batch_size }}",
        expected_fingerprint=FINGERPRINT.format("hpgames_reward_ids"),
        dry_run=DRY_RUN,
    )
    jobs = ThanxPlannedJobsOperator(
        task_id="thanx_jobs",
        plan_path=PLAN_PATH,
        expected_fingerprint=FINGERPRINT.format("thanx_issuance_jobs"),
        dry_run=DRY_RUN,
    )
    # Each job with its merchant (the record's, else the thanx_merchant_id param, else the connection's).
    revoke = ThanxRevokeIssuanceJobOperator.partial(task_id="revoke_thanx_jobs").expand_kwargs(jobs.output)
    wait = ThanxIssuanceJobSensor.partial(
        task_id="wait_until_revoked",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(hours=12).total_seconds(),
    ).expand_kwargs(jobs.output)
    record = RewardsTeardownRecordOperator(task_id="teardown_record", plan_path=PLAN_PATH, outlets=[RECORD_ASSET])

    plan >> approve >> [cancel, jobs]
    revoke >> wait
    [cancel, wait] >> record
