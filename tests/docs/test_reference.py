"""Every operator argument is documented in a docstring and shown in the built reference; the docs build strict."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_rewards.get_provider_info import get_provider_info
from airflow_provider_rewards.operators._base import RewardsBaseOperator
from tests.docs.reference_check import (
    arguments,
    leaves,
    missing_from_reference,
    registered_operator_classes,
    undocumented,
    unknown,
)

OPERATORS = registered_operator_classes()
PAGE_OF_KIND = {kind: f"reference/{kind}/index.html" for kind in ("hooks", "operators", "sensors", "triggers")}


def page(site, kind: str) -> str:
    return (site / PAGE_OF_KIND[kind]).read_text()


def test_the_registered_operators_are_found():
    names = {cls.__name__ for cls in OPERATORS}
    assert {"ThanxRevokeIssuanceJobOperator", "HPGamesBulkCancelRewardsOperator", "ThanxIssuanceJobSensor"} <= names
    assert "HPGamesBaseOperator" in names  # bases too: their arguments are documented on them or on every heir


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_argument_has_a_param_in_a_docstring(cls):
    assert undocumented(cls, OPERATORS) == []


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_documented_name_is_a_real_argument(cls):
    assert unknown(cls) == []


@pytest.mark.parametrize("cls", leaves(OPERATORS), ids=lambda cls: cls.__name__)
def test_every_argument_is_in_the_built_reference(built_site, cls):
    """Every operator users instantiate shows all its arguments, inherited ones too, in its own entry."""
    kind = "sensors" if ".sensors." in cls.__module__ else "operators"
    assert missing_from_reference(page(built_site, kind), cls) == []


@pytest.mark.parametrize("kind", PAGE_OF_KIND)
def test_the_reference_holds_every_registered_module(built_site, kind):
    modules = {module for entry in get_provider_info()[kind] for module in entry["python-modules"]}
    assert modules
    assert [module for module in sorted(modules) if f'id="{module}"' not in page(built_site, kind)] == []


def test_the_connection_fields_page_lists_every_extra_key(built_site):
    text = (built_site / "reference/connections/index.html").read_text()
    for conn in get_provider_info()["connection-types"]:
        assert f"<code>{conn['connection-type']}</code>" in text
        assert [key for key in conn["conn-fields"] if f"<code>{key}</code>" not in text] == []


# --- the test of the test: an operator with an undocumented argument is caught ----------------------------


class DummyBase(RewardsBaseOperator):
    """A base.

    :param shared: documented where it is defined.
    """

    def __init__(self, *, shared: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shared = shared


class DummyOperator(DummyBase):
    """A dummy operator.

    :param mode: documented.
    :param renamed: no longer an argument.
    """

    def __init__(self, *, mode: str = "a", forgotten: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode, self.forgotten = mode, forgotten


def test_the_arguments_are_the_providers_own_through_the_mro():
    assert [(name, owner.__name__) for name, owner in arguments(DummyOperator)] == [
        ("mode", "DummyOperator"),
        ("forgotten", "DummyOperator"),
        ("shared", "DummyBase"),
    ]  # task_id, retries, ... are BaseOperator's


def test_an_undocumented_argument_fails_the_check():
    assert undocumented(DummyOperator) == [
        "DummyOperator: argument 'forgotten' (of DummyOperator.__init__) has no ':param forgotten:' in the "
        "docstring of DummyOperator"
    ]


def test_a_base_may_leave_an_argument_to_its_heirs_only_if_every_heir_documents_it():
    class Base(RewardsBaseOperator):
        """A base that documents nothing."""

        def __init__(self, *, size: int = 1, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.size = size

    class Documents(Base):
        """:param size: documented here."""

    class Forgets(Base):
        """Says nothing of size."""

    class Intermediate(Base):
        """A base between: documents nothing either."""

    class DocumentsToo(Intermediate):
        """:param size: documented here too."""

    assert undocumented(Base, [Base, Documents, Intermediate, DocumentsToo]) == []
    assert undocumented(Base, [Base, Documents, Forgets]) == [
        "Base: argument 'size' (of Base.__init__) has no ':param size:' in the docstring of Base"
    ]
    assert undocumented(Forgets, [Base, Documents, Forgets]) != []


def test_a_documented_name_that_is_no_argument_fails_the_check():
    assert unknown(DummyOperator) == ["DummyOperator: ':param renamed:' documents no argument"]


def test_an_argument_missing_from_the_built_reference_fails_the_check(built_site):
    from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator as Operator

    html = page(built_site, "operators")
    row = '<tr class="doc-section-item">\n            <td>\n                <code>batch_size</code>'
    assert row in html
    assert missing_from_reference(html.replace(row, "<tr><td>"), Operator) == [
        "HPGamesBulkCancelRewardsOperator: argument 'batch_size' is not in its Parameters table in the built reference"
    ]
    assert missing_from_reference("<html></html>", Operator) == [
        "HPGamesBulkCancelRewardsOperator is not in the built reference"
    ]
