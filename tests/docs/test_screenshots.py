"""The pure helpers of ``docs/screenshots.py`` (``make screenshots`` itself needs chromium and is not run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from airflow_provider_rewards.get_provider_info import get_provider_info

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "screenshots.py"


@pytest.fixture(scope="module")
def shots():
    spec = importlib.util.spec_from_file_location("docs_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_forms_checked_are_the_ones_the_provider_declares(shots):
    declared = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}

    assert {form.conn_type for form in shots.FORMS} == set(declared)
    for form in shots.FORMS:
        assert form.hook_name == declared[form.conn_type]["hook-name"]
        assert dict(form.labels) == declared[form.conn_type]["ui-field-behaviour"]["relabeling"]


def test_the_labels_named_in_the_issue_are_checked(shots):
    labels = {form.conn_type: form.labels for form in shots.FORMS}

    assert (labels["thanx"]["login"], labels["thanx"]["password"]) == ("Client ID", "Access Token")
    assert (labels["hpgames"]["login"], labels["hpgames"]["password"]) == ("Merchant ID", "Secret key")
    assert [form.png for form in shots.FORMS] == ["connection-thanx.png", "connection-hpgames.png"]


def test_missing_chromium_is_explained_with_the_install_command(shots, tmp_path):
    message = shots.missing_chromium_message(tmp_path / "chromium")

    assert str(tmp_path / "chromium") in message
    assert "apt-get update && apt-get install -y chromium" in message
    assert shots.missing_chromium_message(Path(sys.executable)) is None


def test_run_url_keeps_the_run_id_as_the_ui_writes_it(shots):
    url = shots.run_url("http://127.0.0.1:8080", "rewards_campaign_teardown", "manual__2026-01-02T03:04:05+00:00")

    assert url == "http://127.0.0.1:8080/dags/rewards_campaign_teardown/runs/manual__2026-01-02T03:04:05+00:00"
    assert shots.run_url("http://h", "d", "a b/c").endswith("/dags/d/runs/a%20b%2Fc")


def test_api_server_settings_are_loopback_and_need_no_login(shots):
    settings = shots.api_server_settings(8123)

    assert settings["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert settings["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8123"
    assert settings["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert len(settings["AIRFLOW__API_AUTH__JWT_SECRET"]) == 64
    assert settings["AIRFLOW__API_AUTH__JWT_SECRET"] != shots.api_server_settings(8123)["AIRFLOW__API_AUTH__JWT_SECRET"]
