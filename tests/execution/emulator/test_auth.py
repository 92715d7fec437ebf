"""Signed endpoints: API key header, HMAC-SHA256 signature and the timestamp window."""
from urllib.parse import urlencode

import ccxt
import pytest
import requests

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from execution.emulator.auth import sign, split_signature
from tests.emulator.fixtures import usdm_client

KEYS = {"X-MBX-APIKEY": DEFAULT_API_KEY}


def signed_get(emulator: Emulator, path: str, params: dict, *, headers=KEYS, secret=DEFAULT_API_SECRET):
    query = urlencode(params)
    return requests.get(f"{emulator.url}{path}?{query}&signature={sign(secret, query)}", headers=headers,
                        timeout=5)


def now_params(emulator: Emulator, **extra) -> dict:
    return {"timestamp": emulator.venue.now_ms(), **extra}


@pytest.mark.parametrize(("headers", "secret", "status", "code"), [
    ({}, DEFAULT_API_SECRET, 401, -2014),                       # no key header
    ({"X-MBX-APIKEY": "someone-else"}, DEFAULT_API_SECRET, 401, -2015),  # unknown key
    (KEYS, "wrong-secret", 400, -1022),                         # signed with another secret
])
def test_signed_endpoint_refuses_bad_credentials(trading_emulator, headers, secret, status, code):
    reply = signed_get(trading_emulator, "/fapi/v3/account", now_params(trading_emulator), headers=headers,
                       secret=secret)

    assert (reply.status_code, reply.json()["code"]) == (status, code)


@pytest.mark.parametrize(("offset_ms", "recv_window", "accepted"), [
    (0, None, True),
    (-4_000, None, True),     # within the default 5 s window
    (-6_000, None, False),
    (-6_000, 10_000, True),
    (2_000, None, False),     # more than 1 s ahead of the server clock
])
def test_timestamp_outside_recv_window_is_refused(trading_emulator, offset_ms, recv_window, accepted):
    params = {"timestamp": trading_emulator.venue.now_ms() + offset_ms}
    if recv_window:
        params["recvWindow"] = recv_window

    reply = signed_get(trading_emulator, "/fapi/v2/balance", params)

    assert reply.status_code == (200 if accepted else 400)
    if not accepted:
        assert reply.json() == {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}


def test_signature_over_body_of_post_is_checked(trading_emulator):
    body = urlencode(now_params(trading_emulator, symbol="BTCUSDT", leverage=3))
    headers = {**KEYS, "Content-Type": "application/x-www-form-urlencoded"}

    good = requests.post(f"{trading_emulator.url}/fapi/v1/leverage", data=f"{body}&signature="
                         f"{sign(DEFAULT_API_SECRET, body)}", headers=headers, timeout=5)
    bad = requests.post(f"{trading_emulator.url}/fapi/v1/leverage", data=f"{body}&signature={'0' * 64}",
                        headers=headers, timeout=5)

    assert good.json()["leverage"] == 3
    assert bad.json()["code"] == -1022


def test_public_endpoint_needs_no_key(trading_emulator):
    reply = requests.get(f"{trading_emulator.url}/fapi/v1/time", timeout=5)

    assert set(reply.json()) == {"serverTime"}


def test_ccxt_with_wrong_secret_raises_authentication_error(trading_emulator):
    client = usdm_client(trading_emulator, secret="not-the-secret")

    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client.fetch_balance()


def test_ccxt_behind_clock_raises_invalid_nonce():
    with Emulator(clock=lambda: 1_000_000_000_000) as emulator:  # the venue clock is in 2001
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            usdm_client(emulator).fetch_balance()


def test_configured_key_pairs_replace_the_default():
    with Emulator(config=EmulatorConfig(api_keys={"k1": "s1"})) as emulator:
        refused = signed_get(emulator, "/fapi/v2/balance", now_params(emulator))
        accepted = signed_get(emulator, "/fapi/v2/balance", now_params(emulator), headers={"X-MBX-APIKEY": "k1"},
                              secret="s1")

    assert (refused.json()["code"], accepted.status_code) == (-2015, 200)


def test_split_signature_keeps_the_rest_in_order():
    assert split_signature("a=1&signature=ff&b=2") == ("a=1&b=2", "ff")
