"""Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point).

Connection forms are declared here (``conn-fields`` and ``ui-field-behaviour``), the Airflow 3.2+
way: the UI renders them without importing our hooks.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_rewards import __version__

PACKAGE = "airflow_provider_rewards"


def _transport_fields() -> dict[str, Any]:
    """Optional extra fields both connection types share (see ``TransportSettings``)."""

    def number(label: str, description: str, default: float, integer: bool = False) -> dict[str, Any]:
        kind = "integer" if integer else "number"
        return {
            "label": label,
            "description": description,
            "schema": {"type": [kind, "null"], "minimum": 0, "default": default},
        }

    return {
        "connect_timeout": number("Connect timeout (s)", "Seconds to establish a connection.", 10),
        "read_timeout": number("Read timeout (s)", "Seconds to wait for a response.", 30),
        "max_retries": number(
            "Max retries", "Retries on network errors, 408, 429 and 5xx (0 disables).", 5, integer=True
        ),
        "retry_backoff": number("Retry backoff (s)", "First retry delay; doubles per retry, with jitter.", 1),
        "retry_backoff_max": number("Retry backoff max (s)", "Longest single backoff delay.", 60),
        "retry_after_max": number(
            "Retry-After max (s)", "Longest Retry-After honoured by waiting; longer fails at once.", 300
        ),
    }


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
        "hooks": [
            {"integration-name": "Thanx", "python-modules": [f"{PACKAGE}.hooks.thanx"]},
            {"integration-name": "HPGames", "python-modules": [f"{PACKAGE}.hooks.hpgames"]},
        ],
        "operators": [
            {"integration-name": "Thanx", "python-modules": [f"{PACKAGE}.operators.thanx"]},
            {"integration-name": "HPGames", "python-modules": [f"{PACKAGE}.operators.hpgames"]},
        ],
        "sensors": [{"integration-name": "Thanx", "python-modules": [f"{PACKAGE}.sensors.thanx"]}],
        "triggers": [{"integration-name": "Thanx", "python-modules": [f"{PACKAGE}.triggers.thanx"]}],
        "connection-types": [
            {
                "connection-type": "thanx",
                "hook-class-name": f"{PACKAGE}.hooks.thanx.ThanxHook",
                "hook-name": "Thanx Partner API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Access Token"},
                    "placeholders": {
                        "host": "https://api.thanx.com (sandbox: https://api.thanxsandbox.com)",
                        "login": "Client ID issued by Thanx (sent as X-ClientId)",
                        "password": "Access Token issued by Thanx (sent as Bearer token)",
                        "merchant_id": "k2lye10h32l5wzo",
                    },
                },
                "conn-fields": {
                    "merchant_id": {
                        "label": "Default merchant ID",
                        "description": "Merchant acted for when a task does not name one (GET /partner/merchants).",
                        "schema": {"type": ["string", "null"], "maxLength": 256},
                    },
                    **_transport_fields(),
                },
            },
            {
                "connection-type": "hpgames",
                "hook-class-name": f"{PACKAGE}.hooks.hpgames.HPGamesHook",
                "hook-name": "HPGames Rewards API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "Merchant ID", "password": "Secret key"},
                    "placeholders": {
                        "host": "BASE_URL HPGames gave you for this environment",
                        "login": "1387a6cc-3651-4473-ae52-e415caea3395",
                        "password": "Merchant secret key used to sign requests",
                    },
                },
                "conn-fields": _transport_fields(),
            },
        ],
    }
