"""Refusals reconciled against the sandbox: correct whether HPGames answers 200 or 409 for a cancelled reward."""

from __future__ import annotations

import json
import os

import pytest
import rewards_sandbox as seed
from rewards_sandbox.testing import reward_statuses

from airflow_provider_rewards.exceptions import RewardsApiError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator, HPGamesCancelRewardOperator
from tests.operators.conftest import outcomes_by_id, read_results, sandbox_calls

MODES = ("ok", "refuse")


def bulk(**kwargs) -> HPGamesBulkCancelRewardsOperator:
    return HPGamesBulkCancelRewardsOperator(task_id="cancel", **kwargs)


def set_already_cancelled_codes(monkeypatch: pytest.MonkeyPatch, codes: str) -> None:
    """Give the sandbox's ``hpgames_default`` connection the extra ``already_cancelled_codes``."""
    conn = json.loads(os.environ["AIRFLOW_CONN_HPGAMES_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_HPGAMES_DEFAULT", json.dumps({**conn, "extra": {"already_cancelled_codes": codes}})
    )


def cancel_behind_the_operators_back(ids: list[str]) -> None:
    """Cancel ``ids`` directly (as a run whose answer was lost, or another tool, would have)."""
    with HPGamesHook() as hook:
        hook.bulk_cancel_rewards(reward_ids=ids)


@pytest.mark.parametrize("mode", MODES)
def test_already_cancelled_rewards_are_a_success_under_both_vendor_behaviours(
    hpgames_sandbox, task_context, id_file, mode
):
    server, ids = hpgames_sandbox
    pre_cancelled = [ids[3], ids[27]]  # one in batch 1, one in batch 2
    cancel_behind_the_operators_back(pre_cancelled)
    server.set_behaviours(already_cancelled=mode)
    server.clear_request_log()
    result = bulk(reward_ids_path=id_file(ids), batch_size=20).execute(task_context)
    outcomes = outcomes_by_id(result["results_path"])
    expected_already = set(pre_cancelled) if mode == "refuse" else set()  # a 200 says nothing more
    assert {item for item, outcome in outcomes.items() if outcome == "already_cancelled"} == expected_already
    assert {outcome for item, outcome in outcomes.items() if item not in expected_already} == {"cancelled"}
    statuses = reward_statuses(server.snapshot())
    assert {statuses[item] for item in ids} == {"CANCELLED"}
    # refuse: each batch is refused whole, read back once, and its rest sent again: 2 requests + 1 read, no split
    per_batch = 2 if mode == "refuse" else 1
    assert len(sandbox_calls(server, "bulkCancel")) == 2 * per_batch == result["requests"]
    assert len(sandbox_calls(server, "readAll")) == (2 if mode == "refuse" else 0) == result["read_backs"]


def test_a_resent_batch_whose_ids_are_all_cancelled_costs_one_read_and_no_probe(hpgames_sandbox, task_context, id_file):
    """The batch in flight when a worker died was applied: on retry HPGames refuses it whole (409 1010).
    First and last id are refused the same way, yet this is not a wrong request: they are simply cancelled."""
    server, ids = hpgames_sandbox
    cancel_behind_the_operators_back(ids[:20])
    server.set_behaviours(already_cancelled="refuse")
    server.clear_request_log()
    result = bulk(reward_ids_path=id_file(ids), batch_size=20).execute(task_context)
    outcomes = outcomes_by_id(result["results_path"])
    assert [outcomes[item] for item in ids] == ["already_cancelled"] * 20 + ["cancelled"] * 20
    assert [entry["batch_size"] for entry in sandbox_calls(server, "bulkCancel")] == [20, 20]
    assert len(sandbox_calls(server, "readAll")) == 1


def test_refused_and_already_cancelled_ids_in_one_batch(hpgames_sandbox, task_context, id_file):
    server, ids = hpgames_sandbox
    cancel_behind_the_operators_back([ids[0]])
    server.set_behaviours(already_cancelled="refuse")
    closed = seed.DEMO_HPGAMES_CLOSED_REWARD_ID  # CLOSED: 409, not cancellable
    source = id_file([ids[0], ids[1], closed, ids[2]])
    result = bulk(reward_ids_path=source, fail_on_rejected=False).execute(task_context)
    lines = {line["id"]: line for line in read_results(result["results_path"])}
    assert {item: line["outcome"] for item, line in lines.items()} == {
        ids[0]: "already_cancelled",
        ids[1]: "cancelled",
        closed: "refused",
        ids[2]: "cancelled",
    }
    assert lines[closed]["status_code"] == 409
    assert "cannot be cancelled" in lines[closed]["message"]
    assert (result["refused"], result["read_backs"]) == (1, 1)


@pytest.mark.parametrize("read_all_external_id", [False, True])
def test_external_ids_are_reconciled_only_when_read_all_shows_them(
    hpgames_sandbox, task_context, id_file, read_all_external_id
):
    server, ids = hpgames_sandbox
    server.state.read_all_external_id = read_all_external_id
    external = [f"gen-{item}" for item in ids[:4]]
    cancel_behind_the_operators_back([ids[1]])
    server.set_behaviours(already_cancelled="refuse")
    result = bulk(external_ids_path=id_file(external), fail_on_rejected=False).execute(task_context)
    lines = {line["id"]: line for line in read_results(result["results_path"])}
    if read_all_external_id:
        assert lines[external[1]]["outcome"] == "already_cancelled"
    else:
        assert lines[external[1]]["outcome"] == "refused"
        assert "carry no externalId" in lines[external[1]]["message"]
    assert {lines[item]["outcome"] for item in (external[0], external[2], external[3])} == {"cancelled"}


def test_already_cancelled_codes_settle_external_ids_readall_cannot_show(
    hpgames_sandbox, task_context, id_file, monkeypatch
):
    """The documented readAll (no externalId) and a vendor refusing cancelled rewards with errorCode 1010: with
    the code configured, the refused external id is already_cancelled, the rest cancelled, nothing refused."""
    server, ids = hpgames_sandbox
    set_already_cancelled_codes(monkeypatch, "1010")
    external = [f"gen-{item}" for item in ids[:4]]
    cancel_behind_the_operators_back([ids[1]])
    server.set_behaviours(already_cancelled="refuse")
    server.clear_request_log()
    result = bulk(external_ids_path=id_file(external)).execute(task_context)
    lines = {line["id"]: line for line in read_results(result["results_path"])}
    assert {item: line["outcome"] for item, line in lines.items()} == {
        external[0]: "cancelled",
        external[1]: "already_cancelled",
        external[2]: "cancelled",
        external[3]: "cancelled",
    }
    assert (lines[external[1]]["status_code"], lines[external[1]]["vendor_code"]) == (409, "1010")
    assert (result["refused"], result["already_cancelled"], result["read_backs"]) == (0, 1, 1)
    # the batch, its first id alone, then the other three halved: [ext1] (refused, settled by code), [ext2, ext3]
    assert [entry["batch_size"] for entry in sandbox_calls(server, "bulkCancel")] == [4, 1, 1, 2]


@pytest.mark.parametrize("codes", ["", "1010"])
def test_the_single_cancel_of_an_external_id_settles_by_code_without_a_read(
    hpgames_sandbox, task_context, monkeypatch, codes
):
    server, ids = hpgames_sandbox
    set_already_cancelled_codes(monkeypatch, codes)
    cancel_behind_the_operators_back([ids[2]])
    server.set_behaviours(already_cancelled="refuse")
    server.clear_request_log()
    task = HPGamesCancelRewardOperator(task_id="cancel_one", external_id=f"gen-{ids[2]}")
    if not codes:  # readAll shows no externalId: the refusal stands
        with pytest.raises(RewardsApiError, match="1010"):
            task.execute(task_context)
        assert len(sandbox_calls(server, "readAll")) == 1
        return
    result = task.execute(task_context)
    assert (result["already_cancelled"], result["cancelled"], result["requests"]) == (1, 0, 1)
    assert sandbox_calls(server, "readAll") == []


def test_reconcile_refusals_false_keeps_the_refusal(hpgames_sandbox, task_context, id_file):
    server, ids = hpgames_sandbox
    cancel_behind_the_operators_back([ids[5]])
    server.set_behaviours(already_cancelled="refuse")
    server.clear_request_log()
    result = bulk(reward_ids_path=id_file(ids[:10]), reconcile_refusals=False, fail_on_rejected=False).execute(
        task_context
    )
    assert outcomes_by_id(result["results_path"])[ids[5]] == "refused"
    assert (result["refused"], result["cancelled"], result["read_backs"]) == (1, 9, 0)
    assert sandbox_calls(server, "readAll") == []


def test_a_read_back_item_that_is_not_cancelled_never_counts(hpgames_conn, requests_mock, task_context, id_file):
    """A vendor that ignores readAll's status filter cannot turn a refusal into already_cancelled."""
    from tests.operators.test_hpgames import READ_ALL, answer_bulk, containing, uuids

    ids = uuids(3)
    answer_bulk(requests_mock, containing(ids[1], 409, {"errorCode": 1010, "errorText": "already cancelled"}))
    requests_mock.post(READ_ALL, json=[{"id": ids[1], "status": "IN_PROGRESS"}, {"id": ids[0], "status": "CANCELLED"}])
    result = bulk(reward_ids_path=id_file(ids), fail_on_rejected=False).execute(task_context)
    assert outcomes_by_id(result["results_path"]) == {
        ids[0]: "already_cancelled",
        ids[1]: "refused",
        ids[2]: "cancelled",
    }
