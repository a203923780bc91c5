"""A distributed Airflow on one machine: PostgreSQL, Redis, api-server, scheduler (CeleryExecutor),
dag-processor, triggerer and two Celery workers, all on 127.0.0.1 and free ports.

Each component runs in its own temporary directory (its own ``AIRFLOW_HOME``, as on its own host); what
must be identical on every host is passed to all of them as environment variables (:func:`cluster_settings`).
PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and ``postgres`` run as the
``postgres`` user (Debian's package creates it), in a directory made for that user.
Every process is a :class:`~tests.e2e.stack.Component` of one :class:`~tests.e2e.stack.AirflowStack`, so
one ``stop()`` ends them all (Airflow first, then the database and the broker), and a failure message
carries every component's log tail.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.stack import AirflowStack, Component, Deadline, free_port, stack_settings

PG_USER = "airflow"
PG_DATABASE = "airflow"
#: Celery workers started by :meth:`Cluster.start`, each with a small pool (2 cores for everything).
WORKERS = ("worker1", "worker2")
WORKER_CONCURRENCY = 4
#: Seconds without a heartbeat after which a killed task or triggerer is noticed (defaults 300 and 30).
TASK_HEARTBEAT_TIMEOUT = 20
TRIGGERER_HEALTH_THRESHOLD = 10


class ClusterSetupError(RuntimeError):
    """A prerequisite is missing (binary, user); the message names it and how to get it."""


def postgres_bindir() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major), else the ones on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found is None:
        raise ClusterSetupError("PostgreSQL's initdb was not found: run `make e2e-deps` (apt-get install postgresql)")
    return Path(found).parent


def redis_server() -> str:
    """The redis-server binary."""
    found = shutil.which("redis-server")
    if found is None:
        raise ClusterSetupError("redis-server was not found: run `make e2e-deps` (apt-get install redis-server)")
    return found


def fernet_key() -> str:
    """A new Fernet key (32 random bytes, urlsafe base64), the form ``[core] fernet_key`` takes."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster."""

    api: int
    postgres: int
    redis: int


def cluster_settings(ports: Ports, fernet: str) -> dict[str, str]:
    """What every component must share: executor, database, broker, result backend, the three secrets and
    the execution API's address. The loopback basics (REST API open to admin, host/port) come from
    :func:`~tests.e2e.stack.stack_settings`."""
    database = f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{ports.postgres}/{PG_DATABASE}"
    settings = stack_settings(ports.api)
    settings.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(2 * len(WORKERS) * WORKER_CONCURRENCY),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database.replace("+psycopg2", "+asyncpg"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports.redis}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__CORE__FERNET_KEY": fernet,
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_THRESHOLD),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "60",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3600",
        }
    )
    return settings


