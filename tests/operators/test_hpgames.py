from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_rewards.exceptions import RewardsError
from airflow_provider_rewards.hooks.auth import hpgames_signature
from airflow_provider_rewards.operators.hpgames import (
    HPGamesBulkCancelRewardsOperator,
    HPGamesCancelRewardOperator,
    HPGamesCancelRewardsByQueryOperator,
)
from tests.conftest import FROZEN_MS, HPGAMES_MERCHANT, HPGAMES_SECRET, REWARDS_URL
from tests.operators.conftest import mutating, payload

BULK = f"{REWARDS_URL}/bulkCancel"
BY_QUERY = f"{REWARDS_URL}/bulkCancelByQuery"
READ_ALL = f"{REWARDS_URL}/readAll"
CONFIG = "f72cb8ef-1111-4222-8333-944455556666"
NOT_FOUND = {"errorCode": 1004, "errorText": "Reward not found"}

Refusal = Callable[[list[str]], "tuple[int, dict] | None"]


def uuids(count: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{n:012d}" for n in range(count)]


def bulk(**kwargs) -> HPGamesBulkCancelRewardsOperator:
    return HPGamesBulkCancelRewardsOperator(task_id="cancel", **kwargs)


def by_query(**kwargs) -> HPGamesCancelRewardsByQueryOperator:
    return HPGamesCancelRewardsByQueryOperator(task_id="cancel_by_query", **kwargs)


def answer_bulk(requests_mock, refuse: Refusal = lambda ids: None) -> list[list[str]]:
    """Mock bulkCancel: ``refuse(ids)`` gives ``(status, error body)`` to refuse a request, else 200.
    readAll answers ``[]`` (nothing is cancelled yet) unless the test mocks it too.

    Returns the list that collects the id lists of accepted requests, in order.
    """
    accepted: list[list[str]] = []
    requests_mock.post(READ_ALL, json=[])

    def respond(request, context) -> str:
        body = payload(request)
        ids = body.get("ids", body.get("externalIds"))
        verdict = refuse(ids)
        if verdict is None:
            accepted.append(ids)
            return ""
        context.status_code = verdict[0]
        return json.dumps(verdict[1])

    requests_mock.post(BULK, text=respond)
    return accepted


def bulk_calls(requests_mock) -> int:
    """How many bulkCancel requests were sent (read-backs aside)."""
    return sum(1 for request in requests_mock.request_history if request.url == BULK)


def containing(item: str, status: int, body: dict | None = None) -> Refusal:
    """Refuse, with ``status``, every request whose ids include ``item``."""
    return lambda ids: (status, body or NOT_FOUND) if item in ids else None


def summary_of(**counts) -> dict:
    """A bulk summary with zero defaults."""
    base = {
        "requested": 0,
        "duplicates_dropped": 0,
        "cancelled": 0,
        "already_cancelled": 0,
        "rejected": 0,
        "rejected_ids": [],
        "rejected_truncated": False,
        "rejections": [],
        "batches": 0,
        "requests": 0,
        "read_backs": 0,
        "dry_run": False,
    }
    return {**base, **counts}


# --- single cancel ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "sent"),
    [
        ("reward_id", "6D181739-A4C4-4932-A3DE-0A980BFEE707", "6d181739-a4c4-4932-a3de-0a980bfee707"),
        ("external_id", "ext ü-1", "ext ü-1"),
    ],
)
def test_cancel_reward_sends_the_exact_signed_body(
    hpgames_conn, frozen_clock, requests_mock, context, field, given, sent
):
    requests_mock.post(f"{REWARDS_URL}/cancel", text="")
    result = HPGamesCancelRewardOperator(task_id="cancel_one", **{field: given}).execute(context)
    digest = hpgames_signature(HPGAMES_SECRET, HPGAMES_MERCHANT, FROZEN_MS)
    key = "id" if field == "reward_id" else "externalId"
    expected = f'{{"merchantId":"{HPGAMES_MERCHANT}","timestamp":{FROZEN_MS},"hash":"{digest}","{key}":"{sent}"}}'
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.body == expected.encode()
    assert result == {
        "id_field": field,
        "id": sent,
        "cancelled": 1,
        "already_cancelled": 0,
        "requests": 1,
        "dry_run": False,
    }


