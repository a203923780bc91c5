"""HPGames: the three ways to cancel rewards, one task each.

* ``cancel_one``: a single reward by its external id.
* ``cancel_found``: many rewards by id, the ids coming from an upstream task's XCom (here: the
  live rewards of one player in one configuration, read with the hook). Batched, with rejected ids
  isolated and reported.
* ``cancel_by_player``: every live reward of some players in one configuration, by query.
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
        "external_id": Param("ext-cancel-001", type="string"),
        "player_id": Param("player-001", type="string"),
        "query_player_ids": Param(["player-005", "player-006"], type="array", items={"type": "string"}),
        "external_reward_configuration_id": Param("cfg-weekend-freebets", type="string"),
    },
) as dag:
    HPGamesCancelRewardOperator(task_id="cancel_one", external_id="{{ params.external_id }}")

    @task
    def live_rewards_of_player(params: dict[str, Any]) -> list[str]:
        """Ids of the player's live rewards: the input of the bulk cancel below, through XCom."""
        rewards = HPGamesHook().read_rewards(player_id=params["player_id"], status="IN_PROGRESS")
        return [reward["id"] for reward in rewards]

    HPGamesBulkCancelRewardsOperator(
        task_id="cancel_found", reward_ids=live_rewards_of_player(), batch_size=100, fail_on_rejected=True
    )

    HPGamesCancelRewardsByQueryOperator(
        task_id="cancel_by_player",
        player_ids="{{ params.query_player_ids }}",
        external_reward_configuration_id="{{ params.external_reward_configuration_id }}",
    )
