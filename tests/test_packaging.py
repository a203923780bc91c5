"""The built wheel holds the provider and nothing else, and installs alone into a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Both ends of the declared range: the newest 3.3.x and the floor, each with its committed constraints.
AIRFLOW_ENDS = {"3.3.2": "constraints-3.3.txt", "3.2.0": "constraints-3.2.txt"}
#: Imports every example DAG with warnings as errors; its last line is ``RESULT {"errors": ..., "dags": n}``.
IMPORT_DAGS = """
import json, sys, warnings
warnings.simplefilter("error")
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("RESULT " + json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": len(bag.dags)}))
"""
PROVIDER_ENTRY_POINT = "provider_info = airflow_provider_rewards.get_provider_info:get_provider_info"


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
    )
    (wheel,) = out.glob("airflow_provider_rewards-*.whl")
    return wheel


def test_wheel_holds_only_the_provider_its_license_and_metadata(wheel_path: Path) -> None:
    names = zipfile.ZipFile(wheel_path).namelist()
    dist_info = [n for n in names if ".dist-info/" in n]
    package = [n for n in names if n not in dist_info]
    assert package, "the wheel holds no provider module"
    strays = [n for n in package if not n.startswith("airflow_provider_rewards/")]
    assert strays == []
    assert all(n.endswith(".py") or n == "airflow_provider_rewards/py.typed" for n in package)
    assert "airflow_provider_rewards/py.typed" in package
    assert "airflow_provider_rewards/get_provider_info.py" in package
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in dist_info)
    for forbidden in ("sandbox", "rewards_sandbox", "demo", "tests/", "dags/", "bench/", "docs/"):
        assert not [n for n in names if forbidden in n], forbidden


def test_wheel_declares_the_provider_entry_point_and_no_console_script(wheel_path: Path) -> None:
    with zipfile.ZipFile(wheel_path) as whl:
        entry_points = next(whl.read(n).decode() for n in whl.namelist() if n.endswith("entry_points.txt"))
        metadata = next(whl.read(n).decode() for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    assert "[apache_airflow_provider]" in entry_points
    assert PROVIDER_ENTRY_POINT in entry_points
    assert "console_scripts" not in entry_points
    assert "Requires-Dist: apache-airflow<4,>=3.2" in metadata
    assert "Requires-Dist: httpx" in metadata
    assert "License-File: LICENSE" in metadata


@pytest.mark.slow
@pytest.mark.parametrize("airflow_version", AIRFLOW_ENDS)
def test_wheel_installed_alone_in_a_fresh_venv_is_a_provider_without_the_sandbox(
    wheel_path: Path, tmp_path: Path, airflow_version: str
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    python = str(bin_dir / "python")
    constraints = REPO / "constraints" / AIRFLOW_ENDS[airflow_version]
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(constraints),
            f"apache-airflow=={airflow_version}",
            str(wheel_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    env.pop("PYTHONPATH", None)

    subprocess.run([python, "-c", "import airflow_provider_rewards.operators"], check=True, cwd=tmp_path, env=env)
    listed = subprocess.run(
        [str(bin_dir / "airflow"), "providers", "list"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "airflow-provider-rewards" in listed.stdout

    dags = subprocess.run(
        [python, "-c", IMPORT_DAGS, str(REPO / "dags")], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert dags.returncode == 0, dags.stderr[-2000:]
    result = json.loads(dags.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert result == {"errors": {}, "dags": len(list((REPO / "dags").glob("*.py")))}  # warnings are errors here

    assert not (bin_dir / "rewards-sandbox").exists()
    no_sandbox = subprocess.run([python, "-c", "import rewards_sandbox"], capture_output=True, cwd=tmp_path, env=env)
    assert no_sandbox.returncode != 0
