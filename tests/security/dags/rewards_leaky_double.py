"""DAG of the secret-scan test (tests/security/test_secret_scan.py) that MUST leak; not an example DAG.

Revokes one demo job with :class:`~tests.security.leaky.LeakyRevokeOperator` (token in the log and in XCom,
the HPGames connection rendered from the environment into a template field), then waits for it with the leaky
sensor (token in the trigger kwargs).

(``{{ conn.hpgames_default.password }}`` would not do as a plant: reading the connection registers its password
with Airflow's secrets masker, which redacts it from the stored rendered fields. A value read around the
connection API, like the environment variable here, is not redacted.)
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from tests.security.leaky import LeakyRevokeOperator, LeakySensor

with DAG(
    dag_id="rewards_leaky_double",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    user_defined_macros={"env": os.environ.get},
):
    revoke = LeakyRevokeOperator(
        task_id="leaky_revoke",
        issuance_job_id="job_demo_1",
        note="{{ env('AIRFLOW_CONN_HPGAMES_DEFAULT') }}",
    )
    wait = LeakySensor(task_id="leaky_wait", issuance_job_id="job_demo_1", poke_interval=0.5, timeout=120)
    revoke >> wait
