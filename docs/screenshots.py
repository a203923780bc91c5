"""``make screenshots``: PNGs of our two connection forms and of the teardown DAG's graph under ``docs/img/``.

Steps, all on 127.0.0.1: start the sandbox (demo seed); make a temporary ``AIRFLOW_HOME`` (SQLite) and
``airflow db migrate``; start ``airflow api-server`` (every request is an admin, so no login); run
``airflow dags test rewards_campaign_teardown`` against the sandbox in that home, so the run shows in the
UI; drive Debian's headless Chromium (Python playwright, no browser download) to

* the add-connection form for ``thanx`` and ``hpgames``, checking that our relabelled fields are shown
  on the right inputs (Client ID, Access Token; Merchant ID, Secret key) -> ``connection-<type>.png``;
* the graph of the demo run, every task ``success`` -> ``teardown-graph.png``.

A PNG is written only after its checks pass; the script exits non-zero if any check fails (a screenshot
of the failing page and the api-server log are kept in a temporary folder, whose path is printed).
The api-server's process group and the sandbox are always stopped. Not part of ``make test``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
IMG_DIR = REPO / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_CHROMIUM = "apt-get update && apt-get install -y chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # loopback only, whatever the environment says
)
VIEWPORT = {"width": 1440, "height": 900}
DAG_ID = "rewards_campaign_teardown"
GRAPH_PNG = "teardown-graph.png"

#: Bounds of the waits; the whole run takes about 35 seconds.
HEALTH_TIMEOUT = 90.0
DAG_RUN_TIMEOUT = 300.0
UI_TIMEOUT_MS = 30_000
STOP_GRACE = 15.0


@dataclass(frozen=True)
class ConnectionForm:
    """One connection type's add-connection form and the labels our ``ui-field-behaviour`` gives its fields."""

    conn_type: str
    hook_name: str
    conn_id: str
    labels: Mapping[str, str]  # input name (``host``, ``login``, ``password``) -> label shown

    @property
    def png(self) -> str:
        return f"connection-{self.conn_type}.png"


FORMS = (
    ConnectionForm(
        "thanx",
        "Thanx Partner API",
        "thanx_default",
        {"host": "API base URL", "login": "Client ID", "password": "Access Token"},
    ),
    ConnectionForm(
        "hpgames",
        "HPGames Rewards API",
        "hpgames_default",
        {"host": "API base URL", "login": "Merchant ID", "password": "Secret key"},
    ),
)


class ScreenshotError(Exception):
    """A check failed or something did not come up in time."""


def missing_chromium_message(chromium: Path = CHROMIUM) -> str | None:
    """Why the browser cannot be used (with the command that fixes it), or None if it is there."""
    if chromium.is_file() and os.access(chromium, os.X_OK):
        return None
    return (
        f"{chromium} not found: `make screenshots` drives Debian's chromium (playwright's own browsers are "
        f"not downloaded). Install it as root with:\n    {INSTALL_CHROMIUM}"
    )


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The UI page of one DAG run (``:`` and ``+`` stay as the UI writes them in its own links)."""
    return f"{base_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe=':+')}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_server_settings(port: int) -> dict[str, str]:
    """A loopback api-server that treats every request as an admin (so the UI needs no login)."""
    base_url = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # Keep the DAG folder in the checkout free of __pycache__.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def wait_until(what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    end = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= end:
            raise ScreenshotError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ApiServer:
    """``airflow api-server`` in its own process group; :meth:`stop` ends the group (and any stray child)."""

    def __init__(self, env: Mapping[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = dict(env), port, log
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        command = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--workers", "1"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise ScreenshotError(f"airflow api-server exited (code {self.process and self.process.returncode})")
        url = f"{self.base_url}/api/v2/monitor/health"
        with contextlib.suppress(OSError), self._no_proxy.open(url, timeout=5) as response:  # OSError: not up yet
            return response.status == 200
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        import psutil  # an Airflow dependency

        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.process.pid).children(recursive=True)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)  # start_new_session: the group id is the leader's pid
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE if sig == signal.SIGTERM else 5)
                break
        for child in children:  # a worker that left the group
            with contextlib.suppress(psutil.Error):
                child.kill()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -------------------------------------------------------------------------------------------------
# Browser steps
# -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def browser_page() -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce", locale="en-US")
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def save(page: Page, path: Path) -> None:
    page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover effects in the picture
    page.screenshot(path=str(path), animations="disabled")


def connection_form(page: Page, base_url: str, form: ConnectionForm) -> None:
    """Open the add-connection dialog, pick ``form``'s type, and check that each label sits on its input."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Add Connection", exact=True)).to_be_visible()
    dialog.get_by_label("Connection ID").fill(form.conn_id)
    select = dialog.get_by_role("combobox", name="Connection Type")
    select.click()
    select.fill(form.hook_name)
    option = page.get_by_role("option", name=form.hook_name, exact=True)
    try:
        option.wait_for(state="visible")
    except Exception as exc:
        offered = page.get_by_role("option").all_inner_texts()
        raise ScreenshotError(
            f"connection type {form.hook_name!r} is not offered (is the provider installed?); offered: {offered}"
        ) from exc
    option.click()
    select.blur()
    problems = []
    for name, label in form.labels.items():
        field = dialog.get_by_label(label, exact=True)
        try:
            expect(field).to_be_visible()
            expect(field).to_have_attribute("name", name)
        except AssertionError as exc:
            problems.append(f"label {label!r} on the {name!r} input: {str(exc).splitlines()[0]}")
    if problems:
        raise ScreenshotError(f"{form.hook_name} form: relabelled fields not shown:\n  " + "\n  ".join(problems))


