"""Operator that revokes a Thanx issuance job, safe to retry, optionally waiting (deferrable or polling)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from airflow.sdk import Context, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsError, RewardsJobStateError
from airflow_provider_rewards.hooks.thanx import (
    DEFAULT_POLL_INTERVAL,
    ISSUING_STATES,
    REVOCABLE_STATES,
    REVOKED_STATES,
    IssuanceJob,
    ThanxHook,
    summarize_job,
)
from airflow_provider_rewards.hooks.transport import RETRYABLE_STATUSES
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from airflow_provider_rewards.utils.templating import check_when_ready
from airflow_provider_rewards.utils.validation import (
    parse_bool,
    require_choice,
    require_flag,
    require_id,
    require_number,
    require_path_id,
)

DEFAULT_WAIT_TIMEOUT = 24 * 60 * 60.0
MIN_POLL_INTERVAL = 0.1
POLITE_POLL_INTERVAL = 10.0
DEFER_GRACE = 60.0
IF_ALREADY_REVOKED = ("succeed", "fail", "skip")
KNOWN_STATES = (*ISSUING_STATES, *REVOCABLE_STATES, *REVOKED_STATES)
UNPROCESSABLE = 422
#: What an outcome becomes once the job was seen ``revoked``.
REVOKED_OUTCOME = {"revoke_started": "revoked", "already_revoking": "already_revoked"}


@dataclass(frozen=True)
class Wait:
    """One kind of wait: what the job must do, the states that end it and the states expected on the way."""

    goal: str
    target_states: tuple[str, ...]
    waiting_states: tuple[str, ...]


ISSUANCE = Wait("finish issuing", REVOCABLE_STATES, ISSUING_STATES)
REVOCATION = Wait("finish revoking", ("revoked",), ("revoking",))


@dataclass(frozen=True)
class RevokeInputs:
    """The operator's arguments, validated."""

    issuance_job_id: str
    merchant_id: str | None
    thanx_conn_id: str
    if_already_revoked: str
    wait_for_issuance: bool
    wait_for_completion: bool
    poll_interval: float
    wait_timeout: float
    deferrable: bool
    dry_run: bool


