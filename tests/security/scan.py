"""Everything an ``airflow dags test`` run leaves behind, gathered for a secret scan.

:func:`run_sources` returns ``{where: content}`` for :func:`tests.e2e.secret_scan.find_leaks`:

* the run's stdout and stderr (``airflow dags test`` runs every task in-process and prints its log there,
  unmasked, so a logged secret shows up here);
* every file under ``$AIRFLOW_HOME/logs``;
* from the SQLite metadata database: every XCom value, every task instance's rendered template fields,
  every trigger row (classpath and serialized kwargs; ``dags test`` keeps the last one), every task
  instance's ``next_method``/``next_kwargs`` and every DAG run's ``conf``;
* the bytes of every ``airflow.db*`` file, which also covers tables no one thought of.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.secret_scan import files_under

OUTPUT = "airflow dags test stdout+stderr"
QUERIES = {
    "XCom": "SELECT task_id, map_index, key, value FROM xcom",
    "rendered template fields": "SELECT task_id, map_index, rendered_fields FROM rendered_task_instance_fields",
    "trigger": "SELECT id, classpath, kwargs FROM trigger",
    "task instance next_kwargs": "SELECT task_id, map_index, next_method, next_kwargs FROM task_instance",
    "DAG run conf": "SELECT run_id, conf FROM dag_run",
}


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class RunSources:
    """The sources to scan, and how many of each kind were found (to show the scan was not empty)."""

    sources: dict[str, str | bytes] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, where: str, content: str | bytes) -> None:
        self.sources[f"{kind}: {where}"] = content
        self.counts[kind] += 1


def run_sources(home: Path, output: str) -> RunSources:
    """Every place a ``dags test`` run in ``home`` may have left a secret (see the module docstring)."""
    found = RunSources()
    found.add(OUTPUT, "", output)
    for path, content in files_under(home / "logs").items():
        found.add("task log file", path, content)
    database = home / "airflow.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        for kind, query in QUERIES.items():
            for row in db.execute(query):
                *where, content = [_text(column) for column in row]
                found.add(kind, " ".join(where), content)
    for path, content in files_under(*sorted(home.glob("airflow.db*"))).items():
        found.add("database file bytes", path, content)
    return found


def leak_kinds(leaks: list[str]) -> set[str]:
    """The kinds of source (``XCom``, ``trigger``, ...) in which :func:`find_leaks` found something."""
    return {leak.split(" in ", 1)[1].split(":", 1)[0] for leak in leaks}
