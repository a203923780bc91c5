"""Sandbox internals without HTTP: signing, the issuance job state machine, seeds."""

from __future__ import annotations

import json

import pytest
from rewards_sandbox import (
    DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
    DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
    DEMO_HPGAMES_CANCELLED_REWARD_ID,
    DEMO_HPGAMES_CLOSED_REWARD_ID,
    DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS,
    DEMO_HPGAMES_EXPIRED_REWARD_ID,
    DEMO_HPGAMES_MERCHANT_ID,
    DEMO_HPGAMES_QUERY_REWARD_IDS,
    DEMO_HPGAMES_UNTOUCHED_REWARD_IDS,
    DEMO_THANX_CAMPAIGN_ID,
    DEMO_THANX_MERCHANT_ID,
    DEMO_THANX_REVOKE_JOB_IDS,
    DEMO_THANX_VARIANT_ID,
    SandboxState,
    SeedError,
    demo_seed,
    hpgames_signature,
    parse_seed,
    running_sandbox,
    sign_hpgames_body,
    verify_hpgames_signature,
)
from rewards_sandbox.testing import reward_statuses

DOCS_MERCHANT = "1387a6cc-3651-4473-ae52-e415caea3395"
DOCS_TIMESTAMP = 1709289932725
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
DOCS_HASH = "9ed3d547f9a672ecd4884304e859af84263410d613ff2a2bb7d70a8221d7e544"


class FakeClock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock) -> SandboxState:
    return SandboxState(demo_seed(), revoke_seconds=10, issue_seconds=4, clock=clock)


def test_signature_matches_the_docs_test_vector():
    assert hpgames_signature("secretkey", DOCS_MERCHANT, DOCS_TIMESTAMP) == DOCS_HASH
    assert hpgames_signature("secretkey", DOCS_MERCHANT, str(DOCS_TIMESTAMP)) == DOCS_HASH
    assert verify_hpgames_signature("secretkey", DOCS_MERCHANT, DOCS_TIMESTAMP, DOCS_HASH)
    assert not verify_hpgames_signature("secretkey", DOCS_MERCHANT, DOCS_TIMESTAMP + 1, DOCS_HASH)
    assert not verify_hpgames_signature("secretkey", DOCS_MERCHANT, DOCS_TIMESTAMP, DOCS_HASH.upper())
    body = {"merchantId": DOCS_MERCHANT, "id": "x"}
    signed = sign_hpgames_body(body, secret="secretkey", timestamp=DOCS_TIMESTAMP)
    assert signed == {"merchantId": DOCS_MERCHANT, "id": "x", "timestamp": DOCS_TIMESTAMP, "hash": DOCS_HASH}


def test_revoke_progress_is_derived_from_elapsed_time(state, clock):
    job_id = DEMO_THANX_REVOKE_JOB_IDS[0]
    assert state.revoke_job(DEMO_THANX_MERCHANT_ID, job_id)["progress_percent"] == 0
    progress = []
    for _ in range(3):
        clock.now += 2.5
        job = state.get_job(DEMO_THANX_MERCHANT_ID, job_id)
        progress.append((job["state"], job["progress_percent"]))
    assert progress == [("revoking", 25), ("revoking", 50), ("revoking", 75)]
    clock.now += 2.5
    assert state.get_job(DEMO_THANX_MERCHANT_ID, job_id)["state"] == "revoked"


