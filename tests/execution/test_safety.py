"""One engine per account, start-up assertions and the kill switch, against the local emulator."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.audit_services import audit_verify
from decisions.models import AuditRecord
from decisions.selectors import trading_config_get
from execution.brokers.ccxt import CcxtBroker
from execution.models import Account, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.protective import protection_place
from execution.safety import (EngineAlreadyRunning, Expectations, StartupCheckFailed, engine_lease_acquire,
                              engine_lease_release, engine_lease_renew, kill_switch, startup_check,
                              startup_problems)
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def account(db):
    return Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                  balance_usdt=D("10000"))


@pytest.fixture
def broker(trading_emulator):
    client = usdm_client(trading_emulator, timeout_ms=2_000)
    client.load_markets()
    return CcxtBroker(client, sleep=lambda s: None)


def test_engine_lease_second_engine_refuses_until_the_first_stops_or_dies(account):
    engine_lease_acquire(account=account, holder="engine-a", now=NOW)

    with pytest.raises(EngineAlreadyRunning, match="engine-a"):
        engine_lease_acquire(account=account, holder="engine-b", now=NOW + timedelta(seconds=10))
    assert engine_lease_renew(account=account, holder="engine-a", now=NOW + timedelta(seconds=20))
    with pytest.raises(EngineAlreadyRunning):
        engine_lease_acquire(account=account, holder="engine-b", now=NOW + timedelta(seconds=40))
    # engine-a dies: no renewal for 30 s, so the lease lapses and engine-b may start.
    engine_lease_acquire(account=account, holder="engine-b", now=NOW + timedelta(seconds=51))
    assert not engine_lease_renew(account=account, holder="engine-a", now=NOW + timedelta(seconds=52))
    engine_lease_release(account=account, holder="engine-b")
    engine_lease_acquire(account=account, holder="engine-c", now=NOW + timedelta(seconds=53))


def _now_ms(broker) -> int:
    return broker.server_time_ms()


def test_startup_check_passes_when_the_venue_matches(broker):
    broker.set_leverage("BTCUSDT", 3)
    broker.set_margin_mode("BTCUSDT", "cross")

    startup_check(broker=broker, expected=Expectations(leverage=3, symbols=("BTCUSDT",)), now_ms=_now_ms(broker))


def test_startup_check_names_every_difference(broker):
    broker.set_leverage("BTCUSDT", 10)
    broker.set_position_mode("hedge")

    problems = startup_problems(broker=broker, expected=Expectations(leverage=3, symbols=("BTCUSDT",)),
                                now_ms=_now_ms(broker) - 5_000)

    assert any("clock differs from the venue by" in p for p in problems)
    assert "position mode is hedge; the engine needs one-way" in problems
    assert "BTCUSDT leverage is 10x, configured 3x" in problems
    with pytest.raises(StartupCheckFailed, match="leverage is 10x"):
        startup_check(broker=broker, expected=Expectations(leverage=3, symbols=("BTCUSDT",)), now_ms=_now_ms(broker))


def test_startup_check_refuses_a_key_the_venue_rejects(trading_emulator):
    client = usdm_client(trading_emulator, timeout_ms=2_000, secret="not-the-secret")
    broker = CcxtBroker(client, sleep=lambda s: None)

    problems = startup_problems(broker=broker, expected=Expectations(leverage=3), now_ms=0)

    assert len(problems) == 1 and problems[0].startswith("the API key cannot read the futures account")


def test_kill_switch_cancels_ours_flattens_and_holds_safe(account, broker):
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    entry = OrderIntent(make_intent_id("kill"), "entry", instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_place(account=account, instrument=instrument, intent=entry, broker=broker,
                           reference_price=D("60000"), now=NOW)
    position = Position.objects.create(
        account=account, instrument=instrument, side="LONG", open_key=instrument.pk, quantity=D("0.010"),
        initial_quantity=D("0.010"), entry_price=order.average_price, stop_price=D("59000.0"),
        target_price=D("62000.0"), take_profits=[{"price": "62000.0", "share": "1", "filled": False}], opened_at=NOW)
    protection_place(position=position, broker=broker, now=NOW)
    broker.exchange.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 50000, {"clientOrderId": "manual-1"})

    report = kill_switch(account=account, broker=broker, actor="alice", now=NOW + timedelta(seconds=30))

    assert len(report.cancelled) == 2 and report.flattened == [position.pk] and not report.errors
    assert broker.positions() == []
    assert [o.client_order_id for o in broker.open_orders()] == ["manual-1"]  # not ours: left alone
    config = trading_config_get()
    assert (config.mode, config.paused) == ("SAFE", True)
    assert AuditRecord.objects.filter(kind="mode_change", actor="alice").exists()
    assert audit_verify().ok


def test_engine_lease_of_a_dead_engine_on_this_host_is_taken_over_at_once(account):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()[:24]}:{gone.stdout.strip()}:1:dead01"
    engine_lease_acquire(account=account, holder=dead, now=NOW)

    engine_lease_acquire(account=account, holder="engine-new", now=NOW + timedelta(seconds=1))

    with pytest.raises(EngineAlreadyRunning, match="engine-new"):
        engine_lease_acquire(account=account, holder="engine-third", now=NOW + timedelta(seconds=2))
