"""Operators that revoke Thanx issuance jobs and cancel HPGames rewards."""

from __future__ import annotations

from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator

__all__ = [
    "HPGamesBulkCancelRewardsOperator",
    "HPGamesCancelRewardOperator",
    "HPGamesCancelRewardsByQueryOperator",
    "ThanxRevokeIssuanceJobOperator",
]