def graph_view(page: Page, base_url: str, run_id: str) -> None:
    """Open the demo run, switch to the graph, and wait until every task node shows ``success``."""
    from playwright.sync_api import expect

    page.goto(run_url(base_url, DAG_ID, run_id))
    page.get_by_role("button", name="Show Graph").click()
    expect(page.locator(".react-flow__node[data-id='teardown_report']")).to_be_visible()
    try:
        page.wait_for_function(
            """() => {
                const nodes = [...document.querySelectorAll('.react-flow__node')];
                return nodes.length > 0 && nodes.every(node => /\\bsuccess\\b/.test(node.innerText));
            }""",
            timeout=UI_TIMEOUT_MS,
        )
    except Exception as exc:
        raise ScreenshotError(f"the graph of {run_id} does not show every task as success") from exc
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    viewport = page.locator(".react-flow__viewport")
    last: list[str | None] = [None]

    def settled() -> bool:  # the graph is laid out and fitted once its transform stops changing
        now = viewport.get_attribute("style")
        stable, last[0] = now == last[0], now
        return stable

    wait_until("the graph layout to settle", settled, timeout=10, interval=0.3)


# -------------------------------------------------------------------------------------------------
# Main
# -------------------------------------------------------------------------------------------------
def main() -> int:
    problem = missing_chromium_message()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print('playwright is missing: .venv/bin/python -m pip install -e ".[screenshots]"', file=sys.stderr)
        return 2

    from rewards_sandbox.demo import Credentials, airflow_env, demo_params, migrate, run_dag
    from rewards_sandbox.testing import running_sandbox

    # SIGTERM (e.g. from make or CI) unwinds through the finally blocks below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rewards-screenshots-"))
    home = work / "airflow-home"
    home.mkdir()
    port = free_port()
    server: ApiServer | None = None
    failed = False

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    try:
        with running_sandbox(revoke_seconds=1.5) as sandbox:
            env = airflow_env(home, DAGS_FOLDER, sandbox.base_url, Credentials.demo(), extra=api_server_settings(port))
            step(f"AIRFLOW_HOME={home}; airflow db migrate")
            migrate(env)
            server = ApiServer(env, port, work / "api-server.log")
            server.start()  # starts up while the demo run goes on
            step(f"airflow api-server on {server.base_url}; airflow dags test {DAG_ID} against {sandbox.base_url}")
            result = run_dag(DAG_ID, env, demo_params(), timeout=DAG_RUN_TIMEOUT)  # targets only via -c
            if not result.succeeded or not result.run_id:
                (work / "dag-run.log").write_text(result.output)
                raise ScreenshotError(f"the demo run of {DAG_ID} failed; its output: {work / 'dag-run.log'}")
            step(f"demo run {result.run_id} succeeded in {result.seconds:.1f}s")
        wait_until("the api-server to answer /api/v2/monitor/health", server.healthy, HEALTH_TIMEOUT)
        IMG_DIR.mkdir(parents=True, exist_ok=True)
        with browser_page() as page:
            try:
                for form in FORMS:
                    connection_form(page, server.base_url, form)
                    save(page, IMG_DIR / form.png)
                    step(f"{form.hook_name}: {', '.join(form.labels.values())} shown -> docs/img/{form.png}")
                graph_view(page, server.base_url, result.run_id)
                save(page, IMG_DIR / GRAPH_PNG)
                step(f"graph of {result.run_id}, every task success -> docs/img/{GRAPH_PNG}")
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(work / "failure.png"))
                raise
    except Exception as exc:
        failed = True
        if server is not None:
            print(f"----- api-server log (tail) -----\n{server.log_tail()}", file=sys.stderr)
        print(f"\nFAILED: {exc}", file=sys.stderr)
    finally:  # also on Ctrl-C and SIGTERM
        if server is not None:
            server.stop()
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"Kept for inspection (logs, and failure.png if the browser got that far): {work}", file=sys.stderr)
        return 1
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
