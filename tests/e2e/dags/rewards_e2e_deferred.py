"""DAG of the real-triggerer end-to-end test (tests/e2e/test_real_triggerer.py); not an example DAG.

One deferrable ``ThanxIssuanceJobSensor``: it checks the job once on a LocalExecutor worker, defers
to ``ThanxIssuanceJobTrigger`` in the triggerer process, and resumes when the job reads ``revoked``.
The job id is a param (templated), so the test reads it back from the rendered template fields.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor

DAG_ID = "rewards_e2e_thanx_deferred"
TASK_ID = "wait_for_revocation"

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"issuance_job_id": "job_demo_1"},
    tags=["rewards", "e2e"],
):
    ThanxIssuanceJobSensor(
        task_id=TASK_ID,
        issuance_job_id="{{ params.issuance_job_id }}",
        deferrable=True,
        poke_interval=1,
        timeout=180,
    )