class Cluster:
    """PostgreSQL, Redis and the Airflow components of one test, in ``root`` (logs under ``root/components``).

    ``env`` is the environment every Airflow component starts from (connections, DAG folder, test knobs);
    the cluster adds :func:`cluster_settings` and a home of its own per component.
    """

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.ports = Ports(free_port(), free_port(), free_port())
        self.fernet_key = fernet_key()
        self.settings = cluster_settings(self.ports, self.fernet_key)
        self.env = {**env, **self.settings}
        # The client's env (db_query, airflow CLI calls of the test) gets a home of its own too.
        self.stack = AirflowStack(
            {**self.env, "AIRFLOW_HOME": str(self.home("client"))}, self.ports.api, root / "components"
        )
        self.pg_dir: Path | None = None
        self.timings: dict[str, float] = {}

    def home(self, name: str) -> Path:
        """The AIRFLOW_HOME of component ``name`` (created on first use)."""
        path = self.root / "homes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def component_env(self, name: str, **extra: str) -> dict[str, str]:
        """The shared environment with ``name``'s own AIRFLOW_HOME (and ``extra`` settings)."""
        return {**self.env, "AIRFLOW_HOME": str(self.home(name)), **extra}

    # ---------------------------------------------------------------------------------------------
    # Services
    # ---------------------------------------------------------------------------------------------
    def start_postgres(self) -> Component:
        """initdb a new cluster (trust auth, loopback only, no fsync) and start ``postgres`` on it."""
        bindir = postgres_bindir()
        user = "postgres" if os.geteuid() == 0 else None
        if user is not None:
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise ClusterSetupError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user: run `make e2e-deps` "
                    "(Debian's postgresql package creates it) or run the tests as another user"
                ) from None
        # Outside pytest's 0700 tmp tree, so that the postgres user can reach it.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="rewards-e2e-pg-"))
        if user is not None:
            shutil.chown(self.pg_dir, user, user)
        data = self.pg_dir / "data"
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            user=user, group=user, extra_groups=[] if user else None, cwd=self.pg_dir,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise ClusterSetupError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        command = [
            str(bindir / "postgres"), "-D", str(data), "-p", str(self.ports.postgres),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.pg_dir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300",
        ]  # fmt: skip
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C"}
        return self.stack.start_process("postgres", command, env=env, user=user, service=True)

    def create_database(self, deadline: Deadline) -> None:
        """Wait for PostgreSQL to accept connections, then create the Airflow database."""
        import psycopg2

        def connect() -> Any:
            return psycopg2.connect(host="127.0.0.1", port=self.ports.postgres, user=PG_USER, dbname="postgres")

        conn = self.stack.wait_for("PostgreSQL to accept connections", _quiet(connect), deadline, limit=60)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {PG_DATABASE}")
        finally:
            conn.close()

    def start_redis(self) -> Component:
        """Redis on loopback, nothing persisted."""
        redis_dir = self.root / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server(), "--port", str(self.ports.redis), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(redis_dir),
        ]  # fmt: skip
        return self.stack.start_process("redis", command, env={"PATH": os.environ.get("PATH", "")}, service=True)

    def migrate(self) -> None:
        """``airflow db migrate`` against the cluster's database."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.component_env("migrate"), capture_output=True, text=True, timeout=600,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise self.stack.fail(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    # ---------------------------------------------------------------------------------------------
    # Airflow
    # ---------------------------------------------------------------------------------------------
    def start_airflow(self, name: str) -> Component:
        """Start one Airflow component by role: api-server, scheduler, dag-processor, triggerer or a worker."""
        if name in WORKERS:
            args = ("celery", "worker", "-H", f"{name}@%h", "-c", str(WORKER_CONCURRENCY), "--without-mingle",
                    "--without-gossip")  # fmt: skip
            env = self.component_env(name, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
            return self.stack.start_airflow(name, args, env=env)
        args = {
            "api-server": ("api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"),
            "scheduler": ("scheduler", "--skip-serve-logs"),
            "dag-processor": ("dag-processor",),
            "triggerer": ("triggerer", "--skip-serve-logs"),
        }[name]
        return self.stack.start_airflow(name, args, env=self.component_env(name))

    def start(self, deadline: Deadline) -> None:
        """Services, schema, then every Airflow component; records each phase's duration in ``timings``."""
        started = time.monotonic()
        self.start_postgres()
        self.start_redis()
        self.create_database(deadline)
        self.timings["postgres + redis"] = time.monotonic() - started
        mark = time.monotonic()
        self.migrate()
        self.timings["db migrate"] = time.monotonic() - mark
        for name in ("api-server", "scheduler", "dag-processor", "triggerer", *WORKERS):
            self.start_airflow(name)

    def stop(self) -> dict[str, int | None]:
        """Stop every process (idempotent) and remove the PostgreSQL directory."""
        codes = self.stack.stop()
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        return codes

    # ---------------------------------------------------------------------------------------------
    # Metadata database
    # ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A psycopg2 connection to the Airflow database (autocommit: each query sees the latest state)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.ports.postgres, user=PG_USER, dbname=PG_DATABASE)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SQL query against the Airflow database."""
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def pg_dump(self) -> str:
        """Every row of every table as plain SQL text (``pg_dump --data-only``)."""
        done = subprocess.run(
            [str(postgres_bindir() / "pg_dump"), "--data-only", "-h", "127.0.0.1", "-p", str(self.ports.postgres),
             "-U", PG_USER, PG_DATABASE],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise self.stack.fail(f"pg_dump failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout


def _quiet(connect: Callable[[], Any]) -> Callable[[], Any]:
    """``connect`` with connection errors turned into None ("not yet")."""

    def probe() -> Any:
        import psycopg2

        try:
            return connect()
        except psycopg2.OperationalError:
            return None

    return probe
