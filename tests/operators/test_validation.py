"""Bad input fails before any request, naming the field: literal values at DAG parse time, templates after rendering."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.utils.templating import is_unrendered
from airflow_provider_rewards.utils.validation import parse_bool
from tests.operators.conftest import TaskInstanceStub

UUID = "6d181739-a4c4-4932-a3de-0a980bfee707"
THANX = ThanxRevokeIssuanceJobOperator
CANCEL = HPGamesCancelRewardOperator
BULK = HPGamesBulkCancelRewardsOperator
BY_QUERY = HPGamesCancelRewardsByQueryOperator
DEFAULTS = {THANX: {"issuance_job_id": "job_1"}, CANCEL: {}, BULK: {}, BY_QUERY: {"player_ids": ["p1"]}}


def build(operator: type, kwargs: dict):
    """The operator with its required arguments filled in, ``kwargs`` overriding them."""
    return operator(task_id="task", **{**DEFAULTS[operator], **kwargs})


@pytest.mark.parametrize(
    ("operator", "kwargs", "message"),
    [
        (THANX, {"issuance_job_id": ""}, "issuance_job_id must not be empty"),
        (THANX, {"issuance_job_id": ".."}, "issuance_job_id cannot be '..'"),
        (THANX, {"issuance_job_id": 7}, "issuance_job_id must be a string, got int"),
        (THANX, {"merchant_id": " m_1"}, "merchant_id has leading or trailing whitespace"),
        (THANX, {"thanx_conn_id": ""}, "thanx_conn_id must not be empty"),
        (THANX, {"if_already_revoked": "ignore"}, "if_already_revoked must be one of 'succeed', 'fail', 'skip'"),
        (THANX, {"wait_for_issuance": "false"}, "wait_for_issuance must be True or False, got str"),
        (THANX, {"wait_for_completion": 1}, "wait_for_completion must be True or False, got int"),
        (THANX, {"poll_interval": 0}, "poll_interval must be at least 0.1 seconds"),
        (THANX, {"poll_interval": "60"}, "poll_interval must be a number of seconds"),
        (THANX, {"wait_timeout": float("inf")}, "wait_timeout must be a number of seconds"),
        (THANX, {"wait_timeout": -5}, "wait_timeout must be at least 1 seconds"),
        (THANX, {"deferrable": "yes"}, "deferrable must be True or False"),
        (THANX, {"dry_run": "yes"}, "dry_run must be True or False .*got str 'yes'"),
        (THANX, {"dry_run": 1}, "dry_run must be True or False .*got int"),
        (CANCEL, {}, "exactly one of reward_id or external_id; neither was given"),
        (CANCEL, {"reward_id": UUID, "external_id": "e"}, "reward_id and external_id were both given"),
        (CANCEL, {"reward_id": "not-a-uuid"}, "reward_id must be a UUID"),
        (CANCEL, {"external_id": "a\nb"}, "external_id contains control, format or separator characters"),
        (CANCEL, {"external_id": "e", "hpgames_conn_id": None}, "hpgames_conn_id must be a string"),
        (
            BULK,
            {},
            "exactly one of reward_ids or external_ids or reward_ids_path or external_ids_path; neither was given",
        ),
        (BULK, {"reward_ids": [UUID], "external_ids": ["e"]}, "reward_ids and external_ids were both given"),
        (BULK, {"reward_ids": [UUID, "x"]}, r"reward_ids\[1\] must be a UUID"),
        (BULK, {"reward_ids": "a,b"}, "reward_ids must be a list or a JSON array string"),
        (BULK, {"reward_ids": '{"a": 1}'}, "reward_ids must be a JSON array, got JSON dict"),
        (BULK, {"reward_ids": {UUID: 1}}, "reward_ids must be a list of ids, got dict"),
        (BULK, {"external_ids": [" e"]}, r"external_ids\[0\] has leading or trailing whitespace"),
        (BULK, {"reward_ids": [UUID + "\n"]}, r"reward_ids\[0\] must be a UUID"),
        (BULK, {"external_ids": ["e\ud800"]}, r"external_ids\[0\] is not valid Unicode text"),
        (BULK, {"external_ids": "[" * 100_000}, "external_ids is a JSON array nested too deeply"),
        (BULK, {"reward_ids": [], "if_empty": "fail"}, "reward_ids is empty; pass at least one id"),
        (BULK, {"reward_ids": [UUID], "batch_size": 0}, "batch_size must be between 1 and 10000, got 0"),
        (BULK, {"reward_ids": [UUID], "batch_size": 10_001}, "batch_size must be between 1 and 10000"),
        (BULK, {"reward_ids": [UUID], "batch_size": True}, "batch_size must be a whole number"),
        (BULK, {"reward_ids": [UUID], "fail_on_rejected": "no"}, "fail_on_rejected must be True or False"),
        (BY_QUERY, {"player_ids": 5}, "player_ids must be a list of ids, got int"),
        (BY_QUERY, {"player_ids": ["p", ""]}, r"player_ids\[1\] must not be empty"),
        (BY_QUERY, {"player_ids": [], "if_empty": "fail"}, "player_ids is empty"),
        (BY_QUERY, {"if_empty": "skipped"}, "if_empty must be one of 'succeed', 'skip', 'fail'"),
        (BY_QUERY, {"reward_configuration_id": "cfg-1"}, "reward_configuration_id must be a UUID"),
        (
            BY_QUERY,
            {"reward_configuration_id": UUID, "external_reward_configuration_id": "x"},
            "at most one of reward_configuration_id or external_reward_configuration_id",
        ),
    ],
)
def test_bad_literal_fails_when_the_dag_is_parsed(requests_mock, operator, kwargs, message):
    with pytest.raises(RewardsInputError, match=message):
        build(operator, kwargs)
    assert not requests_mock.called


@pytest.mark.parametrize(
    ("operator", "kwargs", "value", "message"),
    [
        (THANX, {"issuance_job_id": "{{ params.v }}"}, "", "issuance_job_id must not be empty"),
        (THANX, {"issuance_job_id": "{{ params.v }}"}, "..", "issuance_job_id cannot be '..'"),
        (THANX, {"merchant_id": "{{ params.v }}"}, "m 1 ", "merchant_id has leading or trailing whitespace"),
        (THANX, {"dry_run": "{{ params.v }}"}, "yes", "dry_run must be True or False .*got str 'yes'"),
        (THANX, {"dry_run": "{{ params.v }}"}, "TRUE", "dry_run must be True or False .*got str 'TRUE'"),
        (THANX, {"issuance_job_id": "UPSTREAM"}, None, "issuance_job_id must be a string, got NoneType"),
        (CANCEL, {"reward_id": "{{ params.v }}"}, "abc", "reward_id must be a UUID"),
        (CANCEL, {"external_id": "{{ params.v }}"}, "", "external_id must not be empty"),
        (BULK, {"reward_ids": "{{ params.v | tojson }}"}, [UUID, "bad"], r"reward_ids\[1\] must be a UUID"),
        (BULK, {"reward_ids": "{{ params.v }}"}, [UUID], r"reward_ids must be a list or a JSON array .*\| tojson"),
        (BULK, {"external_ids": "{{ params.v | tojson }}", "if_empty": "fail"}, [], "external_ids is empty"),
        (BULK, {"reward_ids": "UPSTREAM"}, {"a": 1}, "reward_ids must be a list of ids, got dict"),
        (BULK, {"reward_ids": [UUID], "dry_run": "{{ params.v }}"}, "maybe", "dry_run must be True or False"),
        (BY_QUERY, {"player_ids": "UPSTREAM"}, None, "exactly one of player_ids or player_ids_path; neither was given"),
        (BY_QUERY, {"reward_configuration_id": "{{ params.v }}"}, None, "reward_configuration_id must be a UUID"),
        (BY_QUERY, {"player_ids": "{{ params.v | tojson }}"}, ["p", 3], r"player_ids\[1\] must be a string, got int"),
    ],
)
def test_bad_rendered_value_fails_before_any_request(
    thanx_conn, hpgames_conn, requests_mock, operator, kwargs, value, message
):
    ti = TaskInstanceStub({"upstream": value})
    with DAG("render_then_validate", schedule=None):
        upstream = CANCEL(task_id="upstream", external_id="e")
        kwargs = {name: upstream.output if given == "UPSTREAM" else given for name, given in kwargs.items()}
        task = build(operator, kwargs)  # templates pass the parse-time checks
    context = {"ti": ti, "params": {"v": value}}
    task.render_template_fields(context)
    with pytest.raises(RewardsInputError, match=message):
        task.execute(context)
    assert not requests_mock.called


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, True), (False, False), ("true", True), ("True", True), ("false", False), ("False", False)],
)
def test_parse_bool_accepts_booleans_and_their_rendered_text(given, expected):
    assert parse_bool(given, "dry_run") is expected


@pytest.mark.parametrize(
    ("value", "unrendered"),
    [
        ("{{ params.x }}", True),
        ("{% if x %}a{% endif %}", True),
        (["a", "{{ params.x }}"], True),
        ("plain-id", False),
        (["a", "b"], False),
        (None, False),
        (True, False),
    ],
)
def test_is_unrendered_tells_templates_from_values(value, unrendered):
    assert is_unrendered(value) is unrendered
