"""Deliberately leaky test doubles of the provider's operator, sensor and trigger.

They behave like the real classes but leak a credential, each into another place the secret scan looks:
the task log (stdout under ``dags test``), XCom, the trigger's serialized kwargs. The DAG in
``tests/security/dags/`` uses them, plus a template that renders the HPGames secret into a template field.
They exist only to show that the scan reports such leaks; nothing else may import them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.sensors.thanx import ThanxIssuanceJobSensor
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger


class LeakyRevokeOperator(ThanxRevokeIssuanceJobOperator):
    """Revokes like the real operator, but logs the access token and returns it in its XCom.

    ``note`` is an extra template field; the test DAG renders a connection password into it.
    """

    template_fields = (*ThanxRevokeIssuanceJobOperator.template_fields, "note")

    def __init__(self, *, note: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.note = note

    def execute(self, context: Context) -> dict[str, Any]:
        token = ThanxHook(self.thanx_conn_id).config.access_token
        self.log.info("LEAK: calling Thanx with Authorization: Bearer %s", token)
        return {**super().execute(context), "debug_authorization": f"Bearer {token}"}


class LeakyTrigger(ThanxIssuanceJobTrigger):
    """The real trigger, with the access token in its serialized kwargs."""

    def __init__(self, *args: Any, access_token: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_token = access_token

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "access_token": self.access_token}


class LeakySensor(ThanxIssuanceJobSensor):
    """Always defers, to :class:`LeakyTrigger` (which holds the token)."""

    def execute(self, context: Context) -> Any:
        hook = ThanxHook(self.thanx_conn_id)
        self.defer(
            trigger=LeakyTrigger(
                issuance_job_id=self.issuance_job_id,
                merchant_id=hook.resolve_merchant_id(self.merchant_id),
                thanx_conn_id=self.thanx_conn_id,
                poll_interval=self.poke_interval,
                access_token=hook.config.access_token,
            ),
            method_name="execute_complete",
        )
