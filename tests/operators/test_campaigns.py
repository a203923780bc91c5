"""Scheduled-teardown operators against the sandbox: the window, discovery, snapshots, the plan, the approval guard.

Every test runs on a fresh demo-seeded sandbox (in-process, loopback) with both connections pointing at it, and
asserts on what the sandbox received and holds, not on the operators' own word.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rewards_sandbox as seed
from rewards_sandbox.testing import job_states, reward_statuses, running_sandbox

from airflow_provider_rewards.exceptions import RewardsInputError
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.operators import campaigns
from airflow_provider_rewards.operators.campaigns import (
    HPGamesCancelPlannedRewardsOperator,
    HPGamesCancelRewardsOfConfigurationOperator,
    HPGamesEndedConfigurationsOperator,
    RewardsTeardownApprovalOperator,
    RewardsTeardownPlanOperator,
    RewardsTeardownRecordOperator,
    ThanxEndedCampaignJobsOperator,
    ThanxPlannedJobsOperator,
    resolve_window,
)
from tests.conftest import set_connection
from tests.operators.conftest import RecordingTaskInstance, outcomes_by_id

ENDED = seed.DEMO_HPGAMES_ENDED_CONFIG_ID
ENDED_REWARDS = set(seed.DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS)
ENDED_JOBS = list(seed.DEMO_THANX_ENDED_CAMPAIGN_JOB_IDS)
#: The first nightly run after the demo's ended configuration and campaign (both end 2025-08-31T23:59:59Z).
NIGHT = datetime(2025, 9, 1, tzinfo=UTC)
#: Each default connection's demo credentials (no retries: a test sees the sandbox's first answer).
DEMO_CONNECTIONS: dict[str, dict[str, Any]] = {
    "thanx_default": {
        "conn_type": "thanx",
        "login": seed.DEMO_THANX_CLIENT_ID,
        "password": seed.DEMO_THANX_ACCESS_TOKEN,
        "extra": {"merchant_id": seed.DEMO_THANX_MERCHANT_ID, "max_retries": 0},
    },
    "hpgames_default": {
        "conn_type": "hpgames",
        "login": seed.DEMO_HPGAMES_MERCHANT_ID,
        "password": seed.DEMO_HPGAMES_SECRET,
        "extra": {"max_retries": 0},
    },
}


@pytest.fixture
def sandbox(monkeypatch):
    """A fresh demo sandbox (bodies logged, revocations in 0.2 s) with ``thanx_default`` and ``hpgames_default``."""
    with running_sandbox(revoke_seconds=0.2, log_bodies=True) as server:
        for conn_id, fields in DEMO_CONNECTIONS.items():
            set_connection(monkeypatch, conn_id, host=server.base_url, **fields)
        yield server


@pytest.fixture
def run_context():
    """``run_context(night, **extra)``: a task context of a run whose data interval ends at ``night``."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    def make(night: datetime = NIGHT, xcoms: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        ti = RecordingTaskInstance(xcoms)
        ti.get_ti_count = lambda *args, **kwargs: 0
        return {
            "ti": ti,
            "params": {},
            "dag": SimpleNamespace(dag_id="nightly"),
            "run_id": f"scheduled__{night.isoformat()}",
            "logical_date": night,
            "data_interval_end": night,
            "outlet_events": OutletEventAccessors(),
            **extra,
        }

    return make


@pytest.fixture
def job_record(tmp_path) -> str:
    """A record of the ended campaign's two jobs (one with its campaign, one bare) and a running campaign's job."""
    path = tmp_path / "thanx-jobs.jsonl"
    path.write_text(
        json.dumps({"issuance_job_id": ENDED_JOBS[0], "campaign_id": seed.DEMO_THANX_ENDED_CAMPAIGN_ID})
        + f"\n{ENDED_JOBS[1]}\n{seed.DEMO_THANX_UNTOUCHED_JOB_ID}\n"
    )
    return f"file://{path}"


