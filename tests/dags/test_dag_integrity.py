"""Every example DAG parses, and the flagship's defaults match the sandbox's demo seed."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from rewards_sandbox.demo import FLAGSHIP_DAG_ID, demo_params

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


def test_flagship_defaults_are_the_sandbox_demo_targets(dagbag):
    params = dagbag.dags[FLAGSHIP_DAG_ID].params.dump()
    assert params == demo_params()