def test_cancel_reward_refused_raises_the_api_error(hpgames_conn, requests_mock, context):
    requests_mock.post(f"{REWARDS_URL}/cancel", status_code=404, json=NOT_FOUND)
    requests_mock.post(READ_ALL, json=[{"id": "6d181739-a4c4-4932-a3de-0a980bfee707", "status": "CANCELLED"}])
    with pytest.raises(RewardsError, match=r"HTTP 404 \(1004: Reward not found\)"):
        HPGamesCancelRewardOperator(task_id="cancel_one", external_id="ext-1").execute(context)
    assert json.loads(requests_mock.last_request.body)["status"] == "CANCELLED"  # it was read back first


@pytest.mark.parametrize(
    ("status", "body"),
    [(409, {"errorCode": 1010, "errorText": "Reward already cancelled"}), (200, {"errorCode": 1010})],
)
def test_cancel_reward_refused_as_already_cancelled_reads_back_and_succeeds(
    hpgames_conn, requests_mock, context, status, body
):
    """The stricter vendor refuses a cancel of a cancelled reward: a read-back showing it CANCELLED is a success."""
    reward_id = "6d181739-a4c4-4932-a3de-0a980bfee707"
    requests_mock.post(f"{REWARDS_URL}/cancel", status_code=status, json=body)
    requests_mock.post(
        READ_ALL,
        json=[
            {"id": "0d181739-a4c4-4932-a3de-0a980bfee707", "status": "CANCELLED"},
            {"id": reward_id.upper(), "status": "CANCELLED"},
        ],
    )
    result = HPGamesCancelRewardOperator(task_id="cancel_one", reward_id=reward_id).execute(context)
    assert (result["cancelled"], result["already_cancelled"], result["requests"]) == (0, 1, 2)
    assert [request.path.rsplit("/", 1)[-1] for request in requests_mock.request_history] == ["cancel", "readall"]


def test_cancel_reward_refused_and_not_cancelled_on_read_back_still_fails(hpgames_conn, requests_mock, context):
    requests_mock.post(f"{REWARDS_URL}/cancel", status_code=409, json={"errorCode": 1010, "errorText": "Locked"})
    requests_mock.post(READ_ALL, json=[{"id": "6d181739-a4c4-4932-a3de-0a980bfee707", "status": "IN_PROGRESS"}])
    with pytest.raises(RewardsError, match="HTTP 409"):
        HPGamesCancelRewardOperator(task_id="cancel_one", reward_id="6d181739-a4c4-4932-a3de-0a980bfee707").execute(
            context
        )


# --- bulk cancel: batching --------------------------------------------------------------------------------------


def test_2501_ids_in_batches_of_1000_make_exactly_three_requests(hpgames_conn, requests_mock, context, logs):
    ids = uuids(2501)
    accepted = answer_bulk(requests_mock)
    result = bulk(reward_ids=ids, batch_size=1000).execute(context)
    assert requests_mock.call_count == 3
    assert accepted == [ids[:1000], ids[1000:2000], ids[2000:]]
    assert result == summary_of(requested=2501, cancelled=2501, batches=3, requests=3)
    output = logs()
    for line in (
        "batch 1/3 (33%): 1000 cancelled",
        "batch 2/3 (66%): 1000 cancelled",
        "batch 3/3 (100%): 501 cancelled",
    ):
        assert line in output


def test_duplicates_are_dropped_and_counted_and_uuids_lowercased(hpgames_conn, requests_mock, context):
    a, b = uuids(2)
    accepted = answer_bulk(requests_mock)
    result = bulk(reward_ids=json.dumps([a, b.upper(), a, b])).execute(context)
    assert accepted == [[a, b]]
    assert result == summary_of(requested=2, duplicates_dropped=2, cancelled=2, batches=1, requests=1)


