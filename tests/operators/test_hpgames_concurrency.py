"""max_concurrency against the sandbox: batches in flight together, AIMD under its rate limit, one outcome per id."""

from __future__ import annotations

import time

from rewards_sandbox.testing import reward_statuses

from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator
from tests.operators.conftest import outcomes_by_id, sandbox_calls


def test_concurrent_batches_under_a_rate_limit_back_off_and_settle_every_id(
    hpgames_sandbox, task_context, id_file, logs
):
    server, ids = hpgames_sandbox
    server.set_behaviours(rate_limit="8/0.5s", retry_after_override=1)
    started = time.monotonic()
    operator = HPGamesBulkCancelRewardsOperator(
        task_id="cancel", reward_ids_path=id_file(ids), batch_size=2, max_concurrency=8
    )
    result = operator.execute(task_context)
    elapsed = time.monotonic() - started
    assert outcomes_by_id(result["results_path"]) == dict.fromkeys(ids, "cancelled")
    assert {reward_statuses(server.snapshot())[item] for item in ids} == {"CANCELLED"}
    calls = sandbox_calls(server, "bulkCancel")
    assert sum(1 for call in calls if call["status"] == 429) > 0  # it did hit the limit
    assert sorted(call["batch_size"] for call in calls if call["status"] == 200) == [2] * 20  # each batch once
    assert "HPGames throttled (HTTP 429): 4 batches in flight at most, was 8" in logs()
    assert elapsed < 30