def test_issued_job_timeline(state, clock):
    identifiers = [{"type": "email", "value": f"user{i}@example.com"} for i in range(9)]
    identifiers.append({"type": "phone", "value": "12345"})  # not E.164: fails
    job = state.issue_rewards(
        client_id="c",
        merchant_id=DEMO_THANX_MERCHANT_ID,
        campaign_id=DEMO_THANX_CAMPAIGN_ID,
        variant_id=DEMO_THANX_VARIANT_ID,
        identifiers=identifiers,
    )["issuance_job"]

    def read(seconds: float) -> dict:
        clock.now += seconds
        return state.get_job(DEMO_THANX_MERCHANT_ID, job["id"])

    assert (job["state"], job["started_at"]) == ("pending", None)
    assert read(1.9)["state"] == "pending"
    halfway = read(1.1)  # 3 s of 4: half of the processing phase
    assert (halfway["state"], halfway["processed_count"], halfway["progress_percent"]) == (
        "processing",
        5,
        50,
    )
    assert halfway["started_at"] is not None
    assert halfway["completed_at"] is None
    done = read(1.0)
    assert (done["state"], done["success_count"], done["failure_count"]) == ("completed", 9, 1)
    assert done["summary"]["failures"] == [
        {"identifier_index": 9, "identifier_type": "phone", "error": "Invalid identifier"}
    ]


def test_demo_seed_reward_sets_are_disjoint_and_complete(state):
    statuses = reward_statuses(state.snapshot(), DEMO_HPGAMES_MERCHANT_ID)
    groups = [
        DEMO_HPGAMES_CANCEL_BY_ID_REWARD_IDS,
        DEMO_HPGAMES_CANCEL_BY_EXTERNAL_REWARD_IDS,
        DEMO_HPGAMES_QUERY_REWARD_IDS,
        DEMO_HPGAMES_UNTOUCHED_REWARD_IDS,
        DEMO_HPGAMES_ENDED_CONFIG_REWARD_IDS,
        (DEMO_HPGAMES_CLOSED_REWARD_ID, DEMO_HPGAMES_EXPIRED_REWARD_ID, DEMO_HPGAMES_CANCELLED_REWARD_ID),
    ]
    everything = [rid for group in groups for rid in group]
    assert sorted(everything) == sorted(statuses)
    assert {statuses[rid] for group in groups[:5] for rid in group} == {"IN_PROGRESS"}
    assert [statuses[rid] for rid in groups[5]] == ["CLOSED", "EXPIRED", "CANCELLED"]


def test_rewards_expire_lazily(state, clock):
    rid = DEMO_HPGAMES_UNTOUCHED_REWARD_IDS[0]
    clock.now += 30 * 24 * 3600
    assert reward_statuses(state.snapshot(), DEMO_HPGAMES_MERCHANT_ID)[rid] == "EXPIRED"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["thanx"]["issuance_jobs"][0].update(state="done"), "state must be one of"),
        (lambda s: s["thanx"]["issuance_jobs"].append(dict(s["thanx"]["issuance_jobs"][0])), "duplicate"),
        (lambda s: s["thanx"]["credentials"][0]["merchant_ids"].append("m_nope"), "unknown merchant"),
        (
            lambda s: s["hpgames"]["rewards"][0].update(rewardConfigurationId=UNKNOWN_UUID),
            "unknown reward configuration",
        ),
        (lambda s: s["hpgames"]["merchants"][0].update(id="not-a-uuid"), "is not a UUID"),
    ],
    ids=["job-state", "duplicate-job", "credential-merchant", "reward-config", "merchant-uuid"],
)
def test_invalid_seeds_are_rejected(mutate, message):
    seed = demo_seed()
    mutate(seed)
    with pytest.raises(SeedError, match=message):
        parse_seed(seed)


def test_custom_seed_file(tmp_path):
    seed = {
        "thanx": {
            "merchants": [{"id": "m1", "name": "Shop", "handle": "shop"}],
            "credentials": [{"client_id": "c", "access_token": "t", "merchant_ids": ["m1"], "scopes": []}],
            "issuance_jobs": [
                {"id": "j1", "merchant_id": "m1", "campaign_id": "k", "variant_id": "v", "state": "revoked"}
            ],
        }
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with running_sandbox(seed_file=str(path)) as server:
        jobs = server.snapshot()["thanx"]["merchants"]["m1"]["issuance_jobs"]
        assert jobs["j1"]["state"] == "revoked"
        assert server.snapshot()["hpgames"] == {"merchants": {}}
