from __future__ import annotations

import json

import pytest

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.auth import USER_AGENT, hpgames_signature
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from tests.conftest import (
    FROZEN_MS,
    HPGAMES_MERCHANT,
    HPGAMES_SECRET,
    HPGAMES_URL,
    REWARDS_URL,
    assert_sent,
    set_connection,
)

R1 = "6d181739-a4c4-4932-a3de-0a980bfee707"
R2 = "0b6f3c1e-8a44-4d7e-9a51-2f0c7d1e9b10"
CONFIG = "f72cb8ef-1111-4222-8333-944455556666"
HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}


def signed(payload: str) -> bytes:
    """The exact body the hook must send at the frozen clock for a payload's JSON members."""
    digest = hpgames_signature(HPGAMES_SECRET, HPGAMES_MERCHANT, FROZEN_MS)
    head = f'{{"merchantId":"{HPGAMES_MERCHANT}","timestamp":{FROZEN_MS},"hash":"{digest}"'
    return f"{head},{payload}}}".encode() if payload else f"{head}}}".encode()


@pytest.mark.parametrize(
    ("action", "call", "payload"),
    [
        ("cancel", lambda h: h.cancel_reward(reward_id=R1.upper()), f'"id":"{R1}"'),
        ("cancel", lambda h: h.cancel_reward(external_id="ext-ü 1"), '"externalId":"ext-ü 1"'),
        ("bulkCancel", lambda h: h.bulk_cancel_rewards(reward_ids=[R1, R2, R1]), f'"ids":["{R1}","{R2}"]'),
        ("bulkCancel", lambda h: h.bulk_cancel_rewards(external_ids=("e1", "e2")), '"externalIds":["e1","e2"]'),
        ("bulkCancelByQuery", lambda h: h.bulk_cancel_rewards_by_query(["p1", "p2"]), '"playerIds":["p1","p2"]'),
        (
            "bulkCancelByQuery",
            lambda h: h.bulk_cancel_rewards_by_query(["p1"], reward_configuration_id=CONFIG),
            f'"playerIds":["p1"],"rewardConfigurationId":"{CONFIG}"',
        ),
        (
            "bulkCancelByQuery",
            lambda h: h.bulk_cancel_rewards_by_query(["p1"], external_reward_configuration_id="cfg-x"),
            '"playerIds":["p1"],"externalRewardConfigurationId":"cfg-x"',
        ),
        ("readAll", lambda h: h.read_rewards(), ""),
        (
            "readAll",
            lambda h: h.read_rewards(player_id="p1", reward_configuration_id=CONFIG, status="IN_PROGRESS"),
            f'"playerId":"p1","rewardConfigurationId":"{CONFIG}","status":"IN_PROGRESS"',
        ),
    ],
)
def test_every_method_sends_the_exact_signed_body(hpgames_conn, frozen_clock, requests_mock, action, call, payload):
    requests_mock.post(f"{REWARDS_URL}/{action}", status_code=200, text="[]" if action == "readAll" else "")
    call(HPGamesHook())
    assert_sent(requests_mock.last_request, "POST", f"{REWARDS_URL}/{action}", signed(payload), HEADERS)
    sent = json.loads(requests_mock.last_request.body)
    assert sent["hash"] == hpgames_signature(HPGAMES_SECRET, sent["merchantId"], sent["timestamp"])


