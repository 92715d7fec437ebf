"""Pytest fixtures for the local Binance USD-M emulator; register with pytest_plugins."""
from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import ccxt
import ccxt.pro
import pytest
from django.conf import settings

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator
from market.exchanges.client import rebase_urls
from tests.emulator.binance import BinanceEmulator

BTC_START_PRICE = Decimal("60000")
ETH_START_PRICE = Decimal("2500")


@pytest.fixture
def binance_emulator():
    """Yield a running emulator serving the real recordings of MARKET_DATA_DIR; its .url is the API host."""
    emulator = BinanceEmulator(Path(settings.MARKET_DATA_DIR)).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def closed_port_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens, so connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def emulator_state_file(tmp_path) -> Path:
    return tmp_path / "emulator.json"


@pytest.fixture
def trading_emulator(emulator_state_file):
    """Yield a running trading emulator (persisted to a temp file) at BTCUSDT 60000, ETHUSDT 2500."""
    emulator = Emulator(Path(settings.MARKET_DATA_DIR), state_file=emulator_state_file).start()
    emulator.set_price("BTCUSDT", BTC_START_PRICE)
    emulator.set_price("ETHUSDT", ETH_START_PRICE)
    yield emulator
    emulator.stop()


def usdm_client(emulator: Emulator, *, timeout_ms: int = 3_000, venue_errors: bool = True, pro: bool = False,
                secret: str = DEFAULT_API_SECRET):
    """Return an unchanged ccxt binanceusdm (or ccxt.pro) client whose API hosts are the emulator.

    ccxt picks Binance's USD-M error table by URL (https://fapi.binance.com/...), so on any other host
    codes such as -4116 or -2021 surface as plain ExchangeError. `venue_errors` merges that table into
    the client's default one, which is what it would use against the real venue.
    """
    exchange_class = ccxt.pro.binanceusdm if pro else ccxt.binanceusdm
    client = exchange_class({"apiKey": DEFAULT_API_KEY, "secret": secret, "timeout": timeout_ms,
                             "enableRateLimit": False})
    client.urls["api"] = rebase_urls(client.urls["api"], emulator.url)
    if pro:
        client.urls["api"]["ws"]["linear"] = emulator.ws_url
    if venue_errors:
        client.exceptions["exact"] = {**client.exceptions["exact"], **client.exceptions["linear"]["exact"]}
    return client


@pytest.fixture
def usdm(trading_emulator):
    """Return a keyed ccxt binanceusdm client with markets loaded, trading on `trading_emulator`."""
    client = usdm_client(trading_emulator)
    client.load_markets()
    return client
