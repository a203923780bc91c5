"""The provider as Airflow sees it: metadata, discovery, connection forms, clean imports."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import airflow
import jsonschema
import pytest

import airflow_provider_rewards
from airflow_provider_rewards.get_provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(airflow_provider_rewards.__path__, "airflow_provider_rewards.")
)


def run_airflow(*args: str, home: Path) -> str:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=180, check=True
    )
    return done.stdout


def test_provider_info_matches_airflows_schemas():
    info = get_provider_info()
    jsonschema.validate(info, json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text()))
    yaml_schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    item_schema = yaml_schema["properties"]["connection-types"]["items"]
    for connection_type in info["connection-types"]:
        jsonschema.validate(connection_type, item_schema)
    assert info["versions"] == [airflow_provider_rewards.__version__]


def test_airflow_cli_lists_the_provider_and_both_hooks(tmp_path):
    assert "airflow-provider-rewards" in run_airflow("providers", "list", home=tmp_path)
    hooks = {
        line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")]
        for line in run_airflow("providers", "hooks", home=tmp_path).splitlines()
        if "|" in line
    }
    assert hooks["thanx"][1:5] == [
        "airflow_provider_rewards.hooks.thanx.ThanxHook",
        "thanx_conn_id",
        "airflow-provider-rewards",
        "Thanx Partner API",
    ]
    assert hooks["hpgames"][1:5] == [
        "airflow_provider_rewards.hooks.hpgames.HPGamesHook",
        "hpgames_conn_id",
        "airflow-provider-rewards",
        "HPGames Rewards API",
    ]


def test_connection_forms_are_registered_from_metadata_without_warnings():
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager = ProvidersManager()
        behaviours = manager.field_behaviours
        widgets = manager.connection_form_widgets
    assert behaviours["thanx"]["relabeling"] == {
        "host": "API base URL",
        "login": "Client ID",
        "password": "Access Token",
    }
    assert behaviours["hpgames"]["relabeling"] == {
        "host": "API base URL",
        "login": "Merchant ID",
        "password": "Secret key",
    }
    assert set(behaviours["thanx"]["hidden_fields"]) == {"schema", "port"}
    assert "extra__thanx__merchant_id" in behaviours["thanx"]["placeholders"]
    assert widgets["extra__thanx__merchant_id"].field_name == "merchant_id"
    assert widgets["extra__hpgames__max_retries"].field["schema"]["type"] == ["integer", "null"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_deprecation_warnings(module):
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_operator_and_sensor_has_a_colour_of_its_own():
    from tests.docs.reference_check import leaves, registered_operator_classes

    colours = {cls.__name__: cls.ui_color.lower() for cls in leaves(registered_operator_classes())}
    assert not {name for name, colour in colours.items() if colour in ("#fff", "#ffffff")}, colours
    assert len(set(colours.values())) == len(colours), colours