#: A night two windows after the demo campaign's end (the windows being nights): its window is [SECOND, LATE_NIGHT).
SECOND_NIGHT, LATE_NIGHT = NIGHT + timedelta(days=1), NIGHT + timedelta(days=2)


@pytest.fixture
def late_record(tmp_path):
    """``late_record(recorded_at)``: a record whose first ended job carries ``recorded_at`` (ISO text, or None
    for none), the second was recorded the night its campaign ended, and the running campaign's job in this
    window; returns its ``file://`` URI."""

    def write(recorded_at: str | None) -> str:
        lines = [
            {"issuance_job_id": ENDED_JOBS[0], "campaign_id": seed.DEMO_THANX_ENDED_CAMPAIGN_ID},
            {"issuance_job_id": ENDED_JOBS[1], "recorded_at": "2025-08-31T23:00:00Z"},
            {"issuance_job_id": seed.DEMO_THANX_UNTOUCHED_JOB_ID, "recorded_at": "2025-09-02T12:00:00Z"},
        ]
        if recorded_at is not None:
            lines[0]["recorded_at"] = recorded_at
        path = tmp_path / "late-jobs.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return f"file://{path}"

    return write


def live_of(server) -> set[str]:
    return {rid for rid, status in reward_statuses(server.snapshot()).items() if status == "IN_PROGRESS"}


def calls(server, suffix: str, method: str = "POST") -> list[dict[str, Any]]:
    return [e for e in server.request_log() if e["method"] == method and e["path"].endswith(suffix)]


def reads(server, prefix: str) -> list[str]:
    """The paths of the GET requests under ``prefix``, oldest first."""
    return [e["path"] for e in calls(server, "", method="GET") if e["path"].startswith(prefix)]


def local(location: str) -> Path:
    """The local file a ``file://`` display location names."""
    return Path(location.removeprefix("file://"))


def ids_in(path: Path) -> list[str]:
    """The ``id`` of each line of a JSON Lines target file, in order."""
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# The window
# ---------------------------------------------------------------------------------------------
def test_window_from_the_last_successful_run(run_context):
    window = resolve_window(run_context(prev_data_interval_end_success=NIGHT - timedelta(days=3)))
    assert (window.after, window.before, window.after_source) == (
        NIGHT - timedelta(days=3),
        NIGHT,
        "last successful run",
    )


def test_an_earlier_watermark_wins_so_a_dry_or_rejected_run_does_not_move_the_bound(run_context):
    context = run_context(prev_data_interval_end_success=NIGHT - timedelta(days=1))
    window = resolve_window(context, watermark=NIGHT - timedelta(days=5))
    assert window.after == NIGHT - timedelta(days=5)
    assert window.after_source == "watermark of the last teardown"


def test_a_watermark_from_a_later_run_is_ignored(run_context):
    window = resolve_window(run_context(), lookback=3600, watermark=NIGHT + timedelta(days=30))
    assert window.after == NIGHT - timedelta(hours=1)


def test_first_run_looks_back_and_explicit_bounds_win(run_context):
    assert resolve_window(run_context(), lookback="3600").after == NIGHT - timedelta(hours=1)
    window = resolve_window(run_context(), ended_after="2025-08-01T00:00:00Z", ended_before="2025-08-02T00:00:00Z")
    assert (window.after, window.before) == (datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 8, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"ended_after": "2025-09-02T00:00:00Z"}, "must be before ended_before"),
        ({"ended_before": "2025-09-01"}, "must carry a timezone"),
        ({"ended_after": "yesterday"}, "ended_after must be an ISO 8601 date-time"),
        ({"grace_period": -1}, "grace_period must not be negative"),
    ],
)
def test_window_errors_name_the_argument(run_context, kwargs, says):
    with pytest.raises(RewardsInputError, match=says):
        resolve_window(run_context(), **kwargs)


