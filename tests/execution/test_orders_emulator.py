"""The order manager end to end: CcxtBroker and the real ccxt client against the local USD-M emulator."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from execution.brokers.ccxt import CcxtBroker
from execution.models import Account, Fill, Order
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place, order_resolve
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PRICE = D("60000")


@pytest.fixture
def venue(trading_emulator, db):
    """Return (emulator, broker, account, instrument): a keyed ccxt client with a short timeout."""
    client = usdm_client(trading_emulator, timeout_ms=1_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    return trading_emulator, broker, account, instrument


def _place(venue, leg="entry", type_="market", side="buy", quantity=D("0.010"), trigger=None, reduce_only=False,
           now=NOW, intent_id=None):
    emulator, broker, account, instrument = venue
    intent = OrderIntent(intent_id or make_intent_id("e2e", leg), leg, instrument.symbol, side, type_, quantity,
                         trigger_price=trigger, reduce_only=reduce_only)
    return order_place(account=account, instrument=instrument, intent=intent, broker=broker, reference_price=PRICE,
                       now=now)


def _venue_orders(emulator) -> int:
    return len([p for p in emulator.params("/fapi/v1/order") if p.get("newClientOrderId")])


def test_market_entry_fills_on_the_venue_and_books_its_trades(venue):
    emulator, broker, _, _ = venue

    order, sent = _place(venue)

    assert sent and order.status == "filled" and order.filled_quantity == D("0.010")
    fills = list(Fill.objects.filter(order=order))
    assert len(fills) == 1 and fills[0].fee_usdt > 0
    assert [p.quantity for p in broker.positions()] == [D("0.010")]


def test_stop_goes_to_the_algo_book_and_is_seen_only_with_the_trigger_flag(venue):
    emulator, broker, _, _ = venue
    _place(venue)

    stop, _ = _place(venue, leg="sl", type_="stop_market", side="sell", trigger=D("58000"), reduce_only=True)

    assert stop.status == "accepted" and stop.conditional
    sent = emulator.params("/fapi/v1/algoOrder")[-1]
    assert (sent["type"], sent["workingType"], sent["clientAlgoId"]) == ("STOP_MARKET", "MARK_PRICE",
                                                                       stop.client_order_id)
    listed = broker.open_orders("BTCUSDT")
    assert [(o.client_order_id, o.conditional) for o in listed] == [(stop.client_order_id, True)]


def test_stop_triggers_on_the_venue_and_the_query_books_the_close(venue):
    emulator, broker, _, _ = venue
    _place(venue)
    stop, _ = _place(venue, leg="sl", type_="stop_market", side="sell", trigger=D("58000"), reduce_only=True)

    emulator.set_price("BTCUSDT", D("57900"))
    stop = order_resolve(order=stop, broker=broker, now=NOW + timedelta(seconds=5), force=True)

    assert stop.status == "filled" and stop.filled_quantity == D("0.010")
    assert Fill.objects.filter(order=stop).count() == 1
    assert broker.positions() == []


def test_timeout_after_the_venue_applied_the_entry_is_resolved_without_a_second_order(venue):
    emulator, _, _, _ = venue
    emulator.timeout_after_apply("/fapi/v1/order", stall_s=2.0, method="POST")

    order, _ = _place(venue)

    assert order.status == "filled" and Fill.objects.filter(order=order).count() == 1
    assert _venue_orders(emulator) == 1


def test_timeout_before_the_venue_saw_the_entry_is_resent_once_with_the_same_id(venue):
    emulator, broker, _, _ = venue
    emulator.timeout_before_apply("/fapi/v1/order", stall_s=2.0, method="POST")

    order, _ = _place(venue)
    for seconds in (2, 4):
        order = order_resolve(order=order, broker=broker, now=NOW + timedelta(seconds=seconds))

    assert order.status == "filled" and order.resent_at is not None
    sent_ids = [p["newClientOrderId"] for p in emulator.params("/fapi/v1/order") if p.get("newClientOrderId")]
    assert sent_ids == [order.client_order_id] * 2  # two sends, one id
    assert [p.quantity for p in broker.positions()] == [D("0.010")]  # one order reached the book


def test_same_intent_placed_a_hundred_times_reaches_the_venue_once(venue):
    emulator, broker, _, _ = venue

    sent = [_place(venue, intent_id="f" * 20)[1] for _ in range(100)]

    assert sent.count(True) == 1 and Order.objects.count() == 1
    assert _venue_orders(emulator) == 1 and [p.quantity for p in broker.positions()] == [D("0.010")]


def test_stop_past_the_price_is_refused_as_would_trigger_immediately(venue):
    from execution.brokers.base import WouldTriggerImmediately

    _place(venue)

    with pytest.raises(WouldTriggerImmediately):
        _place(venue, leg="sl", type_="stop_market", side="sell", trigger=D("61000"), reduce_only=True)

    assert Order.objects.get(leg="sl").status == "rejected"


def test_ccxt_broker_market_price_reads_the_venue_ticker(trading_emulator):
    from execution.brokers.ccxt import CcxtBroker
    from tests.emulator.fixtures import usdm_client

    trading_emulator.venue.set_price("BTCUSDT", D("61234.5"))
    broker = CcxtBroker(usdm_client(trading_emulator))

    assert broker.market_price("BTCUSDT") == D("61234.5")
