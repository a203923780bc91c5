"""Thanx: revoke issuance jobs and wait until each reads ``revoked``, in one deferrable task per job.

The flagship teardown revokes, then waits with a separate sensor. Here each mapped revoke task
waits for its own job (``wait_for_completion=True``) and defers while the revocation runs, so no
worker slot is held. Pass other jobs at trigger time: ``-c '{"issuance_job_ids": ["job_a"]}'``.
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
    tags=["rewards", "thanx", "example"],
    params={
        "merchant_id": Param("k2lye10h32l5wzo", type="string"),
        "issuance_job_ids": Param(["job_demo_1", "job_demo_2"], type="array", items={"type": "string"}),
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
