"""``python -m airflow_provider_rewards.sandbox``: same as the ``rewards-sandbox`` command."""

import sys

from airflow_provider_rewards.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