def test_external_ids_are_sent_verbatim(hpgames_conn, requests_mock, context):
    accepted = answer_bulk(requests_mock)
    bulk(external_ids=("Ext 1", "ext-ü", "Ext 1")).execute(context)
    assert accepted == [["Ext 1", "ext-ü"]]


@pytest.mark.parametrize(
    ("make", "expected", "field"),
    [
        (lambda: bulk(reward_ids=[]), summary_of(), "reward_ids"),
        (
            lambda: by_query(player_ids="[]"),
            {
                "players": 0,
                "duplicates_dropped": 0,
                "players_done": 0,
                "batches": 0,
                "requests": 0,
                "dry_run": False,
                "rewards_to_cancel": None,
            },
            "player_ids",
        ),
    ],
)
def test_empty_list_is_a_logged_no_op(hpgames_conn, requests_mock, context, logs, make, expected, field):
    assert make().execute(context) == expected
    assert not requests_mock.called
    assert f"Nothing to do: {field} is empty" in logs()


@pytest.mark.parametrize(
    "make",
    [lambda: bulk(reward_ids=[], if_empty="skip"), lambda: by_query(player_ids="[]", if_empty="skip")],
)
def test_empty_list_can_skip_the_task(hpgames_conn, requests_mock, context, make):
    operator = make()  # a static empty list is fine when the DAG is parsed: it only skips when run
    with pytest.raises(AirflowSkipException, match="is empty: nothing to cancel"):
        operator.execute(context)
    assert not requests_mock.called


# --- bulk cancel: isolating refused ids -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 409])
@pytest.mark.parametrize("fail_on_rejected", [True, False])
def test_one_refused_id_among_1000_is_isolated(hpgames_conn, requests_mock, context, ti, status, fail_on_rejected):
    ids = uuids(1000)
    bad = ids[617]
    accepted = answer_bulk(requests_mock, containing(bad, status))
    operator = bulk(reward_ids=ids, batch_size=1000, fail_on_rejected=fail_on_rejected)
    if fail_on_rejected:
        with pytest.raises(AirflowFailException) as info:
            operator.execute(context)
        assert f"HPGames refused 1 of 1000 reward_ids: {bad} (HTTP {status} 1004)" in str(info.value)
        assert "The other 999 were cancelled" in str(info.value)
        result = ti.pushed["summary"]
    else:
        result = operator.execute(context)
        assert "summary" not in ti.pushed
    flat = [item for batch in accepted for item in batch]
    assert sorted(flat) == sorted(set(ids) - {bad})  # every other id cancelled, each exactly once
    assert bulk_calls(requests_mock) <= 2 + 2 * 10  # the batch, a probe of its first id, one halving path
    rejection = {"id": bad, "status_code": status, "vendor_code": "1004", "vendor_message": "Reward not found"}
    assert result == summary_of(
        requested=1000,
        cancelled=999,
        rejected=1,
        rejected_ids=[bad],
        rejections=[rejection],
        batches=1,
        requests=bulk_calls(requests_mock),
        read_backs=1,  # the refused batch, read back once: nothing in it was already cancelled
    )


def test_many_rejections_are_capped_in_summary_and_message(hpgames_conn, requests_mock, context, ti):
    ids = uuids(300)
    bad = set(ids[::2])
    answer_bulk(requests_mock, lambda batch: (409, NOT_FOUND) if bad & set(batch) else None)
    with pytest.raises(AirflowFailException, match=r"HPGames refused 150 of 300 reward_ids: .* and 130 more\."):
        bulk(reward_ids=ids, batch_size=100).execute(context)
    summary = ti.pushed["summary"]
    assert (summary["cancelled"], summary["rejected"], summary["rejected_truncated"]) == (150, 150, True)
    assert summary["rejected_ids"] == ids[::2][:100]
    assert len(summary["rejections"]) == 100