def test_read_rewards_flattens_the_documented_nested_array(hpgames_conn, requests_mock):
    rows = [{"id": R1, "status": "CANCELLED"}, {"id": R2, "status": "IN_PROGRESS"}]
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[[rows[0]], [rows[1]]])
    assert HPGamesHook().read_rewards() == rows
    requests_mock.post(f"{REWARDS_URL}/readAll", json=rows)
    assert HPGamesHook().read_rewards() == rows


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.cancel_reward(), "exactly one of reward_id or external_id; neither"),
        (lambda h: h.cancel_reward(reward_id=R1, external_id="e"), "reward_id and external_id were both"),
        (lambda h: h.cancel_reward(reward_id="not-a-uuid"), "reward_id must be a UUID"),
        (lambda h: h.cancel_reward(external_id=" e"), "external_id has leading or trailing whitespace"),
        (lambda h: h.bulk_cancel_rewards(reward_ids=[]), "reward_ids must not be empty"),
        (lambda h: h.bulk_cancel_rewards(reward_ids=[R1, "x"]), r"reward_ids\[1\] must be a UUID"),
        (lambda h: h.bulk_cancel_rewards(external_ids="e1"), "external_ids must be a list"),
        (lambda h: h.bulk_cancel_rewards_by_query([]), "player_ids must not be empty"),
        (lambda h: h.bulk_cancel_rewards_by_query(None), "player_ids is required"),
        (
            lambda h: h.bulk_cancel_rewards_by_query(
                ["p"], reward_configuration_id=CONFIG, external_reward_configuration_id="x"
            ),
            "at most one of reward_configuration_id or external_reward_configuration_id",
        ),
        (lambda h: h.read_rewards(status="cancelled"), "status must be one of IN_PROGRESS"),
    ],
)
def test_bad_arguments_fail_before_any_request(hpgames_conn, requests_mock, call, message):
    with pytest.raises(RewardsInputError, match=message):
        call(HPGamesHook())
    assert not requests_mock.called


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"host": "", "login": HPGAMES_MERCHANT, "password": HPGAMES_SECRET}, "host (API base URL): is required"),
        ({"host": "https://h.test", "login": "merchant-7", "password": HPGAMES_SECRET}, "login (Merchant ID)"),
        ({"host": "https://h.test", "login": HPGAMES_MERCHANT, "password": ""}, "password (Secret key)"),
    ],
)
def test_bad_connection_fields_name_the_connection_and_field(monkeypatch, assert_no_secrets, fields, named):
    set_connection(monkeypatch, "hpgames_bad", conn_type="hpgames", **fields)
    with pytest.raises(RewardsConnectionConfigError) as info:
        HPGamesHook("hpgames_bad").read_rewards()
    assert "'hpgames_bad'" in str(info.value)
    assert named in str(info.value)
    assert_no_secrets(info.value)


def already_cancelled_hook(monkeypatch: pytest.MonkeyPatch, codes: object) -> HPGamesHook:
    fields = {"host": HPGAMES_URL, "login": HPGAMES_MERCHANT, "password": HPGAMES_SECRET}
    set_connection(
        monkeypatch, "hpgames_codes", conn_type="hpgames", extra={"already_cancelled_codes": codes}, **fields
    )
    return HPGamesHook("hpgames_codes")


@pytest.mark.parametrize(
    ("codes", "expected"),
    [("1010, E_CANCELLED", {"1010", "E_CANCELLED"}), (["1010", 1011], {"1010", "1011"}), (1010, {"1010"}), ("", set())],
)
def test_already_cancelled_codes_are_read_from_the_extra(monkeypatch, codes, expected):
    hook = already_cancelled_hook(monkeypatch, codes)
    assert hook.config.already_cancelled_codes == expected
    refusal = RewardsApiError(vendor="HPGames", method="POST", path="/cancel", status_code=409, vendor_code="1010")
    assert hook.means_already_cancelled(refusal) is ("1010" in expected)
    assert not hook.means_already_cancelled(ValueError("1010"))


@pytest.mark.parametrize("codes", [{"code": 1010}, True, [1010, None]])
def test_bad_already_cancelled_codes_name_the_field_and_the_fix(monkeypatch, codes):
    with pytest.raises(RewardsConnectionConfigError, match=r"already_cancelled_codes.*as \"1010,1011\""):
        _ = already_cancelled_hook(monkeypatch, codes).config


def test_host_without_scheme_and_with_port(monkeypatch):
    set_connection(
        monkeypatch,
        "hpgames_port",
        conn_type="hpgames",
        host="hp.test",
        port=8443,
        login=HPGAMES_MERCHANT,
        password=HPGAMES_SECRET,
    )
    assert HPGamesHook("hpgames_port").config.base_url == "https://hp.test:8443"


def test_connection_test_makes_one_signed_harmless_read(hpgames_conn, requests_mock):
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[])
    assert HPGamesHook().test_connection() == (
        True,
        "Connected to https://hpgames.test; the request signature was accepted",
    )
    assert json.loads(requests_mock.last_request.body)["playerId"] == "airflow-connection-test"


