"""What the rewards operators share: template rendering and the summary XCom."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_rewards.utils.batching import SUMMARY_XCOM_KEY
from airflow_provider_rewards.utils.templating import has_jinja


class RewardsBaseOperator(BaseOperator):
    """Base of the rewards operators.

    Subclasses validate their inputs with one method called twice: at the end of ``__init__``
    (values that are still templates are skipped) and at the start of ``execute()`` (everything).
    """

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

    @staticmethod
    def push_summary(context: Context, summary: dict[str, Any]) -> None:
        """Push ``summary`` to XCom under key ``"summary"`` (done before a task fails, so nothing goes unreported)."""
        context["ti"].xcom_push(key=SUMMARY_XCOM_KEY, value=summary)
