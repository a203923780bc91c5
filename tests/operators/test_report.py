"""RewardsTeardownReportOperator: reads every target back (readAll streamed) and fails naming what is left."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_rewards.exceptions import RewardsError
from airflow_provider_rewards.operators.report import (
    PER_PLAYER_QUERY_LIMIT,
    RewardReadBack,
    RewardsTeardownReportOperator,
    TeardownTargets,
    cancel_recorded_every_id,
)
from tests.conftest import HPGAMES_MERCHANT, REWARDS_URL, THANX_URL

JOBS = f"{THANX_URL}/partner/issuance_jobs"
READ_ALL = f"{REWARDS_URL}/readAll"
ID_1 = "5e1f0000-0000-4000-8000-000000000101"
SUMMARY_OK = {"requested": 1, "cancelled": 1, "rejected": 0, "dry_run": False}


def reward(n: int, player: str = "p-9", status: str = "IN_PROGRESS", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"5e1f0000-0000-4000-8000-{n:012d}",
        "playerId": player,
        "rewardConfigurationId": "c0f1a000-0000-4000-8000-000000000002",
        "status": status,
        **extra,
    }


class TaskInstance:
    """What the report uses of ``ti``: ``get_ti_count`` (answering ``failed``) and keyed ``xcom_pull``."""

    dag_id = "teardown"
    run_id = "manual__1"

    def __init__(self, failed: int = 0, xcoms: dict[tuple[str, str], Any] | None = None) -> None:
        self.failed = failed
        self.xcoms = xcoms or {}
        self.counted: list[dict[str, Any]] = []

    def get_ti_count(self, dag_id: str, **filters: Any) -> int:
        self.counted.append({"dag_id": dag_id, **filters})
        return self.failed

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))


def run(ti: TaskInstance | None = None, **kwargs: Any) -> dict[str, Any]:
    operator = RewardsTeardownReportOperator(task_id="teardown_report", **kwargs)
    return operator.execute({"ti": ti or TaskInstance()})


def answer_jobs(requests_mock, **states: str) -> None:
    for job_id, state in states.items():
        requests_mock.get(f"{JOBS}/{job_id}", json={"issuance_job": {"id": job_id, "state": state}})


def read_all_bodies(requests_mock) -> list[dict[str, Any]]:
    """Filters of every readAll request, without the signing fields."""
    signed = {"merchantId", "timestamp", "hash"}
    return [
        {k: v for k, v in json.loads(r.body).items() if k not in signed}
        for r in requests_mock.request_history
        if r.url == READ_ALL
    ]


@pytest.fixture(autouse=True)
def connections(thanx_conn, hpgames_conn):
    return thanx_conn, hpgames_conn


def test_defaults_all_done_and_no_targets_does_nothing_and_succeeds(requests_mock, capsys):
    operator = RewardsTeardownReportOperator(task_id="teardown_report")
    assert operator.trigger_rule == "all_done"
    report = operator.execute({"ti": TaskInstance()})
    assert requests_mock.request_history == []
    assert (report["jobs_not_revoked"], report["rewards_still_live"], report["unverifiable"]) == ({}, [], {})
    logged = capsys.readouterr().out
    assert "Nothing to tear down" in logged
    assert "Teardown complete" not in logged


def test_fails_naming_every_known_leftover_without_retry(requests_mock):
    answer_jobs(requests_mock, job_a="revoked", job_b="revoking")
    live = [
        reward(101),
        reward(777, player="p-1"),
        reward(555, player="p-2"),
        reward(888, player="p-1", status="CANCELLED"),
    ]
    requests_mock.post(READ_ALL, json=[live])  # the documented nested shape
    with pytest.raises(AirflowFailException) as info:
        run(issuance_job_ids=["job_a", "job_b"], reward_ids=[ID_1.upper()], player_ids=["p-1"])
    message = str(info.value)
    assert "'jobs_not_revoked': {'job_b': 'revoking'}" in message
    assert ID_1 in message  # targeted by id, still live
    assert "5e1f0000-0000-4000-8000-000000000777 (player p-1)" in message
    assert "000000000555" not in message  # another player's reward is not ours to report
    assert "000000000888" not in message  # the item says CANCELLED, whatever the filter
    assert read_all_bodies(requests_mock) == [{"status": "IN_PROGRESS"}]  # one stream, narrowest sound filter


def test_players_alone_are_read_one_query_each_with_the_filter(requests_mock):
    config = "C0F1A000-0000-4000-8000-000000000002"
    requests_mock.post(READ_ALL, json=[])
    report = run(player_ids=["p-1", "p-2"], reward_configuration_id=config)
    assert report["rewards_still_live"] == []
    assert read_all_bodies(requests_mock) == [
        {"playerId": p, "status": "IN_PROGRESS", "rewardConfigurationId": config.lower()} for p in ("p-1", "p-2")
    ]
    assert report["reads"] == {"requests": 2, "items_read": 0}


def test_filters_are_checked_again_on_each_item(requests_mock):
    """A vendor that ignores the playerId or configuration filter cannot make a report pass or fail wrongly."""
    other_config = reward(1, player="p-1", rewardConfigurationId="c0f1a000-0000-4000-8000-000000000009")
    requests_mock.post(READ_ALL, json=[reward(2, player="p-other"), other_config, reward(3, player="p-1")])
    with pytest.raises(AirflowFailException) as info:
        run(player_ids=["p-1"], reward_configuration_id="c0f1a000-0000-4000-8000-000000000002")
    assert "000000000003 (player p-1)" in str(info.value)
    assert "000000000001" not in str(info.value)
    assert "000000000002" not in str(info.value)


def test_many_players_share_one_stream(requests_mock):
    requests_mock.post(READ_ALL, json=[])
    run(player_ids=[f"p-{n}" for n in range(PER_PLAYER_QUERY_LIMIT + 1)])
    assert read_all_bodies(requests_mock) == [{"status": "IN_PROGRESS"}]


def test_external_ids_are_unverifiable_when_items_carry_no_external_id(requests_mock):
    """The documented item has no externalId: a live reward without one may be the target. Never verified."""
    requests_mock.post(READ_ALL, json=[reward(5)])
    ti = TaskInstance(xcoms={("cancel_ext", "return_value"): SUMMARY_OK})
    report = run(ti, external_ids=["ext-1"], external_id_cancel_task_id="cancel_ext")
    assert report["rewards_still_live"] == []
    assert list(report["unverifiable"]) == ["ext-1"]
    assert "carry no externalId" in report["unverifiable"]["ext-1"]


@pytest.mark.parametrize(
    ("xcoms", "fail_on_unverifiable"),
    [
        ({}, None),  # the cancel task recorded nothing
        ({("cancel_ext", "summary"): {**SUMMARY_OK, "cancelled": 0, "error": "HTTP 500"}}, None),
        ({("cancel_ext", "return_value"): {**SUMMARY_OK, "dry_run": True}}, None),
        ({("cancel_ext", "return_value"): SUMMARY_OK}, True),
    ],
)
def test_unverifiable_external_ids_fail_unless_the_cancel_recorded_each(requests_mock, xcoms, fail_on_unverifiable):
    requests_mock.post(READ_ALL, json=[reward(5)])
    with pytest.raises(AirflowFailException, match="ext-1"):
        run(
            TaskInstance(xcoms=xcoms),
            external_ids=["ext-1"],
            external_id_cancel_task_id="cancel_ext",
            fail_on_unverifiable=fail_on_unverifiable,
        )


def test_unverifiable_can_be_accepted_explicitly(requests_mock):
    requests_mock.post(READ_ALL, json=[reward(5)])
    report = run(external_ids=["ext-1"], fail_on_unverifiable=False)
    assert list(report["unverifiable"]) == ["ext-1"]


def test_external_ids_are_verified_when_every_live_item_shows_its_external_id(requests_mock):
    requests_mock.post(READ_ALL, json=[reward(5, externalId="ext-9"), reward(6, externalId="ext-1")])
    with pytest.raises(AirflowFailException) as info:
        run(external_ids=["ext-1", "ext-2"])
    assert "'rewards_still_live': ['ext-1']" in str(info.value)
    assert "'unverifiable': {}" in str(info.value)  # ext-2 is not among the live rewards, all of which were seen


def test_nothing_live_verifies_external_ids(requests_mock):
    requests_mock.post(READ_ALL, json=[[]])
    assert run(external_ids=["ext-1"])["unverifiable"] == {}


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"errorCode": 1003, "errorText": "Bad request"}},  # 200 + errorCode
        {"json": [{"errorCode": 1005, "errorText": "Internal"}]},
        {"text": '[{"id": "5e1f0000-0000-4000-8000-000000000101"'},  # truncated
        {"text": ""},
        {"status_code": 500, "json": {"errorCode": 1, "errorText": "down"}},
        {"exc": requests.ConnectionError("refused")},
    ],
)
def test_a_failed_read_is_not_verified_and_retryable(requests_mock, sleeps, answer):
    answer_jobs(requests_mock, job_a="revoked")  # a 5xx or a network error is retried by the transport first
    requests_mock.post(READ_ALL, **answer)
    with pytest.raises(RewardsError) as info:
        run(issuance_job_ids=["job_a"], reward_ids=[ID_1], external_ids=["ext-1"])
    assert not isinstance(info.value, AirflowFailException)  # a normal failure: Airflow retries the task
    assert "'not_verified': {'hpgames rewards'" in str(info.value)
    assert "'rewards_still_live': [], 'unverifiable': {}" in str(info.value)


def test_a_job_that_cannot_be_read_is_not_verified(requests_mock):
    requests_mock.get(f"{JOBS}/job_a", status_code=404, json={"code": "not_found", "message": "no such job"})
    with pytest.raises(RewardsError, match="thanx job job_a"):
        run(issuance_job_ids=["job_a"])


def test_secrets_never_reach_the_error(requests_mock, hpgames_conn):
    from tests.conftest import HPGAMES_SECRET

    requests_mock.post(READ_ALL, status_code=400, text=f"bad hash for secret {HPGAMES_SECRET}")
    with pytest.raises(RewardsError) as info:
        run(reward_ids=[ID_1])
    assert HPGAMES_SECRET not in str(info.value)


def test_a_json_escaped_echo_of_the_secret_is_scrubbed_after_decoding(requests_mock, hpgames_conn):
    """The read-back's errors come from the transport's one error builder, which scrubs every echoed form."""
    from tests.conftest import HPGAMES_SECRET

    escaped = "".join(f"\\u{ord(char):04x}" for char in HPGAMES_SECRET)
    body = '{"errorCode": 1001, "errorText": "bad hash for secret ' + escaped + '"}'
    requests_mock.post(READ_ALL, status_code=401, text=body)
    with pytest.raises(RewardsError) as info:
        run(reward_ids=[ID_1])
    assert "bad hash for secret" in str(info.value)
    assert HPGAMES_SECRET not in str(info.value)


def test_requests_are_signed_by_the_hook_auth(requests_mock):
    requests_mock.post(READ_ALL, json=[])
    run(reward_ids=[ID_1])
    body = json.loads(requests_mock.request_history[0].body)
    assert (body["merchantId"], len(body["hash"])) == (HPGAMES_MERCHANT, 64)


def test_dry_run_lists_instead_of_failing(requests_mock):
    answer_jobs(requests_mock, job_a="completed")
    requests_mock.post(READ_ALL, json=[reward(101)])
    report = run(issuance_job_ids=["job_a"], reward_ids=[ID_1], dry_run="true")
    assert report["jobs_not_revoked"] == {"job_a": "completed"}
    assert report["rewards_still_live"] == [ID_1]


def test_a_failed_task_fails_the_run_even_when_nothing_is_left(requests_mock):
    answer_jobs(requests_mock, job_a="revoked")
    ti = TaskInstance(failed=1)
    with pytest.raises(AirflowFailException, match="Nothing targeted is left to tear down, but 1 task instance"):
        run(ti, issuance_job_ids=["job_a"])
    assert ti.counted == [{"dag_id": "teardown", "run_ids": ["manual__1"], "states": ["failed"]}]


def test_bad_targets_fail_the_report_naming_the_field_and_the_valid_ones_are_still_read(requests_mock):
    """An id the cancel task refused is never counted as done; the valid ids next to it are still checked."""
    answer_jobs(requests_mock, job_a="revoked")
    with pytest.raises(AirflowFailException, match="Teardown incomplete") as info:
        run(issuance_job_ids=["job_a", "job_b\u202e"], reward_ids=["not-a-uuid"])
    assert "'invalid_targets'" in str(info.value)
    assert "reward_ids[0] must be a UUID" in str(info.value)
    assert "issuance_job_ids" in str(info.value)
    assert [request.path for request in requests_mock.request_history] == ["/partner/issuance_jobs/job_a"]


def test_targeting_rule_shared_with_the_demo():
    targets = TeardownTargets.parse(
        reward_ids=[ID_1.upper()], external_ids=["ext-1"], player_ids=["p-1"], reward_configuration_id=None
    )
    assert targets.targets_reward({"id": ID_1, "status": "CANCELLED"})
    assert targets.targets_reward({"id": "x", "externalId": "ext-1", "status": "CLOSED"})
    assert targets.targets_reward(reward(3, player="p-1"))
    assert not targets.targets_reward(reward(3, player="p-1", status="EXPIRED"))
    assert not targets.targets_reward(reward(3, player="p-2"))


class ScanCountingIds(tuple[str, ...]):
    """Target ids that count every linear scan of themselves: an ``in`` test or an iteration."""

    scans: int

    def __new__(cls, ids: Iterable[str]) -> ScanCountingIds:
        counted = super().__new__(cls, ids)
        counted.scans = 0
        return counted

    def __contains__(self, item: object) -> bool:
        self.scans += 1
        return super().__contains__(item)

    def __iter__(self) -> Iterator[str]:
        self.scans += 1
        return super().__iter__()


def test_read_back_scans_each_target_list_once_however_many_items_come_back():
    """Membership is a set lookup: 1,000 items cost one pass over each id list, not one pass per item."""
    every_hundredth = [reward(n)["id"] for n in range(0, 1000, 100)]
    reward_ids = ScanCountingIds(every_hundredth)
    external_ids, player_ids = ScanCountingIds(["ext-7"]), ScanCountingIds(["p-3"])
    targets = TeardownTargets(reward_ids=reward_ids, external_ids=external_ids, player_ids=player_ids)
    read_back = RewardReadBack(targets)

    for n in range(1000):
        read_back.observe(reward(n, player=f"p-{n}", externalId=f"ext-{n}"))

    assert read_back.still_live() == sorted([*every_hundredth, "ext-7", f"{reward(3)['id']} (player p-3)"])
    assert (reward_ids.scans, external_ids.scans, player_ids.scans) == (1, 1, 1)


def test_an_unhashable_external_or_player_id_is_no_target_and_does_not_raise():
    targets = TeardownTargets.parse(external_ids=["ext-1"], player_ids=["p-1"])
    hostile = reward(1, player={"id": "p-1"}, externalId=["ext-1"])  # type: ignore[arg-type]
    read_back = RewardReadBack(targets)
    read_back.observe(hostile)
    assert not targets.targets_reward(hostile)
    assert read_back.still_live() == []


def test_cancel_summary_records_every_id_only_when_all_were_accepted():
    assert cancel_recorded_every_id(SUMMARY_OK, ["ext-1"])
    assert not cancel_recorded_every_id({**SUMMARY_OK, "rejected": 1}, ["ext-1"])
    assert not cancel_recorded_every_id(SUMMARY_OK, ["ext-1", "ext-2"])
    assert not cancel_recorded_every_id(None, ["ext-1"])
