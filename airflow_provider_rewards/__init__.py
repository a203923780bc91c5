"""Apache Airflow provider for tearing down reward campaigns on Thanx and HPGames."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
