"""Exchange-side protection against the local emulator: one stop of the full size, or flat."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.models import AuditRecord
from execution.brokers.ccxt import CcxtBroker
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.protective import protection_place, stop_verify
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LADDER = [{"price": "61000.0", "share": "0.4"}, {"price": "62000.0", "share": "0.4"},
          {"price": "63000.0", "share": "0.2"}]


@pytest.fixture
def long_position(trading_emulator, db):
    """Return (emulator, broker, position): a 0.010 BTC long filled on the venue, not yet protected."""
    client = usdm_client(trading_emulator, timeout_ms=2_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    intent = OrderIntent(make_intent_id("entry"), "entry", instrument.symbol, "buy", "market", D("0.010"))
    entry, _ = order_place(account=account, instrument=instrument, intent=intent, broker=broker,
                           reference_price=D("60000"), now=NOW)
    position = Position.objects.create(
        account=account, instrument=instrument, side="LONG", open_key=instrument.pk, quantity=D("0.010"),
        initial_quantity=D("0.010"), entry_price=entry.average_price, stop_price=D("59000.0"),
        target_price=D("63000.0"), take_profits=[{**t, "filled": False} for t in LADDER], opened_at=NOW)
    return trading_emulator, broker, position


def _venue_stops(broker):
    return [o for o in broker.open_orders("BTCUSDT") if o.type == "stop_market"]


def test_protection_places_one_full_stop_and_the_ladder_once(long_position):
    emulator, broker, position = long_position

    first = protection_place(position=position, broker=broker, now=NOW)
    again = protection_place(position=position, broker=broker, now=NOW + timedelta(seconds=1))

    assert [o.client_order_id for o in first] == [o.client_order_id for o in again]
    stops = _venue_stops(broker)
    assert [(s.quantity, s.trigger_price, s.reduce_only, s.conditional) for s in stops] == [
        (D("0.010"), D("59000.0"), True, True)]
    targets = sorted((o.trigger_price, o.quantity) for o in broker.open_orders("BTCUSDT") if o.type != "stop_market")
    assert targets == [(D("61000.0"), D("0.004")), (D("62000.0"), D("0.004")), (D("63000.0"), D("0.002"))]
    assert emulator.params("/fapi/v1/algoOrder")[0]["workingType"] == "MARK_PRICE"
    assert stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=6)).status == "ok"


def test_stop_verify_waits_five_seconds_then_flattens_a_naked_position(long_position):
    emulator, broker, position = long_position

    early = stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=4))
    late = stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=5))

    assert early.status == "waiting" and late.status == "closed"
    assert broker.positions() == []
    assert Order.objects.get(leg="exit").reduce_only
    assert AuditRecord.objects.filter(body__action="flatten").exists()


def test_stop_verify_flattens_when_the_stop_is_the_wrong_size(long_position):
    _, broker, position = long_position
    half = OrderIntent(make_intent_id("half"), "sl", position.instrument.symbol, "sell", "stop_market", D("0.005"),
                       trigger_price=D("59000.0"), reduce_only=True)
    order_place(account=position.account, instrument=position.instrument, intent=half, broker=broker,
                reference_price=D("59000"), now=NOW)

    result = stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=10))

    assert result.status == "closed" and "0.005" in result.detail
    assert broker.positions() == [] and _venue_stops(broker) == []


def test_stop_verify_cancels_a_duplicate_stop(long_position):
    _, broker, position = long_position
    protection_place(position=position, broker=broker, now=NOW)
    extra = OrderIntent(make_intent_id("extra"), "sl", position.instrument.symbol, "sell", "stop_market", D("0.010"),
                        trigger_price=D("58500.0"), reduce_only=True)
    order_place(account=position.account, instrument=position.instrument, intent=extra, broker=broker,
                reference_price=D("58500"), now=NOW)

    result = stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=6))

    assert result.status == "ok" and len(_venue_stops(broker)) == 1


def test_protection_stop_already_past_the_price_closes_the_position_now(long_position):
    emulator, broker, position = long_position
    emulator.set_price("BTCUSDT", D("58900"))

    protection_place(position=position, broker=broker, now=NOW)

    assert broker.positions() == []
    assert Order.objects.get(leg="sl").status == "rejected"
    assert Order.objects.get(leg="exit").status == "filled"


def test_stop_verify_accepts_a_larger_stop_left_from_before_a_partial_exit(long_position):
    _, broker, position = long_position
    protection_place(position=position, broker=broker, now=NOW)
    Position.objects.filter(pk=position.pk).update(quantity=D("0.006"))  # TP1 closed 0.004 on the books

    result = stop_verify(position=position, broker=broker, now=NOW + timedelta(seconds=10))

    assert result.status == "ok" and "resize due" in result.detail
    assert [p.quantity for p in broker.positions()] == [D("0.010")]  # nothing was flattened
