from __future__ import annotations

import json

import requests

from airflow_provider_rewards.hooks.auth import (
    USER_AGENT,
    HPGamesSignatureAuth,
    ThanxAuth,
    epoch_millis,
    hpgames_signature,
)
from tests.conftest import FROZEN_MS, HPGAMES_MERCHANT, HPGAMES_SECRET, THANX_TOKEN

DOCS_VECTOR = "9ed3d547f9a672ecd4884304e859af84263410d613ff2a2bb7d70a8221d7e544"


def prepared(body: bytes | None) -> requests.PreparedRequest:
    return requests.Request("POST", "https://x.test/p", data=body).prepare()


def test_signature_reproduces_the_documented_vector():
    assert hpgames_signature("secretkey", HPGAMES_MERCHANT, 1709289932725) == DOCS_VECTOR


def test_epoch_millis_is_milliseconds():
    assert 1_700_000_000_000 < epoch_millis() < 10_000_000_000_000


def test_hpgames_auth_prepends_signed_fields_to_the_payload(frozen_clock):
    request = HPGamesSignatureAuth(HPGAMES_MERCHANT, "secretkey")(prepared(b'{"ids":["a","b"]}'))
    expected = (
        f'{{"merchantId":"{HPGAMES_MERCHANT}","timestamp":{FROZEN_MS},"hash":"{DOCS_VECTOR}","ids":["a","b"]}}'
    ).encode()
    assert request.body == expected
    assert request.headers["Content-Length"] == str(len(expected))
    assert request.headers["Content-Type"] == "application/json"


def test_hpgames_auth_signs_an_empty_payload(frozen_clock):
    request = HPGamesSignatureAuth(HPGAMES_MERCHANT, "secretkey")(prepared(b"{}"))
    assert json.loads(request.body) == {"merchantId": HPGAMES_MERCHANT, "timestamp": FROZEN_MS, "hash": DOCS_VECTOR}


def test_hpgames_auth_takes_a_fresh_timestamp_per_attempt(frozen_clock):
    auth = HPGamesSignatureAuth(HPGAMES_MERCHANT, HPGAMES_SECRET)
    first = json.loads(auth(prepared(b"{}")).body)
    frozen_clock.advance(1500)
    second = json.loads(auth(prepared(b"{}")).body)
    assert second["timestamp"] == first["timestamp"] + 1500
    assert second["hash"] == hpgames_signature(HPGAMES_SECRET, HPGAMES_MERCHANT, second["timestamp"])
    assert second["hash"] != first["hash"]


def test_thanx_auth_sets_every_documented_header():
    request = ThanxAuth("client-1", THANX_TOKEN)(prepared(None))
    assert {k: request.headers[k] for k in ThanxAuth("c", "t")._headers} == {
        "Authorization": f"Bearer {THANX_TOKEN}",
        "X-ClientId": "client-1",
        "Accept-Version": "v4.0",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    assert USER_AGENT.startswith("airflow-provider-rewards/")


def test_auth_objects_never_show_their_secret():
    assert THANX_TOKEN not in repr(ThanxAuth("client-1", THANX_TOKEN))
    assert HPGAMES_SECRET not in repr(HPGamesSignatureAuth(HPGAMES_MERCHANT, HPGAMES_SECRET))
    assert HPGAMES_SECRET not in str(HPGamesSignatureAuth(HPGAMES_MERCHANT, HPGAMES_SECRET))