def test_413_splits_without_rejecting_anything(hpgames_conn, requests_mock, context, logs):
    ids = uuids(10)
    accepted = answer_bulk(requests_mock, lambda batch: (413, {}) if len(batch) > 3 else None)
    result = bulk(reward_ids=ids, batch_size=10).execute(context)
    assert [item for batch in accepted for item in batch] == ids
    assert max(len(batch) for batch in accepted) <= 3
    assert (result["cancelled"], result["rejected"]) == (10, 0)
    assert "were too large for one request (HTTP 413)" in logs()


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_stops_at_once_without_splitting(
    hpgames_conn, requests_mock, context, ti, assert_no_secrets, status
):
    refusal = {"errorCode": 1001, "errorText": f"Invalid signature for key {HPGAMES_SECRET}"}
    answer_bulk(requests_mock, lambda batch: (status, refusal))
    with pytest.raises(RewardsError, match=f"Stopped at batch 1/2 .*HTTP {status}") as info:
        bulk(reward_ids=uuids(15), batch_size=10).execute(context)
    assert requests_mock.call_count == 1
    assert ti.pushed["summary"]["not_attempted"] == 5
    assert ti.pushed["summary"]["unconfirmed"] == 10
    assert "Invalid signature for key ***" in ti.pushed["summary"]["error"]
    assert_no_secrets(info.value, ti.pushed["summary"])


@pytest.mark.parametrize("fail_on_rejected", [True, False])
def test_a_wrong_request_stops_after_probing_instead_of_splitting_every_batch(
    hpgames_conn, requests_mock, context, ti, fail_on_rejected
):
    # A wrong base path (or signature, or merchant) refuses every request the same way.
    answer_bulk(requests_mock, lambda batch: (404, {"errorCode": 1404, "errorText": "No route"}))
    with pytest.raises(RewardsError, match=r"Stopped at batch 1/4 .*HTTP 404 .*the request itself is wrong") as info:
        bulk(reward_ids=uuids(2000), batch_size=500, fail_on_rejected=fail_on_rejected).execute(context)
    assert bulk_calls(requests_mock) == 3  # the batch, then its first and its last id alone; not 3,996
    assert "0 rejected; 0 unconfirmed" in str(info.value)
    assert "2000 not attempted (500 more of batch 1 and batches 2-4)" in str(info.value)
    summary = ti.pushed["summary"]
    assert (summary["cancelled"], summary["rejected"], summary["not_attempted"]) == (0, 0, 2000)


def test_each_id_is_validated_once_per_run_not_again_per_batch(hpgames_conn, requests_mock, context, monkeypatch):
    from airflow_provider_rewards.utils import validation

    checked: list[object] = []
    check = validation.require_uuid
    monkeypatch.setattr(validation, "require_uuid", lambda value, field: checked.append(value) or check(value, field))
    answer_bulk(requests_mock)
    operator = bulk(reward_ids=uuids(10), batch_size=5)  # __init__ checks the literal list once
    checked.clear()
    assert operator.execute(context)["cancelled"] == 10
    assert len(checked) == 10  # in execute() only; the hook sends the already validated batches as they are
    assert requests_mock.call_count == 2


# --- bulk cancel: a failure that outlasts the transport's retries ------------------------------------------------


def test_persistent_503_on_batch_2_of_3_reports_exactly_and_pushes_the_summary(
    hpgames_conn, requests_mock, context, ti, sleeps
):
    ids = uuids(2501)
    accepted = answer_bulk(requests_mock, containing(ids[1000], 503, {"errorCode": 1503, "errorText": "down"}))
    with pytest.raises(RewardsError) as info:
        bulk(reward_ids=ids, batch_size=1000).execute(context)
    message = str(info.value)
    assert "Stopped at batch 2/3 (reward_ids 1001-2000 of 2501)" in message
    assert "HTTP 503" in message
    assert "1000 cancelled (batch 1)" in message
    assert "1000 unconfirmed" in message
    assert "501 not attempted (batch 3)" in message
    assert "XCom under key 'summary'" in message
    assert accepted == [ids[:1000]]
    assert bulk_calls(requests_mock) == 1 + 6  # batch 1, then batch 2 with the transport's 5 retries
    assert len(sleeps) == 5
    assert not any(ids[2000] in batch for batch in accepted)  # batch 3 never sent
    assert ti.pushed["summary"] == {
        **summary_of(requested=2501, cancelled=1000, batches=3, requests=2, read_backs=1),
        "error": ti.pushed["summary"]["error"],
        "failed_batch": 2,
        "failed_range": [1001, 2000],
        "unconfirmed": 1000,
        "not_attempted": 501,
    }
    assert "HTTP 503" in ti.pushed["summary"]["error"]


