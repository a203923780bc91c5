"""The provider's hooks against the sandbox over real HTTP: the revoke state machine, each 422, HPGames
signatures (right, wrong, stale), and a scripted teardown under a 0.3 fault rate."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import rewards_sandbox as seed
from rewards_sandbox import SandboxServer, running_sandbox
from rewards_sandbox.testing import job_states, reward_statuses

from airflow_provider_rewards.exceptions import RewardsApiError
from airflow_provider_rewards.hooks import auth
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from tests.conftest import set_connection
from tests.sandbox.helpers import FAST

#: Retries fast enough for a test; as many attempts as the chaos of a 0.3 fault rate may need.
FAST_RETRIES = {"retry_backoff": 0.01, "retry_backoff_max": 0.05, "max_retries": 8}
FIRST_JOB = seed.DEMO_THANX_COMPLETED_JOB_IDS[0]


@pytest.fixture
def connect(monkeypatch):
    """``connect(sandbox, hpgames_secret=..., **extra)``: point both default connections at ``sandbox``."""

    def point(
        sandbox: SandboxServer, *, hpgames_secret: str = seed.DEMO_HPGAMES_SECRET, **extra: Any
    ) -> tuple[ThanxHook, HPGamesHook]:
        set_connection(
            monkeypatch,
            "thanx_default",
            conn_type="thanx",
            host=sandbox.base_url,
            login=seed.DEMO_THANX_CLIENT_ID,
            password=seed.DEMO_THANX_ACCESS_TOKEN,
            extra={"merchant_id": seed.DEMO_THANX_MERCHANT_ID, **FAST_RETRIES, **extra},
        )
        set_connection(
            monkeypatch,
            "hpgames_default",
            conn_type="hpgames",
            host=sandbox.base_url,
            login=seed.DEMO_HPGAMES_MERCHANT_ID,
            password=hpgames_secret,
            extra={**FAST_RETRIES, **extra},
        )
        return ThanxHook(), HPGamesHook()

    return point


def test_revoke_goes_revoking_then_revoked(sandbox, connect):
    thanx, _ = connect(sandbox)
    assert thanx.revoke_issuance_job(FIRST_JOB)["state"] == "revoking"
    assert thanx.get_issuance_job(FIRST_JOB)["state"] == "revoking"
    job = thanx.wait_for_job_state(FIRST_JOB, poll_interval=0.1, timeout=10)
    assert (job["state"], job["progress_percent"]) == ("revoked", 100)


@pytest.mark.parametrize(
    "job_id",
    [seed.DEMO_THANX_PENDING_JOB_ID, seed.DEMO_THANX_PROCESSING_JOB_ID, seed.DEMO_THANX_REVOKED_JOB_ID, FIRST_JOB],
)
def test_each_unrevocable_state_is_a_422_naming_it(sandbox, connect, client, job_id):
    thanx, _ = connect(sandbox)
    if job_id == FIRST_JOB:  # the revoking case: a second revoke of a job already revoking
        thanx.revoke_issuance_job(job_id)
    state = thanx.get_issuance_job(job_id)["state"]
    with pytest.raises(RewardsApiError) as refused:
        thanx.revoke_issuance_job(job_id)
    assert (refused.value.status_code, refused.value.vendor_code, refused.value.attempts) == (422, "BAD_REQUEST", 1)
    assert refused.value.vendor_message == f"Issuance job {job_id} is {state} and cannot be revoked"
    assert state in {"pending", "processing", "revoked", "revoking"}
    assert job_states(client.snapshot())[job_id] == state  # the refusal changed nothing


def test_a_correctly_signed_cancel_is_accepted(sandbox, connect, client):
    _, hpgames = connect(sandbox)
    reward = seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]
    hpgames.cancel_reward(reward_id=reward)
    assert reward_statuses(client.snapshot())[reward] == "CANCELLED"


@pytest.mark.parametrize(
    ("kind", "vendor_code"),
    [("wrong secret", "1001"), ("stale timestamp", "1002")],
)
def test_a_wrong_or_stale_signature_is_refused_and_changes_nothing(
    sandbox, connect, client, monkeypatch, kind, vendor_code
):
    if kind == "wrong secret":
        _, hpgames = connect(sandbox, hpgames_secret="not-the-merchant-secret")
    else:
        _, hpgames = connect(sandbox)
        stale = auth.epoch_millis() - 10 * 60 * 1000  # outside the sandbox's 300 s window
        monkeypatch.setattr(auth, "epoch_millis", lambda: stale)
    reward = seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS[0]
    with pytest.raises(RewardsApiError) as refused:
        hpgames.cancel_reward(reward_id=reward)
    assert (refused.value.status_code, refused.value.vendor_code, refused.value.attempts) == (401, vendor_code, 1)
    assert reward_statuses(client.snapshot())[reward] == "IN_PROGRESS"


def revoke_confirmed(thanx: ThanxHook, job_id: str) -> None:
    """Revoke; a 422 after a retried request is fine when the job reads revoking/revoked (a lost answer)."""
    try:
        thanx.revoke_issuance_job(job_id)
    except RewardsApiError as error:
        if error.status_code != 422 or thanx.get_issuance_job(job_id)["state"] not in {"revoking", "revoked"}:
            raise


# Seeds whose faults include connections dropped after a revoke was applied (the revokes come first, in a
# fixed order, so where those faults land does not depend on timing); 18 and 27 also drop bulk cancels.
@pytest.mark.parametrize("fault_seed", [1, 18, 27])
def test_a_scripted_teardown_at_fault_rate_0_3_applies_every_change_and_nothing_else(connect, fault_seed):
    config = {**FAST, "revoke_seconds": 0.3, "fault_rate": 0.3, "fault_seed": fault_seed, "retry_after_s": 0}
    with running_sandbox(**config) as sandbox:
        thanx, hpgames = connect(sandbox)
        before = sandbox.snapshot()
        for job_id in seed.DEMO_THANX_REVOKE_JOB_IDS:
            revoke_confirmed(thanx, job_id)
        for job_id in seed.DEMO_THANX_REVOKE_JOB_IDS:
            thanx.wait_for_job_state(job_id, poll_interval=0.1, timeout=30)
        first, *rest = seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS
        hpgames.cancel_reward(reward_id=first)
        hpgames.bulk_cancel_rewards(reward_ids=rest)
        hpgames.bulk_cancel_rewards(external_ids=seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_IDS)
        players, query_config = seed.DEMO_HPGAMES_QUERY_PLAYER_IDS, seed.DEMO_HPGAMES_QUERY_EXTERNAL_CONFIG_ID
        hpgames.bulk_cancel_rewards_by_query(players, external_reward_configuration_id=query_config)
        after = sandbox.snapshot()
        log = sandbox.request_log()

    faults = collections.Counter(entry["fault"] for entry in log if entry["fault"])
    assert faults["429"] + faults["500"] + faults["503"] >= 2, faults  # the faults were real ...
    lost_revokes = [e for e in log if e["fault"] == "drop" and e["method"] == "POST" and e["path"].endswith("/revoke")]
    assert lost_revokes, faults  # ... lost answers to applied revokes included
    jobs_before, jobs_after = job_states(before), job_states(after)
    assert {job: jobs_after[job] for job in seed.DEMO_THANX_REVOKE_JOB_IDS} == dict.fromkeys(
        seed.DEMO_THANX_REVOKE_JOB_IDS, "revoked"
    )
    rewards_before, rewards_after = reward_statuses(before), reward_statuses(after)
    targets = {
        *seed.DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
        *seed.DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
        *seed.DEMO_HPGAMES_QUERY_REWARD_IDS,
    }
    assert {reward: rewards_after[reward] for reward in targets} == dict.fromkeys(targets, "CANCELLED")
    # Nothing else changed: every other job and reward (both merchants) reads as before.
    assert {j: s for j, s in jobs_after.items() if j not in seed.DEMO_THANX_REVOKE_JOB_IDS} == {
        j: s for j, s in jobs_before.items() if j not in seed.DEMO_THANX_REVOKE_JOB_IDS
    }
    assert {r: s for r, s in rewards_after.items() if r not in targets} == {
        r: s for r, s in rewards_before.items() if r not in targets
    }
    other = seed.DEMO_HPGAMES_OTHER_MERCHANT_ID
    assert reward_statuses(after, other) == reward_statuses(before, other)