# ---------------------------------------------------------------------------------------------
# HPGames discovery and the configuration snapshot
# ---------------------------------------------------------------------------------------------
def test_ended_configurations_half_open_window_and_grace(sandbox):
    ms = campaigns.epoch_ms
    with HPGamesHook() as hook:
        assert [
            c["id"] for c in hook.ended_reward_configurations(ms(NIGHT), after_ms=ms(NIGHT - timedelta(days=1)))
        ] == [ENDED]
        assert hook.ended_reward_configurations(ms(NIGHT + timedelta(days=1)), after_ms=ms(NIGHT)) == []
        assert (
            hook.ended_reward_configurations(ms(NIGHT), timedelta(days=1), after_ms=ms(NIGHT - timedelta(days=1))) == []
        )
        year_2100 = ms(datetime(2100, 1, 1, tzinfo=UTC))
        everything = [c["id"] for c in hook.ended_reward_configurations(year_2100)]
        assert everything == [ENDED, seed.DEMO_HPGAMES_RUNNING_CONFIG_ID]  # configurations without endDate never end
        assert [c["id"] for c in hook.ended_reward_configurations(year_2100, name="Season")] == [
            seed.DEMO_HPGAMES_RUNNING_CONFIG_ID
        ]
    readall = calls(sandbox, "/reward-configurations/readAll")
    assert readall[-1]["body"]["name"] == "Season"


def test_configuration_filters_are_validated_before_any_request(sandbox):
    with HPGamesHook() as hook:
        with pytest.raises(RewardsInputError, match="status must be one of ACTIVE, INACTIVE"):
            hook.read_reward_configurations(status="ENDED")
        with pytest.raises(RewardsInputError, match=r"after_ms .* must be before before_ms"):
            hook.ended_reward_configurations(5, after_ms=5)
        with pytest.raises(RewardsInputError, match="grace must be a timedelta of zero or more"):
            hook.ended_reward_configurations(5, timedelta(seconds=-1))
        with pytest.raises(RewardsInputError, match="before_ms must be epoch milliseconds"):
            hook.ended_reward_configurations("2025-09-01")
    assert sandbox.request_log() == []


def test_ended_configurations_operator_returns_ids_and_names(sandbox, run_context):
    found = HPGamesEndedConfigurationsOperator(task_id="ended").execute(run_context())
    assert found == [
        {"id": ENDED, "externalId": "cfg-summer-2025", "name": "Summer 2025 free bets", "endDate": 1756684799000}
    ]


def test_cancel_rewards_of_configuration_dry_run_then_real_run_from_the_same_snapshot(sandbox, run_context, tmp_path):
    untouched = live_of(sandbox) - ENDED_REWARDS

    def operator(dry_run: bool) -> HPGamesCancelRewardsOfConfigurationOperator:
        return HPGamesCancelRewardsOfConfigurationOperator(
            task_id="cancel_ended", reward_configuration_id=ENDED.upper(), results_path=str(tmp_path), dry_run=dry_run
        )

    dry = operator(True).execute(run_context())
    assert (dry["live_rewards"], dry["dry_run"]) == (2, True)
    assert live_of(sandbox) >= ENDED_REWARDS  # nothing cancelled
    assert set(ids_in(tmp_path / "targets.jsonl")) == ENDED_REWARDS

    real = operator(False).execute(run_context())
    assert real["cancelled"] == 2
    assert live_of(sandbox) == untouched
    assert set(outcomes_by_id(real["results_path"])) == ENDED_REWARDS
    reads = [e for e in calls(sandbox, "/rewards/readAll") if e["body"].get("rewardConfigurationId") == ENDED]
    assert len(reads) == 1, "resume=True reuses the snapshot instead of reading again"


def test_cancel_rewards_of_configuration_needs_one_configuration(tmp_path):
    with pytest.raises(RewardsInputError, match="at most one of"):
        HPGamesCancelRewardsOfConfigurationOperator(
            task_id="c", reward_configuration_id=ENDED, external_reward_configuration_id="x", results_path=str(tmp_path)
        )
    with pytest.raises(RewardsInputError, match="results_path is required"):
        HPGamesCancelRewardsOfConfigurationOperator(task_id="c", reward_configuration_id=ENDED, results_path=None)