def test_failure_while_isolating_counts_what_was_done_in_that_batch(hpgames_conn, requests_mock, context, ti, sleeps):
    ids = uuids(12)

    def refuse(batch: list[str]) -> tuple[int, dict] | None:
        if ids[0] in batch:
            return 404, NOT_FOUND
        return (500, {}) if ids[2] in batch and len(batch) <= 6 else None

    accepted = answer_bulk(requests_mock, refuse)
    with pytest.raises(RewardsError) as info:
        bulk(reward_ids=ids, batch_size=8).execute(context)
    # [0..7] refused -> probes: [0] rejected, [7] ok -> the rest [1..6] fails with 500; batch 2 is never sent.
    assert accepted == [[ids[7]]]
    assert (
        f"1 cancelled (no batch finished, plus 1 of batch 1); 1 rejected ({ids[0]} (HTTP 404 1004)); "
        "6 unconfirmed (sent in the failed request, which may or may not have been applied); "
        "4 not attempted (batch 2)" in str(info.value)
    )
    summary = ti.pushed["summary"]
    assert (summary["cancelled"], summary["rejected_ids"], summary["unconfirmed"], summary["not_attempted"]) == (
        1,
        [ids[0]],
        6,
        4,
    )


# --- cancel by query --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "sent"),
    [
        ({}, {}),
        ({"reward_configuration_id": CONFIG.upper()}, {"rewardConfigurationId": CONFIG}),
        ({"external_reward_configuration_id": "cfg-x"}, {"externalRewardConfigurationId": "cfg-x"}),
    ],
)
def test_cancel_by_query_batches_players_with_the_configuration_filter(
    hpgames_conn, requests_mock, context, config, sent
):
    requests_mock.post(BY_QUERY, text="")
    players = [f"player-{n}" for n in range(5)]
    result = by_query(player_ids=[*players, "player-0"], batch_size=2, **config).execute(context)
    assert [payload(r) for r in requests_mock.request_history] == [
        {"playerIds": players[:2], **sent},
        {"playerIds": players[2:4], **sent},
        {"playerIds": players[4:], **sent},
    ]
    assert result == {
        "players": 5,
        "duplicates_dropped": 1,
        "players_done": 5,
        "batches": 3,
        "requests": 3,
        "dry_run": False,
        "rewards_to_cancel": None,
    }


def test_cancel_by_query_refusal_stops_without_splitting(hpgames_conn, requests_mock, context, ti):
    requests_mock.post(BY_QUERY, status_code=404, json={"errorCode": 1004, "errorText": "Configuration not found"})
    with pytest.raises(RewardsError, match=r"Stopped at batch 1/2 \(player_ids 1-2 of 3\).*Configuration not found"):
        by_query(player_ids=["p1", "p2", "p3"], batch_size=2, reward_configuration_id=CONFIG).execute(context)
    assert requests_mock.call_count == 1
    assert ti.pushed["summary"]["players_done"] == 0
    assert ti.pushed["summary"]["not_attempted"] == 1


