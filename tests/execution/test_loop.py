"""The execution loop ticking against the local emulator on a hand-driven clock."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from execution.brokers.ccxt import CcxtBroker
from execution.loop import ExecutionLoop, LeaseLost
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.safety import EngineAlreadyRunning, engine_lease_acquire
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def loop(trading_emulator, db):
    client = usdm_client(trading_emulator, timeout_ms=2_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    calls = []
    engine = ExecutionLoop(account, broker, "engine-1", reconcile=lambda **kw: calls.append(kw["trigger"]))
    return trading_emulator, engine, calls


def _naked_long(engine) -> Position:
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    intent = OrderIntent(make_intent_id("loop"), "entry", instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_place(account=engine.account, instrument=instrument, intent=intent, broker=engine.broker,
                           reference_price=D("60000"), now=NOW)
    return Position.objects.create(
        account=engine.account, instrument=instrument, side="LONG", open_key=instrument.pk, quantity=D("0.010"),
        initial_quantity=D("0.010"), entry_price=order.average_price, stop_price=D("59000.0"),
        target_price=D("62000.0"), take_profits=[{"price": "62000.0", "share": "1", "filled": False}], opened_at=NOW)


def test_loop_start_reconciles_and_a_second_engine_refuses(loop):
    _, engine, calls = loop

    engine.start(NOW)

    assert calls == ["startup"]
    with pytest.raises(EngineAlreadyRunning):
        ExecutionLoop(engine.account, engine.broker, "engine-2").start(NOW + timedelta(seconds=1))


def test_loop_tick_protects_a_position_without_a_stop(loop):
    _, engine, _ = loop
    engine.start(NOW)
    position = _naked_long(engine)

    report = engine.tick(NOW + timedelta(seconds=1))

    assert report.verified == {position.pk: "ok"} and not report.errors
    stops = [o for o in engine.broker.open_orders("BTCUSDT") if o.type == "stop_market"]
    assert [(s.quantity, s.trigger_price) for s in stops] == [(D("0.010"), D("59000.0"))]


def test_loop_reconciles_every_thirty_seconds(loop):
    _, engine, calls = loop
    engine.start(NOW)

    for seconds in range(2, 62, 2):
        engine.tick(NOW + timedelta(seconds=seconds))

    assert calls == ["startup", "periodic", "periodic"]


def test_loop_resolves_an_order_of_unknown_outcome(loop):
    emulator, engine, calls = loop
    engine.start(NOW)
    emulator.timeout_before_apply("/fapi/v1/order", stall_s=3.0, method="POST")
    engine.broker.exchange.timeout = 1_000
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    intent = OrderIntent(make_intent_id("unknown"), "entry", instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_place(account=engine.account, instrument=instrument, intent=intent, broker=engine.broker,
                           reference_price=D("60000"), now=NOW)
    before = order.status

    reports = [engine.tick(NOW + timedelta(seconds=s)) for s in (2, 4)]

    order.refresh_from_db()
    assert before == "unknown" and [r.resolved for r in reports] == [1, 1]
    # The resend filled at the 4 s tick: reconciliation ran in that tick, not 30 s later.
    assert [r.reconciled for r in reports] == [False, True] and calls == ["startup", "periodic"]
    assert order.status == "filled" and order.resent_at is not None
    assert [p.quantity for p in engine.broker.positions()] == [D("0.010")]


def test_loop_stops_when_another_engine_took_the_account_over(loop):
    _, engine, _ = loop
    engine.start(NOW)
    engine_lease_acquire(account=engine.account, holder="engine-2", now=NOW + timedelta(seconds=31))

    with pytest.raises(LeaseLost, match="taken over"):
        engine.tick(NOW + timedelta(seconds=32))
