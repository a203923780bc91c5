"""Template handling: a value is checked once it is concrete, and UNRENDERED until then."""

from __future__ import annotations

from airflow_provider_rewards.utils.templating import UNRENDERED, check_when_ready


def test_a_template_is_unrendered_before_rendering_and_checked_after():
    assert check_when_ready("{{ params.id }}", str.upper, rendered=False) is UNRENDERED
    assert check_when_ready("{{ params.id }}", str.upper, rendered=True) == "{{ PARAMS.ID }}"
    assert check_when_ready("plain", str.upper, rendered=False) == "PLAIN"
    assert repr(UNRENDERED) == "UNRENDERED"