# --- dry runs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, "true", "True"])
@pytest.mark.parametrize(
    ("make", "expected", "logged"),
    [
        (
            lambda dry_run: HPGamesCancelRewardOperator(task_id="c", reward_id=uuids(1)[0], dry_run=dry_run),
            {
                "id_field": "reward_id",
                "id": uuids(1)[0],
                "cancelled": 0,
                "already_cancelled": 0,
                "requests": 0,
                "dry_run": True,
            },
            f"would cancel the HPGames reward with reward_id {uuids(1)[0]}",
        ),
        (
            lambda dry_run: bulk(reward_ids=uuids(5), batch_size=2, dry_run=dry_run),
            summary_of(requested=5, batches=3, dry_run=True),
            f"batch 3/3 would cancel {uuids(5)[4]}",
        ),
        (
            lambda dry_run: by_query(player_ids=["p1", "p2", "p3"], batch_size=2, dry_run=dry_run),
            {
                "players": 3,
                "duplicates_dropped": 0,
                "players_done": 0,
                "batches": 2,
                "requests": 3,  # one readAll per player
                "dry_run": True,
                "rewards_to_cancel": 4,
            },
            "batch 1/2 would cancel the rewards of p1, p2: 3 IN_PROGRESS rewards found",
        ),
    ],
)
def test_dry_run_makes_no_mutating_request(hpgames_conn, requests_mock, context, logs, make, expected, logged, dry_run):
    for action in ("cancel", "bulkCancel", "bulkCancelByQuery"):
        requests_mock.post(f"{REWARDS_URL}/{action}", text="")
    per_player = {"p1": 1, "p2": 2, "p3": 1}
    requests_mock.post(READ_ALL, json=lambda request, _: [{"id": "r"}] * per_player[payload(request)["playerId"]])
    assert make(dry_run).execute(context) == expected
    assert mutating(requests_mock.request_history) == []
    assert logged in logs()


def test_dry_run_by_query_reads_with_the_same_filter(hpgames_conn, requests_mock, context):
    requests_mock.post(READ_ALL, json=[])
    by_query(player_ids=["p1"], external_reward_configuration_id="cfg-x", dry_run=True).execute(context)
    assert payload(requests_mock.last_request) == {
        "playerId": "p1",
        "externalRewardConfigurationId": "cfg-x",
        "status": "IN_PROGRESS",
    }


# --- templated inputs -------------------------------------------------------------------------------------------


def test_reward_ids_and_dry_run_render_from_jinja(hpgames_conn, requests_mock, context):
    ids = uuids(3)
    accepted = answer_bulk(requests_mock)
    with DAG("jinja_ids", schedule=None):
        operator = bulk(reward_ids="{{ params.ids | tojson }}", dry_run="{{ params.dry }}")
    operator.render_template_fields({**context, "params": {"ids": [*ids, ids[0]], "dry": False}})
    result = operator.execute(context)
    assert accepted == [ids]
    assert (result["requested"], result["duplicates_dropped"], result["dry_run"]) == (3, 1, False)


def test_player_ids_render_from_an_upstream_xcom(hpgames_conn, requests_mock, ti):
    requests_mock.post(BY_QUERY, text="")
    with DAG("xcom_ids", schedule=None):
        upstream = HPGamesCancelRewardOperator(task_id="upstream", external_id="e")
        operator = by_query(player_ids=upstream.output, batch_size=2)
    ti.xcoms["upstream"] = ["p1", "p2", "p3"]
    context = {"ti": ti, "params": {}}
    operator.render_template_fields(context)
    result = operator.execute(context)
    assert ti.pulls == [("upstream", "return_value")]
    assert [payload(r)["playerIds"] for r in requests_mock.request_history] == [["p1", "p2"], ["p3"]]
    assert result["players_done"] == 3


def test_literal_ids_stay_strings_under_native_rendering(hpgames_conn, requests_mock, context):
    """Literal ids are not run through Jinja: a native environment would turn "123" into the int 123."""
    accepted = answer_bulk(requests_mock)
    with DAG("native", schedule=None, render_template_as_native_obj=True):
        operator = bulk(external_ids=["123", "0042", "{{ params.extra }}"])
    operator.render_template_fields({**context, "params": {"extra": "ext-9"}})
    operator.execute(context)
    assert accepted == [["123", "0042", "ext-9"]]