def test_connection_test_reports_a_refused_signature(hpgames_conn, requests_mock, assert_no_secrets):
    requests_mock.post(f"{REWARDS_URL}/readAll", status_code=401, json={"errorCode": 1001, "errorText": "Bad hash"})
    ok, message = HPGamesHook().test_connection()
    assert (ok, message) == (
        False,
        "HPGames API POST /api/v1/integration/rewards/readAll failed: HTTP 401 (1001: Bad hash)",
    )
    assert_no_secrets(message)


def test_vendor_error_is_exposed_on_the_exception(hpgames_conn, requests_mock):
    requests_mock.post(f"{REWARDS_URL}/bulkCancel", status_code=409, json={"errorCode": 1005, "errorText": "CLOSED"})
    with pytest.raises(RewardsApiError) as info:
        HPGamesHook().bulk_cancel_rewards(reward_ids=[R1])
    error = info.value
    assert (error.status_code, error.vendor_code, error.vendor_message, error.is_client_error) == (
        409,
        "1005",
        "CLOSED",
        True,
    )
    assert error.path == "/api/v1/integration/rewards/bulkCancel"


def test_swapped_login_and_secret_never_quote_the_login(monkeypatch):
    set_connection(
        monkeypatch,
        "hpgames_swapped",
        conn_type="hpgames",
        host="https://h.test",
        login=HPGAMES_SECRET,
        password=HPGAMES_MERCHANT,
    )
    with pytest.raises(RewardsConnectionConfigError) as info:
        HPGamesHook("hpgames_swapped").read_rewards()
    assert "login (Merchant ID)" in str(info.value)
    assert HPGAMES_SECRET not in str(info.value)


def test_a_200_with_an_error_code_is_a_client_error_not_a_transient_one(hpgames_conn, requests_mock):
    requests_mock.post(f"{REWARDS_URL}/bulkCancel", status_code=200, json={"errorCode": 1003, "errorText": "bad ids"})
    with pytest.raises(RewardsApiError) as info:
        HPGamesHook().bulk_cancel_rewards(reward_ids=[R1])
    error = info.value
    assert (error.status_code, error.vendor_code, error.is_client_error) == (200, "1003", True)
    assert requests_mock.call_count == 1


# --- iter_rewards: the streamed readAll ----------------------------------------------------------------------


def test_iter_rewards_streams_through_the_transport_with_its_tls_setting(hpgames_conn, requests_mock, tmp_path):
    rows = [{"id": R1, "status": "CANCELLED"}, {"id": R2, "status": "CANCELLED"}]
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[rows])
    hook = HPGamesHook()
    bundle = tmp_path / "ca.pem"
    hook.transport.verify = str(bundle)  # what the connection's verify (or REQUESTS_CA_BUNDLE) resolved to
    items = hook.iter_rewards(status="CANCELLED", player_id="p1")
    assert not requests_mock.called  # a generator: nothing is sent before the first item is asked for
    assert list(items) == rows
    assert requests_mock.last_request.verify == str(bundle)
    sent = json.loads(requests_mock.last_request.body)
    assert (sent["status"], sent["playerId"]) == ("CANCELLED", "p1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"errorCode": 1003, "errorText": "Merchant disabled"}', "HTTP 200 (1003: Merchant disabled)"),
        ('[{"id": "a"}, {"errorCode": 1005, "errorText": "later"}]', "HTTP 200 (1005"),
        ('[{"id": "a"}, {"id": ', "unreadable readAll answer"),
    ],
)
def test_iter_rewards_refusals_and_truncated_bodies_raise(hpgames_conn, requests_mock, body, message):
    requests_mock.post(f"{REWARDS_URL}/readAll", text=body)
    with pytest.raises(RewardsApiError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(HPGamesHook().iter_rewards())


def test_iter_rewards_errors_are_retried_by_the_transport(hpgames_conn, requests_mock, sleeps):
    requests_mock.post(f"{REWARDS_URL}/readAll", [{"status_code": 503, "text": ""}, {"json": [{"id": R1}]}])
    assert list(HPGamesHook().iter_rewards()) == [{"id": R1}]
    assert len(sleeps) == 1