# ---------------------------------------------------------------------------------------------
# Thanx: recorded jobs of ended campaigns
# ---------------------------------------------------------------------------------------------
def test_recorded_jobs_of_ended_campaigns_read_each_campaign_once(sandbox, run_context, job_record):
    jobs = ThanxEndedCampaignJobsOperator(task_id="jobs", job_record=job_record).execute(run_context())
    assert [job["issuance_job_id"] for job in jobs] == ENDED_JOBS
    assert sorted(reads(sandbox, "/partner/campaigns/")) == [
        "/partner/campaigns/camp_demo_1",
        "/partner/campaigns/camp_demo_ended",
    ]
    assert reads(sandbox, "/partner/issuance_jobs/") == [
        f"/partner/issuance_jobs/{ENDED_JOBS[1]}",
        f"/partner/issuance_jobs/{seed.DEMO_THANX_UNTOUCHED_JOB_ID}",
    ]
    assert calls(sandbox, "/revoke") == []


@pytest.mark.parametrize(
    ("recorded_at", "selected"),
    [
        ("2025-09-02T12:00:00Z", True),  # recorded late: two windows after its campaign ended
        ("2025-09-02T00:00:00Z", True),  # the window's start is in it
        ("2025-09-01T23:59:59.999Z", False),  # recorded before the window: the previous run's business
        ("2025-09-03T00:00:00Z", False),  # the window's end is not in it (the next run's)
        (None, False),  # no recorded_at: only the campaign's own window selects it
    ],
)
def test_a_job_recorded_late_is_selected_by_the_run_whose_window_holds_its_recorded_at(
    sandbox, run_context, late_record, logs, recorded_at, selected
):
    context = run_context(LATE_NIGHT, prev_data_interval_end_success=SECOND_NIGHT)
    jobs = ThanxEndedCampaignJobsOperator(task_id="jobs", job_record=late_record(recorded_at)).execute(context)
    expected = [ENDED_JOBS[0]] if selected else []
    assert [job["issuance_job_id"] for job in jobs] == expected
    said = logs()
    assert f"{len(expected)} of 3 recorded job(s) selected: 0 of the 0 campaign(s)" in said
    assert f"{len(expected)} recorded in the window (recorded_at)" in said
    assert f"{int(recorded_at is None)} job(s) have no recorded_at" in said
    assert calls(sandbox, "/revoke") == []


def test_a_grace_period_delays_the_campaign_not_the_recorded_at(sandbox, run_context, late_record):
    """Ended = end_at + grace: a campaign still within its grace at the window's end is not taken late."""
    context = run_context(LATE_NIGHT, prev_data_interval_end_success=SECOND_NIGHT)
    record = late_record("2025-09-02T12:00:00Z")
    within_grace = ThanxEndedCampaignJobsOperator(task_id="jobs", job_record=record, grace_period=3 * 86400)
    assert within_grace.execute(context) == []
    past_grace = ThanxEndedCampaignJobsOperator(task_id="jobs", job_record=record, grace_period=86400)
    assert [job["issuance_job_id"] for job in past_grace.execute(context)] == ENDED_JOBS[:1]


# ---------------------------------------------------------------------------------------------
# The plan and the teardown from it
# ---------------------------------------------------------------------------------------------
def plan_operator(tmp_path: Path, job_record: str, **kwargs: Any) -> RewardsTeardownPlanOperator:
    return RewardsTeardownPlanOperator(
        task_id="plan", record_root=f"file://{tmp_path}/records", job_record=job_record, sample_size=1, **kwargs
    )


