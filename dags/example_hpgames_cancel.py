"""HPGames: the three ways to cancel rewards, one task each.

* ``cancel_one``: single rewards by external id, one mapped task per id.
* ``cancel_found``: many rewards by id, the ids coming from an upstream task's XCom (here: the
  live rewards of one player in one configuration, read with the hook). Batched, with rejected ids
  isolated and reported.
* ``cancel_by_player``: every live reward of some players (in one configuration, if given), by query.

Every param defaults to empty: run with no conf, nothing is cancelled (each task is skipped). Pass the
targets at trigger time, e.g. ``airflow dags trigger example_hpgames_cancel -c '{"external_ids": ["ext-1"],
"player_id": "p-1", "query_player_ids": ["p-5"], "external_reward_configuration_id": "cfg-weekend"}'``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardOperator,
    HPGamesCancelRewardsByQueryOperator,
)

with DAG(
    dag_id="example_hpgames_cancel",
    description="Cancel HPGames rewards one by one, in bulk from an upstream XCom, and by player query",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,
    tags=["rewards", "hpgames", "example"],
    params={
        "external_ids": Param([], type="array", items={"type": "string"}, title="External ids to cancel one by one"),
        "player_id": Param(None, type=["null", "string"], title="Player whose live rewards are bulk-cancelled"),
        "query_player_ids": Param([], type="array", items={"type": "string"}, title="Players cancelled by query"),
        "external_reward_configuration_id": Param(
            None, type=["null", "string"], title="Only that configuration's rewards (by query); none: all"
        ),
    },
) as dag:

    @task
    def external_ids(params: dict[str, Any]) -> list[str]:
        """The ids to cancel one by one; an empty list skips ``cancel_one``."""
        return list(params["external_ids"])

    HPGamesCancelRewardOperator.partial(task_id="cancel_one").expand(external_id=external_ids())

    @task
    def live_rewards_of_player(params: dict[str, Any]) -> list[str]:
        """Ids of the player's live rewards: the input of the bulk cancel below, via XCom (none without a player)."""
        if params["player_id"] is None:
            return []
        rewards = HPGamesHook().read_rewards(player_id=params["player_id"], status="IN_PROGRESS")
        return [reward["id"] for reward in rewards]

    HPGamesBulkCancelRewardsOperator(
        task_id="cancel_found",
        reward_ids=live_rewards_of_player(),
        batch_size=100,
        fail_on_rejected=True,
        if_empty="skip",
    )

    HPGamesCancelRewardsByQueryOperator(
        task_id="cancel_by_player",
        player_ids="{{ params.query_player_ids }}",
        external_reward_configuration_id="{{ params.external_reward_configuration_id }}",
        if_empty="skip",
    )
