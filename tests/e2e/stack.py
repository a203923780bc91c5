"""A real Airflow deployment for end-to-end tests: api-server, scheduler (LocalExecutor), dag-processor
and triggerer, each started with ``subprocess.Popen`` in its own process group, on 127.0.0.1 only.
Any other process (a database, a broker, a Celery worker, a second triggerer) can join the same stack
(:meth:`AirflowStack.start_process`, :meth:`AirflowStack.start_airflow`), and one can be killed mid-run
(:meth:`AirflowStack.kill`); ``tests/e2e/distributed/cluster.py`` builds a CeleryExecutor cluster this way.
:func:`running_stack` is the single-host SQLite deployment most e2e tests use: migrated, started, always stopped.

Every component writes stdout and stderr to its own files under ``logs_dir``. :meth:`AirflowStack.stop`
always terminates every process group (SIGTERM, a grace period, then SIGKILL; Airflow components before
the services they use) and also kills any descendant that left its group; it is idempotent, so a test may
stop the stack early (to scan the logs) and the fixture teardown stops it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
from rewards_sandbox.demo import migrate

T = TypeVar("T")

#: Processes started, in order; the api-server first because the others' workers need it.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("api-server", ("api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1")),
    ("scheduler", ("scheduler", "--skip-serve-logs")),
    ("dag-processor", ("dag-processor",)),
    ("triggerer", ("triggerer", "--skip-serve-logs")),
)


class StackError(AssertionError):
    """A deadline passed or a component died; the message carries the components' log tails."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_settings(port: int) -> dict[str, str]:
    """Airflow settings for a loopback deployment with LocalExecutor on SQLite and an open REST API."""
    base_url = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # SimpleAuthManager without logins: every REST request is an admin (loopback only).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        # One signing key for the api-server and the scheduler that hands tokens to task workers.
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # Keep the DAG folder in the checkout free of __pycache__ written by the dag-processor.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass(frozen=True)
class Deadline:
    """A monotonic deadline shared by every wait of one test."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float:
        return self.started + self.seconds - time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Component:
    """One started process (leader of its own process group) and its output files.

    ``service`` components (a database, a broker) are stopped after every other one; a component
    killed on purpose (``killed``) no longer fails :meth:`AirflowStack.check_alive`.
    """

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    service: bool = False
    killed: bool = False
    #: The name asked for (``name`` gets a ``-2``, ``-3`` suffix when a component is started again).
    role: str = ""


class AirflowStack:
    """Start, query and stop Airflow components (by default the four of ``COMPONENTS``, sharing one
    ``AIRFLOW_HOME``) and any service process they need."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int,
        logs_dir: Path,
        components: tuple[tuple[str, tuple[str, ...]], ...] = COMPONENTS,
    ) -> None:
        self.env = dict(env)
        self.port = port
        self.logs_dir = logs_dir
        self.base_url = f"http://127.0.0.1:{port}"
        self.specs = components
        self.components: list[Component] = []
        self.http = requests.Session()
        self.http.trust_env = False  # never route loopback calls through a proxy from the environment

    # ---------------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every component of ``components`` (the constructor's), in order."""
        for name, args in self.specs:
            self.start_airflow(name, args)

    def start_airflow(self, name: str, args: tuple[str, ...], env: Mapping[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` (``{port}`` replaced by the api-server's) as component ``name``;
        ``env`` defaults to the stack's environment."""
        command = [sys.executable, "-m", "airflow", *(arg.format(port=self.port) for arg in args)]
        return self.start_process(name, command, env=self.env if env is None else env)

    def start_process(
        self,
        name: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        service: bool = False,
    ) -> Component:
        """Start any process as component ``name`` in its own process group, stdout/stderr to
        ``logs_dir/<name>.{stdout,stderr}.log`` (a restarted name gets ``<name>-2``, ...); ``user``
        runs it as that user (the caller must be root)."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        taken = {c.name for c in self.components}
        unique = next(n for n in (name, *(f"{name}-{i}" for i in range(2, 1000))) if n not in taken)
        stdout, stderr = self.logs_dir / f"{unique}.stdout.log", self.logs_dir / f"{unique}.stderr.log"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                command,
                env=dict(self.env if env is None else env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        component = Component(unique, process, stdout, stderr, service=service, role=name)
        self.components.append(component)
        return component

    def component(self, name: str) -> Component:
        """The live component started as ``name`` (the latest one if it was started again)."""
        live = [c for c in self.components if c.role == name and not c.killed]
        if not live:
            raise self.fail(f"no live component {name!r}")
        return live[-1]

    def kill(self, component: Component, sig: signal.Signals = signal.SIGKILL) -> int | None:
        """Send ``sig`` to the component's process group and every descendant (a crash, not a shutdown);
        wait for it to exit and return its exit code. :meth:`check_alive` ignores it from then on."""
        component.killed = True
        descendants = self._descendants(component)
        self._signal_group(component, sig)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=30)
        return component.process.poll()

    def stop(self, grace: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every process group, wait up to ``grace`` seconds, then SIGKILL what is left;
        Airflow components first, then the services (database, broker) they use.

        Returns each component's exit code (negative: killed by that signal). Idempotent.
        """
        for tier in (False, True):
            self._stop_tier([c for c in self.components if c.service is tier], grace)
        self.http.close()
        return {component.name: component.process.returncode for component in self.components}

    def _stop_tier(self, components: list[Component], grace: float) -> None:
        descendants: list[psutil.Process] = []
        for component in components:
            descendants += self._descendants(component)
            self._signal_group(component, signal.SIGTERM)
        end = time.monotonic() + grace
        for component in components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=max(0.1, end - time.monotonic()))
        for component in components:
            self._signal_group(component, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)
        for child in descendants:  # a task runner or worker that moved to another process group
            with contextlib.suppress(psutil.Error):
                child.kill()

    @staticmethod
    def _descendants(component: Component) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(component.process.pid).children(recursive=True)
        return []

    @staticmethod
    def _signal_group(component: Component, sig: signal.Signals) -> None:
        # start_new_session=True made the component the leader of process group == its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(component.process.pid, sig)

    # ---------------------------------------------------------------------------------------------
    # Diagnostics and waiting
    # ---------------------------------------------------------------------------------------------
    def tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of every component's stdout and stderr."""
        parts = []
        for component in self.components:
            for path in (component.stdout, component.stderr):
                text = path.read_text(errors="replace") if path.exists() else ""
                tail = "\n".join(text.splitlines()[-lines:])
                parts.append(f"----- {path.name} (exit code {component.process.poll()}) -----\n{tail}")
        return "\n".join(parts)

    def fail(self, message: str) -> StackError:
        return StackError(f"{message}\n\n{self.tails()}")

    def check_alive(self) -> None:
        dead = [
            f"{c.name} (exit code {c.process.returncode})"
            for c in self.components
            if not c.killed and c.process.poll() is not None
        ]
        if dead:
            raise self.fail(f"Airflow component(s) exited: {', '.join(dead)}")

    def wait_for(
        self, what: str, probe: Callable[[], T | None], deadline: Deadline, limit: float, interval: float = 0.5
    ) -> T:
        """Call ``probe`` until it returns something other than None, for at most ``limit`` seconds
        (and never past ``deadline``); fail with the components' log tails otherwise."""
        end = time.monotonic() + min(limit, deadline.remaining)
        last_error: Exception | None = None
        while True:
            self.check_alive()
            try:
                result = probe()
            except (requests.RequestException, ValueError) as exc:  # not up yet, or a half-written answer
                result, last_error = None, exc
            if result is not None:
                return result
            if time.monotonic() >= end:
                detail = f" (last error: {last_error!r})" if last_error else ""
                raise self.fail(f"Timed out after {deadline.elapsed:.0f}s waiting for {what}{detail}")
            time.sleep(interval)

    # ---------------------------------------------------------------------------------------------
    # REST API (/api/v2) and metadata DB
    # ---------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.base_url}/api/v2{path}", timeout=10, **kwargs)

    def api_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        if response.status_code >= 400:
            raise self.fail(f"{method} /api/v2{path} answered {response.status_code}: {response.text[:2000]}")
        return response.json()

    def healthy(self) -> dict[str, Any] | None:
        """The health report once scheduler, triggerer and dag-processor all report healthy."""
        response = self.api("GET", "/monitor/health")
        if response.status_code != 200:
            return None
        health = response.json()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        ok = all((health.get(part) or {}).get("status") == "healthy" for part in parts)
        return health if ok else None

    def db_query(self, code: str, timeout: float = 60) -> Any:
        """Run ``code`` (which must print one JSON document) in a Python process with this stack's
        environment, i.e. against its metadata database; return the parsed JSON."""
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise self.fail(f"metadata DB query failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running_stack(env: Mapping[str, str], port: int, logs_dir: Path) -> Iterator[AirflowStack]:
    """``airflow db migrate`` on ``env``'s ``AIRFLOW_HOME``, then the four components of :data:`COMPONENTS`
    (api-server on ``port``, logs under ``logs_dir``). Every component is stopped on exit, whether the body
    passed or failed, or a component failed to start."""
    migrate(env)
    stack = AirflowStack(env, port, logs_dir)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