def test_plan_writes_every_target_and_changes_nothing(sandbox, run_context, tmp_path, job_record):
    before = sandbox.snapshot()
    plan = plan_operator(tmp_path, job_record).execute(run_context())
    assert plan["counts"] == {"hpgames": {"reward_ids": 2}, "thanx": {"issuance_job_ids": 2}}
    assert (plan["total"], plan["nothing_to_do"]) == (4, False)
    assert plan["sample"]["thanx.issuance_job_ids"] == ENDED_JOBS[:1]
    assert len(plan["sample"]["hpgames.reward_ids"]) == 1
    assert [c["id"] for c in plan["configurations"]] == [ENDED]
    written = json.loads(local(plan["plan_path"]).read_text())
    reward_file = local(written["files"]["hpgames_reward_ids"])
    assert set(ids_in(reward_file)) == ENDED_REWARDS
    assert sandbox.snapshot()["hpgames"] == before["hpgames"]
    assert job_states(sandbox.snapshot()) == job_states(before)


def test_the_plan_lists_a_late_job_and_the_teardown_revokes_exactly_the_plan(
    sandbox, run_context, tmp_path, late_record
):
    context = run_context(LATE_NIGHT, prev_data_interval_end_success=SECOND_NIGHT)
    plan = plan_operator(tmp_path, late_record("2025-09-02T12:00:00Z")).execute(context)
    assert plan["counts"]["thanx"] == {"issuance_job_ids": 1}
    assert plan["sample"]["thanx.issuance_job_ids"] == ENDED_JOBS[:1]
    (campaign,) = plan["campaigns"]  # shown on the approval screen although it ended two windows ago
    assert (campaign["id"], campaign["ended"], campaign["late_jobs"]) == (seed.DEMO_THANX_ENDED_CAMPAIGN_ID, False, 1)
    planned = ThanxPlannedJobsOperator(
        task_id="jobs", plan_path=plan["plan_path"], expected_fingerprint=plan["fingerprints"]["thanx_issuance_jobs"]
    )
    assert planned.execute(context) == [{"issuance_job_id": ENDED_JOBS[0], "merchant_id": None}]
    assert calls(sandbox, "/revoke") == []


def test_plan_with_nothing_ended_says_so(sandbox, run_context, tmp_path, job_record):
    plan = plan_operator(tmp_path, job_record).execute(
        run_context(NIGHT + timedelta(days=30), prev_start_date_success=NIGHT)
    )
    assert (plan["total"], plan["nothing_to_do"]) == (0, True)


def test_plan_refuses_a_bad_record_before_any_request(sandbox, run_context, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("job_ok\n{broken\n")
    with pytest.raises(RewardsInputError, match=r"bad.jsonl line 2: not valid JSON"):
        plan_operator(tmp_path, str(bad)).execute(run_context())
    assert sandbox.request_log() == []


@pytest.mark.parametrize("already_cancelled", ["refuse", "ok"])
def test_teardown_from_the_plan_never_goes_beyond_it(sandbox, run_context, tmp_path, job_record, already_cancelled):
    sandbox.set_behaviours(already_cancelled=already_cancelled)
    plan = plan_operator(tmp_path, job_record).execute(run_context())
    gone, still_live = sorted(ENDED_REWARDS)
    with HPGamesHook() as hook:
        hook.cancel_reward(reward_id=gone)  # the vendor state moves between the plan and the teardown
    untouched = live_of(sandbox) - {still_live}
    context = run_context(xcoms={"plan": plan})

    summary = HPGamesCancelPlannedRewardsOperator(task_id="cancel", plan_path=plan["plan_path"]).execute(context)
    # A vendor that answers 200 for an already-cancelled reward cannot be told apart from a cancel.
    gone_outcome = "already_cancelled" if already_cancelled == "refuse" else "cancelled"
    assert outcomes_by_id(summary["results_path"]) == {gone: gone_outcome, still_live: "cancelled"}
    sent = [set(e["body"]["ids"]) for e in calls(sandbox, "/rewards/bulkCancel")]
    assert set().union(*sent) == ENDED_REWARDS
    assert live_of(sandbox) == untouched
    assert ThanxPlannedJobsOperator(task_id="jobs", plan_path=plan["plan_path"]).execute(context) == [
        {"issuance_job_id": job, "merchant_id": None} for job in ENDED_JOBS
    ]
    assert ThanxPlannedJobsOperator(task_id="jobs", plan_path=plan["plan_path"], dry_run=True).execute(context) == []


# ---------------------------------------------------------------------------------------------
# The approval guard
# ---------------------------------------------------------------------------------------------
PLAN = {
    "total": 12,
    "dry_run": False,
    "counts": {"hpgames": {"reward_ids": 10}, "thanx": {"issuance_job_ids": 2}},
    "sample": {"hpgames.reward_ids": ["r-1", "r-2"], "thanx.issuance_job_ids": ["job_1"]},
    "window": {"ended_after": "2025-08-31T00:00:00Z", "ended_before": "2025-09-01T00:00:00Z", "grace_period_s": 0},
    "configurations": [{"id": ENDED, "name": "Summer 2025 free bets"}],
    "campaigns": [{"id": "camp_demo_ended"}],
    "plan_path": "file:///records/nightly/run/plan.json",
}


@pytest.fixture
def hitl_requests(monkeypatch) -> list[dict[str, Any]]:
    """Every human-in-the-loop request the approval operator writes (instead of the API call)."""
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kwargs: written.append(kwargs)
    )
    return written


