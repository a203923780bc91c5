"""Provider metadata for Airflow's ProvidersManager, with the connection forms (``conn-fields``, Airflow 3.2+)."""

from __future__ import annotations

from typing import Any

from airflow_provider_rewards import __version__

PACKAGE = "airflow_provider_rewards"
#: The optional extra fields both connection types share (see ``TransportSettings``):
#: name, label, help, JSON type, minimum, default.
TRANSPORT_FIELDS = (
    ("connect_timeout", "Connect timeout (s)", "Seconds to establish a connection.", "number", 0, 10),
    ("read_timeout", "Read timeout (s)", "Seconds to wait for a response.", "number", 0, 30),
    ("max_retries", "Max retries", "Retries on network errors, 408, 429 and 5xx (0 disables).", "integer", 0, 5),
    ("retry_backoff", "Retry backoff (s)", "First retry delay; doubles per retry, with jitter.", "number", 0, 1),
    ("retry_backoff_max", "Retry backoff max (s)", "Longest single backoff delay.", "number", 0, 60),
    (
        "retry_after_max",
        "Retry-After max (s)",
        "Longest Retry-After honoured by waiting; longer fails at once.",
        "number",
        0,
        300,
    ),
)
#: The Thanx rate budget (extra keys read by ``hooks.rate_limit.RateBudget.from_extra``), in the same form.
BUDGET_FIELDS = (
    (
        "max_requests_per_second",
        "Max requests/s",
        "Per credential, shared by every task and trigger (0: no limit).",
        "number",
        0,
        4,
    ),
    (
        "max_requests_per_window",
        "Max requests per window",
        "Requests per window_seconds (0: no window).",
        "integer",
        0,
        1800,
    ),
    ("window_seconds", "Window (s)", "Length of that window.", "number", 0, 900),
    (
        "triggerer_count",
        "Budget shares",
        "Processes sharing the budget (triggerers, plus 1 for the workers); each gets 1/N.",
        "integer",
        1,
        1,
    ),
)


def _form_fields(specs: tuple[tuple[str, str, str, str, int, int], ...]) -> dict[str, Any]:
    """``conn-fields`` entries: optional (nullable) numbers with a minimum and a default."""
    return {
        name: {
            "label": label,
            "description": description,
            "schema": {"type": [kind, "null"], "minimum": least, "default": default},
        }
        for name, label, description, kind, least, default in specs
    }


def _connection_type(
    conn_type: str, hook: str, name: str, labels: dict[str, str], placeholders: dict[str, str], **fields: Any
) -> dict[str, Any]:
    """One connection form: host, login and password relabelled, schema and port hidden, transport extras."""
    return {
        "connection-type": conn_type,
        "hook-class-name": f"{PACKAGE}.hooks.{hook}",
        "hook-name": name,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", **labels},
            "placeholders": placeholders,
        },
        "conn-fields": {**fields, **_form_fields(TRANSPORT_FIELDS)},
    }


def _modules(kind: str, *integrations: str) -> list[dict[str, Any]]:
    return [{"integration-name": name, "python-modules": [f"{PACKAGE}.{kind}.{name.lower()}"]} for name in integrations]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-rewards",
        "name": "Rewards (Thanx, HPGames)",
        "description": "Revoke Thanx issuance jobs and cancel HPGames rewards from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Thanx", "external-doc-url": "https://docs.thanx.com/partner/overview"},
            {"integration-name": "HPGames", "external-doc-url": "https://docs.hplay.games/docs/intro"},
        ],
        "hooks": _modules("hooks", "Thanx", "HPGames"),
        # The teardown report and the scheduled-teardown operators span both vendors; Airflow lists them under each.
        "operators": [
            *_modules("operators", "Thanx", "HPGames"),
            *[
                {"integration-name": name, "python-modules": [f"{PACKAGE}.operators.{module}"]}
                for module in ("report", "campaigns")
                for name in ("Thanx", "HPGames")
            ],
        ],
        "sensors": _modules("sensors", "Thanx"),
        "triggers": _modules("triggers", "Thanx"),
        "connection-types": [
            _connection_type(
                "thanx",
                "thanx.ThanxHook",
                "Thanx Partner API",
                {"login": "Client ID", "password": "Access Token"},
                {
                    "host": "https://api.thanx.com (sandbox: https://api.thanxsandbox.com)",
                    "login": "Client ID issued by Thanx (sent as X-ClientId)",
                    "password": "Access Token issued by Thanx (sent as Bearer token)",
                    "merchant_id": "k2lye10h32l5wzo",
                },
                merchant_id={
                    "label": "Default merchant ID",
                    "description": "Merchant acted for when a task does not name one (GET /partner/merchants).",
                    "schema": {"type": ["string", "null"], "maxLength": 256},
                },
                **_form_fields(BUDGET_FIELDS),
            ),
            _connection_type(
                "hpgames",
                "hpgames.HPGamesHook",
                "HPGames Rewards API",
                {"login": "Merchant ID", "password": "Secret key"},
                {
                    "host": "BASE_URL HPGames gave you for this environment",
                    "login": "1387a6cc-3651-4473-ae52-e415caea3395",
                    "password": "Merchant secret key used to sign requests",
                },
                already_cancelled_codes={
                    "label": "Already-cancelled error codes",
                    "description": "errorCode values meaning a refused reward is already cancelled, comma-separated "
                    "(empty: settled by reading it back).",
                    "schema": {"type": ["string", "null"], "maxLength": 256},
                },
            ),
        ],
    }
