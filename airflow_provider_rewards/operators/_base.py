"""What the rewards operators share: template rendering, the summary XCom and OpenLineage."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, Context

from airflow_provider_rewards.utils.batching import SUMMARY_XCOM_KEY
from airflow_provider_rewards.utils.lineage import VendorDataset, operator_lineage
from airflow_provider_rewards.utils.templating import has_jinja

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


def _recording_summary(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``execute``: forget the previous summary, run, remember what it returned (for lineage)."""

    @functools.wraps(method)
    def execute(self: RewardsBaseOperator, *args: Any, **kwargs: Any) -> Any:
        self.lineage_summary = None
        result = method(self, *args, **kwargs)
        self.remember_summary(result)
        return result

    return execute


class RewardsBaseOperator(BaseOperator):
    """Base of the rewards operators.

    Subclasses validate their inputs with one method called twice: at the end of ``__init__``
    (values that are still templates are skipped) and at the start of ``execute()`` (everything).

    OpenLineage (``apache-airflow-providers-openlineage``, when installed): every subclass emits the
    datasets it read and changed and a ``rewards`` run facet with the counts of the summary it returned
    (or pushed under ``"summary"`` before failing); see :mod:`airflow_provider_rewards.utils.lineage`.
    A subclass names what it touches in ``lineage_datasets``; when it names nothing, each
    ``<vendor>_conn_id`` it holds stands for that vendor's default collection, changed.
    """

    #: The vendor collections the operator reads or changes (empty: found from its ``*_conn_id`` attributes).
    lineage_datasets: ClassVar[tuple[VendorDataset, ...]] = ()
    #: The summary of the last run (returned, or pushed before a failure); ``None`` before one.
    lineage_summary: Mapping[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "execute" in cls.__dict__:
            cls.execute = _recording_summary(cls.__dict__["execute"])  # type: ignore[method-assign]

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: Any = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render like Airflow does, but return plain strings (no Jinja markers) untouched.

        A literal list of 10,000 ids would otherwise be compiled as 10,000 Jinja templates
        (seconds per render), and a native-object environment would turn an id such as ``"123"``
        into an int.
        """
        if isinstance(content, str) and not has_jinja(content):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def push_summary(self, context: Context, summary: dict[str, Any]) -> None:
        """Push ``summary`` to XCom under key ``"summary"`` (done before a task fails, so nothing goes unreported)."""
        self.remember_summary(summary)
        context["ti"].xcom_push(key=SUMMARY_XCOM_KEY, value=summary)

    def remember_summary(self, summary: object) -> None:
        """Keep ``summary`` (a mapping; anything else is ignored) as :attr:`lineage_summary`."""
        if isinstance(summary, Mapping):
            self.lineage_summary = summary

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after a deferral like Airflow does, remembering the summary the resumed method returns."""
        self.lineage_summary = None
        result = super().resume_execution(next_method, next_kwargs, context)
        self.remember_summary(result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """OpenLineage of a successful run: datasets read and changed, vendors, counts (``None`` without OL)."""
        return operator_lineage(self, self.lineage_summary, failed=False)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage | None:
        """OpenLineage of a failed run: the same, with the counts of the summary pushed before failing."""
        return operator_lineage(self, self.lineage_summary, failed=True)
