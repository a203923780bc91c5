"""Exceptions of the rewards provider; messages name vendor, request, status and vendor code, never a secret."""

from __future__ import annotations

from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class RewardsError(AirflowException):
    """Base class of every error raised by this provider."""


class RewardsInputError(RewardsError, AirflowFailException, ValueError):
    """An operator or hook argument is invalid; raised before any HTTP request.

    It is a ``RewardsError`` like every error of this provider, an ``AirflowFailException`` because
    retrying a task with the same bad input cannot succeed, and a ``ValueError`` so that callers
    outside Airflow can catch it naturally.
    """


class RewardsConnectionConfigError(RewardsError):
    """An Airflow connection is missing a field or holds a malformed one."""

    def __init__(self, conn_id: str, field: str, problem: str) -> None:
        self.conn_id = conn_id
        self.field = field
        super().__init__(f"Connection {conn_id!r}, field {field}: {problem}")


@dataclass(eq=False, repr=False, kw_only=True)
class RewardsApiError(RewardsError):
    """A vendor API answered with an error, or could not be reached after every retry.

    :ivar vendor: ``"Thanx"`` or ``"HPGames"``.
    :ivar method: HTTP method of the failed request.
    :ivar path: request path (no query string, no credentials).
    :ivar status_code: HTTP status, or ``None`` when no response was received.
    :ivar vendor_code: the vendor's error code (Thanx ``code``, HPGames ``errorCode``), if any.
    :ivar vendor_message: the vendor's error message or raw response text, scrubbed and truncated.
    :ivar attempts: how many attempts were made.
    """

    vendor: str
    method: str
    path: str
    status_code: int | None
    vendor_code: str | None = None
    vendor_message: str | None = None
    attempts: int = 1

    def __post_init__(self) -> None:
        detail = ": ".join(part for part in (self.vendor_code, self.vendor_message) if part)
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        text = f"{self.vendor} API {self.method} {self.path} failed{tries}: {self.outcome}"
        super().__init__(f"{text} ({detail})" if detail else text)

    @property
    def outcome(self) -> str:
        """``"HTTP <status>"``, or ``"no response"`` when none was received."""
        return f"HTTP {self.status_code}" if self.status_code is not None else "no response"

    @property
    def is_client_error(self) -> bool:
        """True for a 4xx, or a 2xx carrying a vendor error code: the request was refused; a retry won't help."""
        if self.status_code is None:
            return False
        return 400 <= self.status_code < 500 or (self.status_code < 400 and self.vendor_code is not None)


class RewardsJobStateError(RewardsError):
    """A Thanx issuance job is in a state the caller cannot proceed from (e.g. back to ``completed``)."""

    def __init__(self, job_id: str, state: object, expected: str) -> None:
        self.job_id = job_id
        self.state = state
        super().__init__(f"Issuance job {job_id} is in state {state!r}, expected {expected}")


class BatchRunFailed(RewardsError):
    """A batch run stopped at a persistent failure; ``details`` go into the pushed summary."""

    def __init__(self, message: str, details: dict[str, object]) -> None:
        super().__init__(message)
        self.details = details
