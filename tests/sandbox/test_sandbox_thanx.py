"""Thanx side of the sandbox over real HTTP."""

from __future__ import annotations

import time

import pytest
from rewards_sandbox import (
    DEMO_THANX_CAMPAIGN_ID,
    DEMO_THANX_FAILED_JOB_ID,
    DEMO_THANX_FORBIDDEN_MERCHANT_ID,
    DEMO_THANX_MERCHANT_ID,
    DEMO_THANX_NOSCOPE_ACCESS_TOKEN,
    DEMO_THANX_NOSCOPE_CLIENT_ID,
    DEMO_THANX_OTHER_MERCHANT_ID,
    DEMO_THANX_OTHER_MERCHANT_JOB_ID,
    DEMO_THANX_PENDING_JOB_ID,
    DEMO_THANX_PROCESSING_JOB_ID,
    DEMO_THANX_REVOKE_JOB_IDS,
    DEMO_THANX_REVOKED_JOB_ID,
    DEMO_THANX_VARIANT_ID,
)
from rewards_sandbox.testing import thanx_headers

JOB_FIELDS = {
    "id",
    "campaign_id",
    "variant_id",
    "state",
    "total_count",
    "processed_count",
    "success_count",
    "failure_count",
    "progress_percent",
    "created_at",
    "started_at",
    "completed_at",
}


def issue_body(*values: str, merchant_id: str = DEMO_THANX_MERCHANT_ID) -> dict:
    """An Issue Rewards body for email identifiers."""
    return {
        "campaign_id": DEMO_THANX_CAMPAIGN_ID,
        "merchant_id": merchant_id,
        "variant_id": DEMO_THANX_VARIANT_ID,
        "identifiers": [{"type": "email", "value": value} for value in values],
    }


def issue(client, *values: str, headers: dict | None = None):
    """POST Issue Rewards for email identifiers."""
    return client.thanx("POST", "/partner/campaigns/issue", headers=headers, json=issue_body(*values))


