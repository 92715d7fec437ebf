"""Fixtures of the ccxt broker tests: a fake Binance behind ccxt's own session, and the broker on it."""
import pytest

from execution.brokers.ccxt import CcxtBroker
from tests.execution.brokers.test_ccxt_requests import NOW_MS, FakeVenue, binance_client


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def broker(venue, sleeps) -> CcxtBroker:
    return CcxtBroker(binance_client(venue), clock_ms=lambda: NOW_MS, sleep=sleeps.append)