class ThanxRevokeIssuanceJobOperator(RewardsBaseOperator):
    """Revoke every reward a Thanx issuance job issued (``POST /partner/issuance_jobs/:id/revoke``).

    The job is read first. ``completed``/``failed`` jobs are revoked. ``revoking``/``revoked`` jobs
    were revoked by an earlier attempt (for example a previous try of this task): ``if_already_revoked``
    decides. ``pending``/``processing`` jobs cannot be revoked yet: the task fails, or with
    ``wait_for_issuance=True`` waits for the issuance to finish and then revokes. An unknown state
    fails the task naming it. Nothing is changed before that decision.

    Retry safety: after a 422, no response, a 5xx or a 408/429 that outlasted the retries, the job is
    read again: ``revoking``/``revoked`` means the revoke got through; a job still revocable after
    anything but a 422 is sent the revoke once more. The 422 text is never used to decide.

    :param issuance_job_id: the job to revoke (templated; e.g. from an upstream XCom, or mapped
        with ``.partial(...).expand(issuance_job_id=[...])``).
    :param merchant_id: Thanx merchant id (templated); defaults to the connection's ``merchant_id`` extra.
    :param thanx_conn_id: connection of type ``thanx``.
    :param if_already_revoked: for a job already ``revoking``/``revoked``: ``"succeed"`` (log and
        succeed; the default, which keeps task retries safe), ``"fail"`` (fail without retrying)
        or ``"skip"`` (mark the task skipped).
    :param wait_for_issuance: wait for a ``pending``/``processing`` job to finish, then revoke it.
    :param wait_for_completion: after the revoke, wait until the job reads ``revoked``.
    :param poll_interval: seconds between reads while waiting. Thanx asks partners not to poll
        rapidly and rate-limits the API; the 60 s default is polite. Below 10 s (meant for a
        sandbox) a warning is logged; the floor is 0.1 s.
    :param wait_timeout: seconds, from the start of the task, within which every wait must end
        (default 24 h); past it the task fails.
    :param deferrable: wait in the triggerer instead of holding a worker slot (defaults to
        ``[operators] default_deferrable``). Only matters with a wait.
    :param dry_run: read the job, log what would be done, and change nothing (templated;
        ``True``/``False`` or the rendered text ``"true"``/``"false"``). Decisions that fail or
        skip a real run (e.g. a pending job without ``wait_for_issuance``) do the same in a dry run.

    Returns (XCom ``return_value``)::

        {"issuance_job_id": str,
         "merchant_id": str,
         "outcome": "revoke_started"    # this task's revoke was accepted; the job is revoking
                  | "revoked"           # ... and the job reads revoked (waited, or already so)
                  | "already_revoking"  # an earlier revoke was in flight; nothing sent
                  | "already_revoked"   # the job was revoked already (or was revoking, and was waited for)
                  | "dry_run",          # nothing was sent
         "job": {"id", "state", "progress_percent", "total_count", "success_count", "failure_count"}}
    """

    ui_color = "#f2b48c"
    template_fields: Sequence[str] = ("issuance_job_id", "merchant_id", "dry_run")

    def __init__(
        self,
        *,
        issuance_job_id: str,
        merchant_id: str | None = None,
        thanx_conn_id: str = ThanxHook.default_conn_name,
        if_already_revoked: str = "succeed",
        wait_for_issuance: bool = False,
        wait_for_completion: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.issuance_job_id = issuance_job_id
        self.merchant_id = merchant_id
        self.thanx_conn_id = thanx_conn_id
        self.if_already_revoked = if_already_revoked
        self.wait_for_issuance = wait_for_issuance
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.deferrable = deferrable
        self.dry_run = dry_run
        self.check_inputs(rendered=False)

    def check_inputs(self, *, rendered: bool) -> RevokeInputs:
        """Validate every argument; before rendering, templated values are left as :data:`UNRENDERED`."""
        return RevokeInputs(
            issuance_job_id=check_when_ready(
                self.issuance_job_id, lambda value: require_path_id(value, "issuance_job_id"), rendered=rendered
            ),
            merchant_id=check_when_ready(
                self.merchant_id,
                lambda value: None if value is None else require_id(value, "merchant_id"),
                rendered=rendered,
            ),
            thanx_conn_id=require_id(self.thanx_conn_id, "thanx_conn_id"),
            if_already_revoked=require_choice(self.if_already_revoked, "if_already_revoked", IF_ALREADY_REVOKED),
            wait_for_issuance=require_flag(self.wait_for_issuance, "wait_for_issuance"),
            wait_for_completion=require_flag(self.wait_for_completion, "wait_for_completion"),
            poll_interval=require_number(
                self.poll_interval, "poll_interval", minimum=MIN_POLL_INTERVAL, unit="seconds"
            ),
            wait_timeout=require_number(self.wait_timeout, "wait_timeout", minimum=1, unit="seconds"),
            deferrable=require_flag(self.deferrable, "deferrable"),
            dry_run=check_when_ready(self.dry_run, lambda value: parse_bool(value, "dry_run"), rendered=rendered),
        )

    def execute(self, context: Context) -> dict[str, Any]:
        inputs = self.check_inputs(rendered=True)
        waits = inputs.wait_for_issuance or inputs.wait_for_completion
        if inputs.deferrable and not waits:
            self.log.warning("deferrable=True has no effect without wait_for_issuance or wait_for_completion")
        if waits and inputs.poll_interval < POLITE_POLL_INTERVAL:
            self.log.warning(
                "poll_interval=%gs polls rapidly; Thanx asks partners not to (fine against a sandbox)",
                inputs.poll_interval,
            )
        with ThanxHook(inputs.thanx_conn_id) as hook:  # the session is closed however the task ends
            return self._revoke_job(inputs, hook)

    def _revoke_job(self, inputs: RevokeInputs, hook: ThanxHook) -> dict[str, Any]:
        """Read the job, then revoke it, wait for it or refuse, as its state and the arguments decide."""
        merchant = hook.resolve_merchant_id(inputs.merchant_id)
        deadline = time.time() + inputs.wait_timeout
        job = hook.get_issuance_job(inputs.issuance_job_id, merchant)
        state = job.get("state")
        self.log.info("Issuance job %s (merchant %s) is %s", inputs.issuance_job_id, merchant, state)
        if state in REVOKED_STATES:
            return self._already_revoked(inputs, hook, merchant, job, deadline)
        if state in ISSUING_STATES:
            if not inputs.wait_for_issuance:
                raise RewardsJobStateError(
                    inputs.issuance_job_id,
                    state,
                    f"{' or '.join(REVOCABLE_STATES)}: it is still {state} and cannot be revoked yet; "
                    "pass wait_for_issuance=True to wait for it",
                )
            if inputs.dry_run:
                return self._dry_run(inputs, merchant, job, "wait for the job to finish issuing, then revoke it")
            if inputs.deferrable:
                self._defer(inputs, merchant, deadline, ISSUANCE, "execute_after_issuance", {"deadline": deadline})
            job = self._poll(inputs, hook, merchant, deadline, ISSUANCE)
            state = job.get("state")
        if state in REVOCABLE_STATES:
            if inputs.dry_run:
                return self._dry_run(inputs, merchant, job, "revoke the job")
            return self._revoke_and_finish(inputs, hook, merchant, deadline)
        raise RewardsJobStateError(
            inputs.issuance_job_id, state, f"one of {', '.join(KNOWN_STATES)} (an unknown state); nothing was changed"
        )

    def execute_after_issuance(
        self, context: Context, event: dict[str, Any], deadline: float | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger saw the issuance finish: revoke, then wait for completion if asked."""
        inputs = self.check_inputs(rendered=True)
        self._event_job(event, ISSUANCE)
        if deadline is None:  # ``airflow dags test`` resumes without the defer kwargs
            deadline = time.time() + inputs.wait_timeout
        with ThanxHook(inputs.thanx_conn_id) as hook:
            return self._revoke_and_finish(inputs, hook, event["merchant_id"], deadline)

    def execute_complete(
        self, context: Context, event: dict[str, Any], outcome: str = "revoke_started"
    ) -> dict[str, Any]:
        """Resume after the trigger's event: fail on anything but success, else return the summary."""
        job = self._event_job(event, REVOCATION)
        return self._result(event["issuance_job_id"], event["merchant_id"], REVOKED_OUTCOME.get(outcome, outcome), job)

    # --- steps ----------------------------------------------------------------------------------------------

    def _already_revoked(
        self, inputs: RevokeInputs, hook: ThanxHook, merchant: str, job: IssuanceJob, deadline: float
    ) -> dict[str, Any]:
        state = job.get("state")
        found = f"Issuance job {inputs.issuance_job_id} is already {state}: an earlier revoke got through"
        if inputs.if_already_revoked == "fail":
            raise AirflowFailException(
                f"{found}, and if_already_revoked='fail'. Use 'succeed' (the default, safe for task retries) "
                "to accept it, or 'skip'"
            )
        if inputs.if_already_revoked == "skip":
            raise AirflowSkipException(f"{found}; skipping (if_already_revoked='skip')")
        self.log.info("%s; nothing to send (if_already_revoked='succeed')", found)
        if inputs.dry_run:
            return self._dry_run(inputs, merchant, job, "send nothing, the job is already being revoked")
        outcome = "already_revoked" if state == "revoked" else "already_revoking"
        return self._finish(inputs, hook, merchant, job, deadline, outcome)

    def _revoke_and_finish(
        self, inputs: RevokeInputs, hook: ThanxHook, merchant: str, deadline: float
    ) -> dict[str, Any]:
        job = self._revoke(hook, inputs.issuance_job_id, merchant)
        return self._finish(inputs, hook, merchant, job, deadline, "revoke_started")

    def _revoke(self, hook: ThanxHook, job_id: str, merchant: str, *, may_resend: bool = True) -> IssuanceJob:
        """POST the revoke; on a 422 or an answer that may hide an applied revoke (see the class), read the job back."""
        try:
            job = hook.revoke_issuance_job(job_id, merchant)
        except RewardsApiError as error:
            if error.attempts == 0:  # refused before sending (the credential is paused after a 429): not applied
                raise RewardsError(
                    f"The revoke of issuance job {job_id} was not sent ({error}); nothing was applied, and a retry "
                    "of this task is safe"
                ) from error
            answer_may_be_lost = error.status_code is None or error.status_code in RETRYABLE_STATUSES
            if error.is_client_error and error.status_code != UNPROCESSABLE and not answer_may_be_lost:
                raise
            current = self._read_back(hook, job_id, merchant, error)
            state = current.get("state")
            if state in REVOKED_STATES:
                self.log.info(
                    "The revoke of issuance job %s answered %s, but the job now reads %s: the revoke was applied "
                    "(an attempt whose answer was lost got through)",
                    job_id,
                    error.outcome,
                    state,
                )
                return current
            if state in REVOCABLE_STATES and error.status_code != UNPROCESSABLE and may_resend:
                self.log.warning(
                    "The revoke of issuance job %s failed (%s) and the job still reads %s: sending it once more",
                    job_id,
                    error.outcome,
                    state,
                )
                return self._revoke(hook, job_id, merchant, may_resend=False)
            raise RewardsError(
                f"Revoking issuance job {job_id} failed ({error}); the job now reads {state!r}"
            ) from error
        self.log.info("Revoke of issuance job %s accepted; the job is %s", job_id, job.get("state"))
        return job

    def _read_back(self, hook: ThanxHook, job_id: str, merchant: str, error: RewardsApiError) -> IssuanceJob:
        try:
            return hook.get_issuance_job(job_id, merchant)
        except RewardsApiError as read_error:
            raise RewardsError(
                f"Revoking issuance job {job_id} failed ({error}) and reading it back failed too ({read_error}); "
                "the revoke may or may not have been applied. A retry of this task reads the job first and is safe"
            ) from error

    def _finish(
        self, inputs: RevokeInputs, hook: ThanxHook, merchant: str, job: IssuanceJob, deadline: float, outcome: str
    ) -> dict[str, Any]:
        """Return the summary, after waiting for ``revoked`` when ``wait_for_completion`` asks for it."""
        if job.get("state") == "revoked":
            return self._result(inputs.issuance_job_id, merchant, REVOKED_OUTCOME.get(outcome, outcome), job)
        if not inputs.wait_for_completion:
            return self._result(inputs.issuance_job_id, merchant, outcome, job)
        if inputs.deferrable:
            self._defer(inputs, merchant, deadline, REVOCATION, "execute_complete", {"outcome": outcome})
        job = self._poll(inputs, hook, merchant, deadline, REVOCATION)
        return self._result(inputs.issuance_job_id, merchant, REVOKED_OUTCOME.get(outcome, outcome), job)

    def _poll(self, inputs: RevokeInputs, hook: ThanxHook, merchant: str, deadline: float, wait: Wait) -> IssuanceJob:
        """Wait on the worker with blocking reads, every ``poll_interval`` seconds until the deadline."""
        self.log.info(
            "Waiting for issuance job %s to %s (every %gs)", inputs.issuance_job_id, wait.goal, inputs.poll_interval
        )
        try:
            return hook.wait_for_job_state(
                inputs.issuance_job_id,
                merchant,
                target_states=wait.target_states,
                waiting_states=wait.waiting_states,
                poll_interval=inputs.poll_interval,
                timeout=max(0.0, deadline - time.time()),
            )
        except TimeoutError as error:
            raise RewardsError(f"{error}; wait_timeout is {inputs.wait_timeout:g}s") from error

    def _defer(
        self, inputs: RevokeInputs, merchant: str, deadline: float, wait: Wait, method_name: str, kwargs: dict[str, Any]
    ) -> NoReturn:
        """Hand the wait to the triggerer; ``method_name`` resumes with the trigger's event and ``kwargs``."""
        from airflow_provider_rewards.triggers.thanx import ThanxIssuanceJobTrigger

        remaining = deadline - time.time()
        if remaining <= 0:
            raise RewardsError(
                f"wait_timeout ({inputs.wait_timeout:g}s) passed before issuance job {inputs.issuance_job_id} "
                f"could {wait.goal}"
            )
        self.log.info(
            "Deferring: waiting for issuance job %s to %s (every %gs, for at most %.0fs)",
            inputs.issuance_job_id,
            wait.goal,
            inputs.poll_interval,
            remaining,
        )
        trigger = ThanxIssuanceJobTrigger(
            issuance_job_id=inputs.issuance_job_id,
            merchant_id=merchant,
            thanx_conn_id=inputs.thanx_conn_id,
            target_states=list(wait.target_states),
            waiting_states=list(wait.waiting_states),
            poll_interval=inputs.poll_interval,
            end_time=deadline,
        )
        # The trigger reports the deadline itself; the deferral timeout is only a backstop (e.g. no triggerer).
        timeout = timedelta(seconds=remaining + inputs.poll_interval + DEFER_GRACE)
        self.defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def _event_job(self, event: dict[str, Any], wait: Wait) -> dict[str, Any]:
        """The job summary of a successful trigger event; raise with the event's message otherwise."""
        if not isinstance(event, dict) or event.get("status") != "success":
            details = event if isinstance(event, dict) else {"message": repr(event)}
            raise RewardsError(
                f"Waiting for issuance job {details.get('issuance_job_id', '?')} to {wait.goal} ended with "
                f"{details.get('status', 'an unknown event')}: {details.get('message')}"
            )
        self.log.info(
            "Waiting for issuance job %s to %s: %s", event.get("issuance_job_id"), wait.goal, event.get("message")
        )
        return event.get("job") or {}

    def _dry_run(self, inputs: RevokeInputs, merchant: str, job: IssuanceJob, action: str) -> dict[str, Any]:
        then = ", then wait until it reads revoked" if inputs.wait_for_completion else ""
        self.log.info(
            "Dry run: would %s%s (issuance job %s, merchant %s, state %s, %s rewards issued, %s failed); "
            "nothing was sent",
            action,
            then,
            inputs.issuance_job_id,
            merchant,
            job.get("state"),
            job.get("success_count"),
            job.get("failure_count"),
        )
        return self._result(inputs.issuance_job_id, merchant, "dry_run", job)

    @staticmethod
    def _result(job_id: str, merchant: str, outcome: str, job: IssuanceJob | dict[str, Any]) -> dict[str, Any]:
        return {"issuance_job_id": job_id, "merchant_id": merchant, "outcome": outcome, "job": summarize_job(job)}
