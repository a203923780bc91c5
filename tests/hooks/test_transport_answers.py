"""What a response means (2xx refusals), Retry-After, settings, scrubbing and credentials (issue 13)."""

from __future__ import annotations

import json
import math

import pytest

from airflow_provider_rewards.exceptions import RewardsApiError, RewardsConnectionConfigError, RewardsInputError
from airflow_provider_rewards.hooks.auth import HPGamesSignatureAuth, ThanxAuth
from airflow_provider_rewards.hooks.hpgames import HPGamesHook
from airflow_provider_rewards.hooks.thanx import ThanxHook
from airflow_provider_rewards.hooks.transport import TransportSettings, parse_retry_after, scrub
from tests.conftest import REWARDS_URL, THANX_TOKEN, THANX_URL, set_connection

SCOPES_URL = f"{THANX_URL}/partner/scopes"
R1 = "6d181739-a4c4-4932-a3de-0a980bfee707"


@pytest.mark.parametrize("code", [1005, "1005", "E_AUTH"])
def test_a_200_with_a_non_zero_error_code_is_a_refusal_not_retried(hpgames_conn, requests_mock, sleeps, code):
    requests_mock.post(f"{REWARDS_URL}/cancel", json={"errorCode": code, "errorText": "Insufficient balance"})
    with pytest.raises(RewardsApiError) as info:
        HPGamesHook().cancel_reward(reward_id=R1)
    assert (info.value.status_code, info.value.vendor_code) == (200, str(code))
    assert info.value.vendor_message == "Insufficient balance"
    assert requests_mock.call_count == 1
    assert not sleeps


@pytest.mark.parametrize("body", [{"errorCode": 0}, {"errorCode": "0"}, {"errorCode": None}, {"id": R1}])
def test_a_200_reporting_error_code_zero_or_none_succeeds(hpgames_conn, requests_mock, body):
    requests_mock.post(f"{REWARDS_URL}/cancel", json=body)
    HPGamesHook().cancel_reward(reward_id=R1)
    assert requests_mock.call_count == 1


async def test_the_async_transport_refuses_a_200_with_an_error_code_too(thanx_conn, httpx_mock_scopes):
    with pytest.raises(RewardsApiError, match=r"HTTP 200 \(1002: stale\)"):
        await httpx_mock_scopes({"errorCode": 1002, "errorText": "stale"})


@pytest.fixture
def httpx_mock_scopes(sleeps):
    """Run one AsyncTransport GET against an in-memory httpx answer holding ``body``."""
    import httpx

    from airflow_provider_rewards.hooks.transport import AsyncTransport

    async def run(body: object) -> object:
        handler = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
        async with httpx.AsyncClient(transport=handler) as client:
            auth = ThanxAuth("client", THANX_TOKEN)
            transport = AsyncTransport("Thanx", THANX_URL, auth, TransportSettings(), client)
            return await transport.request_json("GET", "/partner/scopes")

    return run


@pytest.mark.parametrize(
    ("header", "expected"),
    [("²", None), ("1.5", 1.5), ("-3", 0.0), ("nan", None), (" 2 ", 2.0), ("soon", None)],
)
def test_retry_after_values(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_in_the_future_is_honoured():
    import time
    from email.utils import formatdate

    assert 25 <= parse_retry_after(formatdate(time.time() + 30, usegmt=True)) <= 30


def test_unparseable_retry_after_falls_back_to_backoff(thanx_conn, requests_mock, sleeps):
    ok = {"json": {"scopes": []}, "status_code": 200}
    requests_mock.get(SCOPES_URL, [{"status_code": 429, "headers": {"Retry-After": "²"}}, ok])
    ThanxHook().get_scopes()
    assert 0.5 <= sleeps[0] <= 1.0


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_settings_are_refused_naming_the_setting(value):
    with pytest.raises(RewardsConnectionConfigError, match=r"extra.retry_after_max: must be a finite number"):
        TransportSettings.resolve("c", {"retry_after_max": value})
    with pytest.raises(RewardsInputError, match="retry_backoff must be a finite number"):
        TransportSettings(retry_backoff=math.nan)


SECRET = 'tok/é"x'


@pytest.mark.parametrize(
    "echo",
    [SECRET, json.dumps(SECRET)[1:-1], json.dumps(SECRET).replace("/", "\\/")[1:-1], 'tok\\/\\u00E9\\"x', repr(SECRET)],
)
def test_scrub_catches_the_secret_in_every_escaped_form(echo):
    assert scrub(f"bad key {echo} here", (f"{SECRET}\n",)) in ("bad key *** here", "bad key '***' here")


def test_a_vendor_echo_with_escaped_slashes_is_scrubbed_after_decoding(thanx_conn, monkeypatch, requests_mock):
    token = "abc/def-DO-NOT-LEAK"
    set_connection(monkeypatch, "thanx_default", conn_type="thanx", host=THANX_URL, login="c", password=f"{token}\n")
    requests_mock.get(SCOPES_URL, status_code=401, text=json.dumps({"message": f"bad {token}"}).replace("/", "\\/"))
    ok, message = ThanxHook().test_connection()
    assert not ok
    assert token not in message
    assert "bad ***" in message
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {token}"


def test_credentials_are_stripped_and_inner_control_characters_refused_unquoted():
    assert ThanxAuth(" client\n", "tok\n")._headers["Authorization"] == "Bearer tok"
    with pytest.raises(RewardsInputError, match=r"Access Token .* non-printable") as info:
        ThanxAuth("client", "to\nken-SECRET")
    assert "SECRET" not in str(info.value)
    with pytest.raises(RewardsInputError, match="Secret key"):
        HPGamesSignatureAuth(R1, "sec\tret")


def test_a_login_that_looks_like_a_secret_is_never_shown():
    swapped = HPGamesSignatureAuth("hpgames-secret-in-login", R1)
    assert "secret-in-login" not in repr(swapped)
    assert scrub("merchant hpgames-secret-in-login unknown", swapped.secrets) == "merchant *** unknown"
    assert "client-token-abcdef" not in repr(ThanxAuth("client-token-abcdef", "t"))
    assert (
        scrub("Thanx API GET /partner/scopes", ThanxAuth("c", THANX_TOKEN).secrets) == "Thanx API GET /partner/scopes"
    )
