"""Thanx: revoke issuance jobs and wait until each reads ``revoked``, in one deferrable task per job.

The flagship teardown revokes, then waits with a separate sensor. Here each mapped revoke task
waits for its own job (``wait_for_completion=True``) and defers while the revocation runs, so no
worker slot is held. Nothing is revoked unless jobs are passed at trigger time:
``airflow dags trigger example_thanx_revoke -c '{"issuance_job_ids": ["job_a"]}'`` (``merchant_id``
defaults to the connection's).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator

POLL_INTERVAL = float(os.environ.get("REWARDS_TEARDOWN_POLL_INTERVAL", "60"))

with DAG(
    dag_id="example_thanx_revoke",
    description="Revoke Thanx issuance jobs and wait for the revocations, deferring meanwhile",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,  # a null merchant_id renders to None, not the text "None"
    tags=["rewards", "thanx", "example"],
    params={
        "merchant_id": Param(None, type=["null", "string"], title="Thanx merchant id (default: the connection's)"),
        "issuance_job_ids": Param([], type="array", items={"type": "string"}, title="Thanx issuance job ids"),
    },
) as dag:

    @task
    def issuance_job_ids(params: dict[str, Any]) -> list[str]:
        return list(params["issuance_job_ids"])

    ThanxRevokeIssuanceJobOperator.partial(
        task_id="revoke_and_wait",
        merchant_id="{{ params.merchant_id }}",
        if_already_revoked="succeed",  # a retry after a lost response is not a failure
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    ).expand(issuance_job_id=issuance_job_ids())
