"""The validation rules every hook and operator calls."""

from __future__ import annotations

import pytest

from airflow_provider_rewards.exceptions import RewardsError, RewardsInputError
from airflow_provider_rewards.utils.validation import ValidatedIds, require_id, require_id_list


@pytest.mark.parametrize(
    "value",
    ["a\x85b", "a\u2028b", "a\u2029b", "abc\u202e", "a\u200bb", "a\ufeffb", "a\x00b", "ü\x9fb"],
    ids=["NEL", "line-sep", "para-sep", "bidi-override", "zero-width-space", "bom", "nul", "c1-control"],
)
def test_ids_with_control_format_or_separator_characters_are_refused(value):
    with pytest.raises(RewardsInputError, match="reward_id contains control, format or separator characters"):
        require_id(value, "reward_id")


@pytest.mark.parametrize("value", ["ext ü-1", "id-全角", "naïve café", "a\u00a0b"])
def test_printable_unicode_ids_are_kept_as_given(value):
    assert require_id(value, "external_id") is value


def test_input_errors_are_rewards_errors_and_still_fail_without_retry():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(RewardsError) as info:
        require_id("", "merchant_id")
    assert isinstance(info.value, RewardsInputError)
    assert isinstance(info.value, AirflowFailException)
    assert isinstance(info.value, ValueError)


def test_validated_ids_are_not_checked_again():
    checked = require_id_list(["b", "a", "b"], "external_ids", uuid=False)
    assert checked == ["b", "a"]
    assert isinstance(checked, ValidatedIds)
    assert require_id_list(checked, "external_ids", uuid=False) is checked