def assert_error(response, status: int, code: str) -> dict:
    """Check a flat Thanx error and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    return body


def test_scopes_and_merchants(client):
    assert client.thanx("GET", "/partner/scopes").json() == {"scopes": ["rewards.issue"]}
    merchants = client.thanx("GET", "/partner/merchants").json()["merchants"]
    assert merchants == [
        {"id": DEMO_THANX_MERCHANT_ID, "name": "Pizza Company", "handle": "pizzacompany"},
        {"id": DEMO_THANX_OTHER_MERCHANT_ID, "name": "Burger Barn", "handle": "burgerbarn"},
    ]


def test_completed_job_has_documented_fields_and_summary(client):
    job = client.get_job(DEMO_THANX_REVOKE_JOB_IDS[0]).json()["issuance_job"]
    assert set(job) == JOB_FIELDS | {"summary"}
    assert job["state"] == "completed"
    assert job["summary"]["failure_count"] == job["failure_count"] == len(job["summary"]["failures"]) == 2
    failed = client.get_job(DEMO_THANX_FAILED_JOB_ID).json()["issuance_job"]
    assert set(failed) == JOB_FIELDS
    assert failed["state"] == "failed"


def test_revoke_goes_revoking_then_revoked(client):
    before = client.job_states()
    response = client.revoke(DEMO_THANX_FAILED_JOB_ID)
    assert response.status_code == 202
    job = response.json()["issuance_job"]
    assert (job["state"], job["progress_percent"]) == ("revoking", 0)
    assert "summary" not in job
    time.sleep(0.3)
    halfway = client.get_job(DEMO_THANX_FAILED_JOB_ID).json()["issuance_job"]
    assert halfway["state"] == "revoking"
    assert 0 < halfway["progress_percent"] < 100
    time.sleep(0.4)
    done = client.get_job(DEMO_THANX_FAILED_JOB_ID).json()["issuance_job"]
    assert (done["state"], done["progress_percent"]) == ("revoked", 100)
    assert client.job_states() == {**before, DEMO_THANX_FAILED_JOB_ID: "revoked"}


@pytest.mark.parametrize(
    ("job_id", "state"),
    [
        (DEMO_THANX_PENDING_JOB_ID, "pending"),
        (DEMO_THANX_PROCESSING_JOB_ID, "processing"),
        (DEMO_THANX_REVOKE_JOB_IDS[1], "revoking"),
        (DEMO_THANX_REVOKED_JOB_ID, "revoked"),
    ],
)
def test_revoke_rejected_outside_completed_or_failed(client, job_id, state):
    if state == "revoking":
        assert client.revoke(job_id).status_code == 202
    body = assert_error(client.revoke(job_id), 422, "BAD_REQUEST")
    assert body["message"] == f"Issuance job {job_id} is {state} and cannot be revoked"
    assert client.get_job(job_id).json()["issuance_job"]["state"] == state


def test_revoke_without_credentials_is_401(client):
    response = client.thanx("POST", "/partner/issuance_jobs/x/revoke", headers={}, json={"merchant_id": "m"})
    assert_error(response, 401, "AUTHENTICATION_GENERIC")


@pytest.mark.parametrize(
    "headers",
    [
        thanx_headers(access_token="wrong-token"),
        thanx_headers(client_id="wrong-client"),
        {**thanx_headers(), "Authorization": "Basic abc"},
    ],
)
def test_wrong_credentials_are_401(client, headers):
    assert_error(client.get_job(DEMO_THANX_REVOKE_JOB_IDS[0], headers=headers), 401, "AUTHENTICATION_GENERIC")


@pytest.mark.parametrize("version", ["v3.0", "v4", ""])
def test_wrong_accept_version_is_400(client, version):
    response = client.revoke(DEMO_THANX_REVOKE_JOB_IDS[0], headers=thanx_headers(accept_version=version))
    assert_error(response, 400, "BAD_REQUEST")
    assert client.job_states()[DEMO_THANX_REVOKE_JOB_IDS[0]] == "completed"


def test_merchant_scoping(client):
    # a job of another merchant never matches, even one the credential may act for
    assert_error(client.get_job(DEMO_THANX_OTHER_MERCHANT_JOB_ID), 404, "RESOURCE_NOT_FOUND")
    assert_error(client.revoke(DEMO_THANX_OTHER_MERCHANT_JOB_ID), 404, "RESOURCE_NOT_FOUND")
    other = client.get_job(DEMO_THANX_OTHER_MERCHANT_JOB_ID, merchant_id=DEMO_THANX_OTHER_MERCHANT_ID)
    assert other.json()["issuance_job"]["state"] == "completed"
    assert_error(client.get_job("job_unknown"), 404, "RESOURCE_NOT_FOUND")
    assert_error(client.get_job("x", merchant_id=DEMO_THANX_FORBIDDEN_MERCHANT_ID), 403, "FORBIDDEN")
    assert_error(client.revoke("x", merchant_id=DEMO_THANX_FORBIDDEN_MERCHANT_ID), 403, "FORBIDDEN")
    missing = client.thanx("GET", f"/partner/issuance_jobs/{DEMO_THANX_REVOKE_JOB_IDS[0]}")
    assert_error(missing, 400, "BAD_REQUEST")
    assert_error(client.thanx("POST", "/partner/issuance_jobs/x/revoke", json={}), 400, "BAD_REQUEST")


def test_job_id_is_url_decoded_once(client):
    encoded = DEMO_THANX_REVOKE_JOB_IDS[0].replace("_", "%5F")
    assert client.get_job(encoded).json()["issuance_job"]["id"] == DEMO_THANX_REVOKE_JOB_IDS[0]
    assert_error(client.get_job(encoded.replace("%", "%25")), 404, "RESOURCE_NOT_FOUND")


def test_scope_and_content_type_are_enforced(client):
    noscope = thanx_headers(DEMO_THANX_NOSCOPE_CLIENT_ID, DEMO_THANX_NOSCOPE_ACCESS_TOKEN)
    assert client.thanx("GET", "/partner/scopes", headers=noscope).json() == {"scopes": ["subscribers.write"]}
    assert_error(client.revoke(DEMO_THANX_REVOKE_JOB_IDS[0], headers=noscope), 403, "FORBIDDEN")
    text_headers = {**thanx_headers(), "Content-Type": "text/plain"}
    response = client.thanx(
        "POST", "/partner/issuance_jobs/x/revoke", headers=text_headers, data='{"merchant_id": "x"}'
    )
    assert_error(response, 415, "BAD_REQUEST")
    malformed = client.thanx("POST", "/partner/issuance_jobs/x/revoke", data="{not json")
    assert_error(malformed, 400, "BAD_REQUEST")
    assert_error(client.thanx("GET", "/partner/nowhere"), 404, "RESOURCE_NOT_FOUND")
    assert_error(client.thanx("GET", "/partner/campaigns/issue"), 405, "BAD_REQUEST")


def test_issue_rewards_job_advances_to_completed(client):
    response = issue(client, "a@example.com", "unknown@x.io")
    assert response.status_code == 202
    job = response.json()["issuance_job"]
    assert (job["state"], job["total_count"], job["started_at"], job["completed_at"]) == (
        "pending",
        2,
        None,
        None,
    )
    time.sleep(0.7)  # processing runs from 0.5 s to 1 s
    assert client.get_job(job["id"]).json()["issuance_job"]["state"] == "processing"
    time.sleep(0.45)
    done = client.get_job(job["id"]).json()["issuance_job"]
    assert done["state"] == "completed"
    assert done["summary"] == {
        "success_count": 1,
        "failure_count": 1,
        "failures": [{"identifier_index": 1, "identifier_type": "email", "error": "User not found"}],
    }
    assert client.revoke(job["id"]).status_code == 202


def test_issue_rewards_idempotency(client):
    headers = {**thanx_headers(), "X-Idempotency-Key": "550e8400-e29b-41d4-a716-446655440000"}
    first = issue(client, "a@example.com", headers=headers)
    again = issue(client, "a@example.com", headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    changed = issue(client, "b@example.com", headers=headers)
    assert_error(changed, 422, "BAD_REQUEST")
    fresh = issue(client, "a@example.com")
    assert fresh.json()["issuance_job"]["id"] != first.json()["issuance_job"]["id"]


@pytest.mark.parametrize(
    "body",
    [
        issue_body(),
        {**issue_body("a@b.c"), "identifiers": [{"type": "fax", "value": "1"}]},
        {**issue_body("a@b.c"), "identifiers": [{"type": "email", "value": ""}]},
        {**issue_body("a@b.c"), "identifiers": [{"type": "email", "value": "a@b.c"}] * 10_001},
        {**issue_body("a@b.c"), "variant_id": "var_not_in_campaign"},
        {key: value for key, value in issue_body("a@b.c").items() if key != "campaign_id"},
    ],
    ids=["no-identifiers", "bad-type", "empty-value", "too-many", "foreign-variant", "no-campaign"],
)
def test_issue_rewards_validation(client, body):
    assert_error(client.thanx("POST", "/partner/campaigns/issue", json=body), 400, "BAD_REQUEST")
