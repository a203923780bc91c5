"""Every example DAG parses, and no param of any of them carries a target of its own."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from rewards_sandbox.demo import FLAGSHIP_DAG_ID

from airflow_provider_rewards.operators.report import RewardsTeardownReportOperator
from tests.dags.conftest import DAGS_FOLDER


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_no_import_errors(dagbag):
    assert not dagbag.import_errors


def test_flagship_and_one_example_per_operator_family(dagbag):
    assert FLAGSHIP_DAG_ID in dagbag.dag_ids
    assert len(dagbag.dag_ids) >= 3


def test_examples_run_on_demand_without_catchup(dagbag):
    for dag in dagbag.dags.values():
        assert dag.catchup is False, dag.dag_id
        assert "rewards" in dag.tags, dag.dag_id


def test_no_param_defaults_to_a_target_or_a_filter(dagbag):
    """A destructive DAG never carries demo ids, merchants, configurations or players: lists are empty,
    ids and filters None, flags False."""
    for dag in dagbag.dags.values():
        for name, default in dag.params.dump().items():
            assert default in ([], None, False), (dag.dag_id, name, default)


def test_flagship_verifies_with_the_provider_operator(dagbag):
    report = dagbag.dags[FLAGSHIP_DAG_ID].task_dict["teardown_report"]
    assert isinstance(report, RewardsTeardownReportOperator)
    assert report.trigger_rule == "all_done"
    assert report.external_id_cancel_task_id == "cancel_rewards_by_external_id"