@pytest.mark.parametrize(
    ("threshold", "plan", "approval"),
    [("12", PLAN, "not_needed"), (None, PLAN, "not_needed"), (0, {**PLAN, "dry_run": True}, "dry_run")],
)
def test_no_approval_is_asked_at_or_below_the_threshold_or_in_a_dry_run(
    run_context, hitl_requests, threshold, plan, approval
):
    operator = RewardsTeardownApprovalOperator(task_id="approve", approval_threshold=threshold)
    assert operator.execute(run_context(xcoms={"plan": plan}))["approval"] == approval
    assert hitl_requests == []


def test_above_the_threshold_the_task_waits_showing_counts_sample_and_plan(run_context, hitl_requests):
    from airflow.sdk.exceptions import TaskDeferred

    try:  # Airflow 3.3+ parks the task awaiting input; older versions defer it to the HITL trigger
        from airflow.sdk.exceptions import TaskAwaitingInput as Waiting
    except ImportError:
        Waiting = TaskDeferred
    context = run_context(xcoms={"plan": PLAN})
    context["task_instance"] = SimpleNamespace(id="ti-1")
    with pytest.raises(Waiting):
        RewardsTeardownApprovalOperator(task_id="approve", approval_threshold="11").execute(context)
    (request,) = hitl_requests
    assert request["options"] == ["Approve", "Reject"]
    assert "12 targets" in request["subject"]
    body = request["body"]
    assert "| hpgames | reward_ids | 10 | `r-1`, `r-2` |" in body
    assert "| thanx | issuance_job_ids | 2 | `job_1` |" in body
    assert PLAN["plan_path"] in body


def test_a_rejection_ends_the_task_skipped_saying_who_and_that_nothing_was_torn_down(run_context):
    from airflow.sdk.exceptions import AirflowSkipException

    event = {
        "chosen_options": ["Reject"],
        "params_input": {},
        "responded_at": NIGHT,
        "responded_by_user": {"id": "ops"},
    }
    operator = RewardsTeardownApprovalOperator(task_id="approve", approval_threshold=1)
    context = run_context(xcoms={"plan": PLAN})
    with pytest.raises(AirflowSkipException, match=r"rejected by ops: nothing was torn down.*plan\.json"):
        operator.execute_complete(context, event)
    assert context["ti"].pushed["approval"]["approval"] == "rejected"
    approved = {**event, "chosen_options": ["Approve"]}
    assert operator.execute_complete(run_context(xcoms={"plan": PLAN}), approved)["approval"] == "approved"


