"""Pytest fixtures for the local Binance USD-M emulator; register with pytest_plugins."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.conf import settings

from tests.emulator.binance import BinanceEmulator


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
