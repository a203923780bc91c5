"""Sensor that waits for a Thanx issuance job to finish revoking (or reach other target states)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsInputError
from airflow_provider_rewards.hooks.thanx import DEFAULT_POLL_INTERVAL, JobVerdict, ThanxHook, observe_job
from airflow_provider_rewards.hooks.transport import is_rate_limited
from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger
from airflow_provider_rewards.utils.templating import check_when_ready
from airflow_provider_rewards.utils.validation import require_path_id, require_states


class ThanxIssuanceJobSensor(BaseSensorOperator):
    """Wait until an issuance job reads one of ``target_states`` (default: ``revoked``).

    Works in ``poke`` and ``reschedule`` modes and, with ``deferrable=True`` (default from
    ``[operators] default_deferrable``), checks once on the worker and then defers to
    :class:`~airflow_provider_rewards.triggers.thanx.ThanxIssuanceJobTrigger` so that waiting
    holds no worker slot. The sensor's ``timeout`` bounds the wait in every mode; expiry is a
    sensor timeout (``soft_fail`` turns it into a skip).

    A job in a state that is neither a target nor one of ``waiting_states`` (e.g. back to
    ``completed``, or a state the API never documented) fails the task naming the state.

    :param issuance_job_id: the job to wait for (templated).
    :param merchant_id: its merchant (templated); defaults to the connection's ``merchant_id``.
    :param thanx_conn_id: a ``thanx`` connection id.
    :param target_states: states that end the wait successfully.
    :param waiting_states: states expected on the way there.
    :param deferrable: defer to the triggerer while waiting.
    :param poke_interval: seconds between polls in every mode (default 60: the vendor asks for
        no rapid polling).
    :return: the job summary (id, state, progress_percent and counts), also pushed to XCom.
    """

    template_fields: Sequence[str] = ("issuance_job_id", "merchant_id")
    ui_color = "#f4d9c6"

    def __init__(
        self,
        *,
        issuance_job_id: str,
        merchant_id: str | None = None,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        target_states: Sequence[str] = ("revoked",),
        waiting_states: Sequence[str] = ("revoking",),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.issuance_job_id = issuance_job_id
        self.merchant_id = merchant_id
        self.thanx_conn_id = thanx_conn_id
        self.target_states = require_states(target_states, "target_states")
        self.waiting_states = require_states(waiting_states, "waiting_states")
        self.deferrable = deferrable
        if not self.target_states:
            raise RewardsInputError("target_states must name at least one state, e.g. ('revoked',)")
        check_when_ready(issuance_job_id, lambda value: require_path_id(value, "issuance_job_id"), rendered=False)

    @cached_property
    def hook(self) -> ThanxHook:
        return ThanxHook(self.thanx_conn_id)

    def _check(self) -> dict[str, Any] | None:
        """One poll (the hook checks the rendered id): the summary when done, ``None`` while waiting.

        A rate-limited poll (429 after the transport's retries) counts as still waiting.
        """
        try:
            job = self.hook.get_issuance_job(self.issuance_job_id, self.merchant_id)
        except RewardsApiError as exc:
            if not is_rate_limited(exc):
                raise
            self.log.warning("Poll of job %s rate-limited, will poll again: %s", self.issuance_job_id, exc)
            return None
        seen = observe_job(self.issuance_job_id, job, self.target_states, self.waiting_states, log=self.log)
        if seen.verdict is JobVerdict.UNEXPECTED:
            raise seen.error()
        return seen.summary if seen.verdict is JobVerdict.DONE else None

    def poke(self, context: Context) -> PokeReturnValue:
        summary = self._check()
        return PokeReturnValue(is_done=summary is not None, xcom_value=summary)

    def execute(self, context: Context) -> Any:
        """Wait as the mode says; the hook's HTTP session is closed however the wait ends (or defers)."""
        try:
            if not self.deferrable:
                return super().execute(context)
            summary = self._check()
            if summary is not None:
                return summary
            self._defer()
        finally:
            self.hook.close()

    def _defer(self) -> None:
        self.defer(
            trigger=ThanxIssuanceJobTrigger(
                issuance_job_id=self.issuance_job_id,
                merchant_id=self.hook.resolve_merchant_id(self.merchant_id),
                thanx_conn_id=self.thanx_conn_id,
                target_states=self.target_states,
                waiting_states=self.waiting_states,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: return the job summary on success, raise with its message otherwise."""
        status = event.get("status")
        if status == "success":
            self.log.info(event.get("message"))
            return event["job"]
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message"))
        raise AirflowException(event.get("message") or f"Unexpected trigger event: {event!r}")