def test_a_bad_threshold_is_refused_when_the_dag_is_parsed():
    with pytest.raises(RewardsInputError, match="approval_threshold must be"):
        RewardsTeardownApprovalOperator(task_id="approve", approval_threshold=-1)


def test_after_a_rejection_the_record_says_so_keeps_the_window_start_and_ends_skipped(
    sandbox, run_context, tmp_path, job_record
):
    from airflow.sdk.exceptions import AirflowSkipException

    plan = plan_operator(tmp_path, job_record).execute(run_context())
    rejected = {"approval": "rejected", "by": "ops", "reason": "Teardown rejected by ops: nothing was torn down"}
    context = run_context(xcoms={"plan": plan, "approve_teardown": rejected})
    record = RewardsTeardownRecordOperator(task_id="record", plan_path=plan["plan_path"])
    with pytest.raises(AirflowSkipException, match="rejected by ops: nothing was torn down; report file://"):
        record.execute(context)
    records = tmp_path / "records" / "nightly"
    assert json.loads(next(records.rglob("report.json")).read_text())["rejected"] == rejected
    assert json.loads((records / "watermark.json").read_text())["ended_before"] == plan["window"]["ended_after"]


def test_planned_jobs_carry_the_merchant_they_are_revoked_for(sandbox, run_context, tmp_path, job_record):
    merchant = seed.DEMO_THANX_MERCHANT_ID
    plan = plan_operator(tmp_path, job_record, thanx_merchant_id=merchant).execute(run_context())
    jobs = ThanxPlannedJobsOperator(task_id="jobs", plan_path=plan["plan_path"]).execute(run_context())
    assert jobs == [{"issuance_job_id": job, "merchant_id": merchant} for job in ENDED_JOBS]
    job_reads = [e for e in sandbox.request_log() if e["path"] == f"/partner/issuance_jobs/{ENDED_JOBS[1]}"]
    assert len(job_reads) == 1  # the bare id's campaign was read with that merchant


def test_a_configuration_named_by_its_external_id_is_snapshotted_the_same(sandbox, run_context, tmp_path):
    operator = HPGamesCancelRewardsOfConfigurationOperator(
        task_id="cancel_ended",
        external_reward_configuration_id="cfg-summer-2025",
        results_path=f"file://{tmp_path}/external",
        dry_run=True,
    )
    assert operator.execute(run_context())["live_rewards"] == 2
    (read,) = calls(sandbox, "/rewards/readAll")
    assert read["body"]["externalRewardConfigurationId"] == "cfg-summer-2025"
    assert read["body"]["status"] == "IN_PROGRESS"
    assert calls(sandbox, "/rewards/bulkCancel") == []


def test_a_plan_file_changed_after_the_plan_fails_before_any_request(sandbox, run_context, tmp_path, job_record):
    from airflow.sdk.exceptions import AirflowFailException

    plan = plan_operator(tmp_path, job_record).execute(run_context())
    rewards_file = local(plan["files"]["hpgames_reward_ids"])
    extra = {"id": seed.DEMO_HPGAMES_UNTOUCHED_REWARD_IDS[0], "rewardConfigurationId": ENDED, "playerId": "p"}
    rewards_file.write_text(rewards_file.read_text() + json.dumps(extra) + "\n")  # widened after the plan
    sandbox.clear_request_log()
    cancel = HPGamesCancelPlannedRewardsOperator(
        task_id="cancel",
        plan_path=plan["plan_path"],
        expected_fingerprint=plan["fingerprints"]["hpgames_reward_ids"],
    )
    with pytest.raises(AirflowFailException, match=r"changed since the plan wrote it .*nothing was sent"):
        cancel.execute(run_context())
    jobs = ThanxPlannedJobsOperator(
        task_id="jobs", plan_path=plan["plan_path"], expected_fingerprint=plan["fingerprints"]["thanx_issuance_jobs"]
    )
    assert len(jobs.execute(run_context())) == 2  # an unchanged file passes
    assert sandbox.request_log() == []
