"""The paper venue over the database: resting limits, cancels, funding, mark triggers and restarts."""
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.selectors import trading_config_get
from execution.brokers.base import DuplicateClientId, OrderNotFound
from execution.brokers.paper import LadderExit
from execution.models import Account, Fill, FundingPayment, Order, Position
from execution.oms import OrderIntent
from execution.orders import order_create_pending, order_place
from execution.paper_venue import (PaperVenue, paper_exit_bars, paper_funding_apply, paper_funding_settle,
                                   paper_orders_match, position_liquidation)
from execution.services import position_reduce
from market.models import Candle, DerivativesKind, DerivativesSample
from market.services import instrument_ensure

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def setup(db):
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    return account, instrument


@pytest.fixture
def venue(setup):
    return PaperVenue(setup[0], trading_config_get(), clock=lambda: T0 + 10 * MINUTE)


def candle(instrument, open_time, o, h, l, c, volume="10", timeframe="1m"):
    return Candle.objects.create(instrument=instrument, timeframe=timeframe, open_time=open_time, open=D(o),
                                 high=D(h), low=D(l), close=D(c), volume=D(volume))


def place(setup, venue, leg="entry", type_="limit", side="buy", price="60000", quantity="0.500", reference="60100",
          now=T0):
    account, instrument = setup
    intent = OrderIntent("a1b2c3d4e5f6a7b8c9d0", leg, instrument.symbol, side, type_, D(quantity),
                         price=D(price) if price else None)
    order, _ = order_place(account=account, instrument=instrument, intent=intent, broker=venue,
                           reference_price=D(reference), now=now)
    return order


def open_long(setup, quantity="0.5", entry="60000", opened_at=T0):
    account, instrument = setup
    return Position.objects.create(account=account, instrument=instrument, side="LONG", open_key=instrument.pk,
                                   quantity=D(quantity), initial_quantity=D(quantity), entry_price=D(entry),
                                   stop_price=D("59000"), target_price=D("62000"), opened_at=opened_at)


# -- orders ----------------------------------------------------------------------------------------

def test_paper_venue_limit_rests_as_its_order_row(setup, venue):
    order = place(setup, venue)

    assert (order.status, order.filled_quantity) == ("accepted", 0)
    assert order.exchange_order_id == f"paper-{order.client_order_id}"
    assert [o.client_order_id for o in venue.open_orders("BTCUSDT")] == [order.client_order_id]


def test_paper_venue_post_only_crossing_limit_expires(setup, venue):
    order = place(setup, venue, type_="limit_maker", price="60200")

    assert order.status == "expired"
    assert venue.open_orders() == []


def test_paper_venue_market_order_fills_at_reference_with_slippage_and_taker_fee(setup, venue):
    order = place(setup, venue, type_="market", price=None, quantity="0.010")

    fill = order.fills.get()
    # 60 100 * (1 + 1 bps) = 60 106.01, on the 0.1 tick against the buyer
    assert (order.status, fill.price, fill.fee_usdt) == ("filled", D("60106.1"), D("0.24042440"))


def test_paper_venue_resend_of_market_order_without_price_uses_last_close(setup, venue):
    account, instrument = setup
    candle(instrument, T0, "60000", "60100", "59900", "60050")
    intent = OrderIntent("a1b2c3d4e5f6a7b8c9d0", "entry", instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_create_pending(account=account, instrument=instrument, intent=intent, decision=None, now=T0)

    report = venue.submit(intent, reference_price=D(0), ts_ms=0, tick_size=instrument.tick_size)

    assert report.fills[0].price == D("60056.1")   # 60 050 plus 1 bps, rounded up to the tick


def test_paper_venue_submit_of_acknowledged_order_raises_duplicate(setup, venue):
    order = place(setup, venue, type_="market", price=None, quantity="0.010")

    with pytest.raises(DuplicateClientId, match="-4116"):
        venue.submit(OrderIntent(order.intent_id, "entry", order.instrument.symbol, "buy", "market", D("0.010")),
                     reference_price=D("60000"), ts_ms=0)


def test_paper_orders_match_fills_over_bars_through_price_at_limit_maker(setup, venue):
    account, instrument = setup
    order = place(setup, venue)
    candle(instrument, T0 - MINUTE, "59000", "59100", "58000", "59000", "100")   # before the order: ignored
    candle(instrument, T0, "60100", "60200", "60050", "60100")                   # above the price
    candle(instrument, T0 + MINUTE, "60100", "60200", "60000", "60100")          # touch only: the queue
    candle(instrument, T0 + 2 * MINUTE, "60050", "60100", "59990", "60000", "3")  # 10 % of 3 = 0.3
    candle(instrument, T0 + 3 * MINUTE, "60000", "60050", "59900", "59950", "10")  # the remaining 0.2

    first = paper_orders_match(account=account, instrument=instrument, now=T0 + 3 * MINUTE, participation=D("0.1"))
    second = paper_orders_match(account=account, instrument=instrument, now=T0 + 4 * MINUTE, participation=D("0.1"))
    again = paper_orders_match(account=account, instrument=instrument, now=T0 + 4 * MINUTE, participation=D("0.1"))

    order.refresh_from_db()
    assert ([o.status for o in first], [o.status for o in second], again) == (
        ["partially_filled"], ["filled"], [])
    fills = list(order.fills.order_by("ts").values_list("price", "quantity", "fee_usdt", "liquidity"))
    assert fills == [(D("60000"), D("0.3"), D("3.6"), "maker"), (D("60000"), D("0.2"), D("2.4"), "maker")]
    assert (order.filled_quantity, order.average_price) == (D("0.5"), D("60000"))


def test_paper_orders_match_rerun_after_progress_reset_books_nothing_twice(setup, venue):
    account, instrument = setup
    order = place(setup, venue)
    candle(instrument, T0, "60050", "60100", "59990", "60000", "3")
    paper_orders_match(account=account, instrument=instrument, now=T0 + MINUTE, participation=D("0.1"))
    Order.objects.filter(pk=order.pk).update(last_checked_at=None)   # as if the progress write was lost

    paper_orders_match(account=account, instrument=instrument, now=T0 + MINUTE, participation=D("0.1"))

    order.refresh_from_db()
    assert (Fill.objects.filter(order=order).count(), order.filled_quantity) == (1, D("0.3"))


def test_paper_venue_restart_sees_the_same_book_positions_and_balance(setup, venue):
    account, instrument = setup
    order = place(setup, venue)
    candle(instrument, T0, "60050", "60100", "59990", "60100", "3")
    paper_orders_match(account=account, instrument=instrument, now=T0 + MINUTE, participation=D("0.1"))
    open_long(setup, "0.3", "60000")

    restarted = PaperVenue(Account.objects.get(name="paper"), trading_config_get(), clock=lambda: T0 + 10 * MINUTE)

    assert [(o.client_order_id, o.status, o.filled) for o in restarted.open_orders()] == [
        (order.client_order_id, "partially_filled", D("0.3"))]
    positions = [(p.symbol, p.quantity, p.entry_price, p.mark_price, p.unrealized_pnl_usdt)
                 for p in restarted.positions()]
    assert positions == [("BTCUSDT", D("0.3"), D("60000"), D("60100"), D("30"))]
    assert [(t.trade_id, t.quantity) for t in restarted.trades("BTCUSDT", 0)] == [
        (f"paper-{order.client_order_id}-{int(T0.timestamp() * 1000)}", D("0.3"))]
    balance = restarted.balance()
    # margin held: (0.3 * 60 000 position + 0.2 * 60 000 resting) / 3 = 10 000
    assert (balance.wallet_usdt, balance.unrealized_pnl_usdt, balance.available_usdt) == (
        D("10000"), D("30"), D("30"))


def test_paper_venue_trades_by_ccxt_symbol_and_since(setup, venue):
    order = place(setup, venue, type_="market", price=None, quantity="0.010")
    later_ms = int((T0 + MINUTE).timestamp() * 1000)

    assert [t.client_order_id for t in venue.trades("BTC/USDT:USDT", 0)] == [order.client_order_id]
    assert (venue.trades("BTCUSDT", later_ms), venue.trades("ETHUSDT", 0)) == ([], [])


def test_paper_venue_cancel_books_closed_bar_fills_first_and_keeps_filled(setup, venue):
    account, instrument = setup
    order = place(setup, venue)
    candle(instrument, T0, "60050", "60100", "59990", "60000", "3")

    result = venue.cancel(order.client_order_id, "BTCUSDT")

    order.refresh_from_db()
    assert (result.status, result.filled) == ("canceled", D("0.3"))
    assert (order.status, order.filled_quantity) == ("canceled", D("0.3"))
    assert venue.open_orders() == []
    assert paper_orders_match(account=account, instrument=instrument, now=T0 + 5 * MINUTE, participation=D("1")) == []


def test_paper_venue_cancel_of_filled_order_returns_final_state(setup, venue):
    order = place(setup, venue, type_="market", price=None, quantity="0.010")

    assert venue.cancel(order.client_order_id, "BTCUSDT").status == "filled"


@pytest.mark.parametrize("call, code", [("cancel", "-2011"), ("fetch_order", "-2013")])
def test_paper_venue_unknown_order_raises_not_found(venue, call, code):
    with pytest.raises(OrderNotFound, match=code):
        getattr(venue, call)("tb-nope-entry", "BTCUSDT")


def test_paper_venue_order_never_answered_is_not_found(setup, venue):
    account, instrument = setup
    intent = OrderIntent("a1b2c3d4e5f6a7b8c9d0", "entry", instrument.symbol, "buy", "market", D("0.010"))
    order_create_pending(account=account, instrument=instrument, intent=intent, decision=None, now=T0)

    with pytest.raises(OrderNotFound, match="-2013"):
        venue.fetch_order(intent.client_order_id, "BTCUSDT")


def test_paper_venue_fill_at_serves_position_reduce(setup, venue):
    position = open_long(setup)

    closed = position_reduce(position=position, broker=venue, exit_=LadderExit("sl", "stop", D("59000"), D("0.5")),
                             now=T0 + MINUTE)

    # 59 000 less 1 bps = 58 994.1; loss 0.5 * 1 005.9 = 502.95 and the taker fee 11.79882
    assert (closed.status, closed.exit_price, closed.realized_pnl_usdt) == ("closed", D("58994.1"), D("-514.74882"))


# -- funding ---------------------------------------------------------------------------------------

EIGHT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def funding_rate(instrument, at, rate, mark=None):
    DerivativesSample.objects.create(instrument=instrument, kind=DerivativesKind.FUNDING, period="8h", ts=at,
                                     funding_rate=D(rate), mark_price=D(mark) if mark else None)


def mark_close(instrument, open_time, mark, period="1m"):
    DerivativesSample.objects.create(instrument=instrument, kind=DerivativesKind.MARK_INDEX, period=period,
                                     ts=open_time, mark_price=D(mark))


def test_paper_funding_apply_long_pays_positive_rate_at_mark(setup):
    account, instrument = setup
    position = open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT + timedelta(milliseconds=1), "0.0001")   # Binance stamps a few ms late
    mark_close(instrument, EIGHT - MINUTE, "60100")                          # the mark at 08:00
    mark_close(instrument, EIGHT, "61000")                                   # closes at 08:01: too late

    booked = paper_funding_apply(account=account, now=EIGHT + timedelta(minutes=15))

    position.refresh_from_db()
    account.refresh_from_db()
    assert [(p.ts, p.rate, p.amount_usdt, p.source) for p in booked] == [(EIGHT, D("0.0001"), D("-3.005"), "paper")]
    assert (position.funding_usdt, position.realized_pnl_usdt, account.balance_usdt) == (
        D("-3.005"), D("-3.005"), D("9996.995"))


def test_paper_funding_apply_rerun_books_nothing_twice(setup):
    account, instrument = setup
    open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT, "0.0001", mark="60100")

    first = paper_funding_apply(account=account, now=EIGHT + MINUTE)
    second = paper_funding_apply(account=account, now=EIGHT + 2 * MINUTE)

    account.refresh_from_db()
    assert (len(first), second, FundingPayment.objects.count(), account.balance_usdt) == (1, [], 1, D("9996.995"))


def test_paper_funding_settle_twice_for_the_same_time_books_once(setup):
    account, instrument = setup
    position = open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT, "0.0001", mark="60100")

    first = paper_funding_settle(position=position, at=EIGHT)
    second = paper_funding_settle(position=Position.objects.get(pk=position.pk), at=EIGHT)

    assert (first.amount_usdt, second, position.funding_usdt) == (D("-3.005"), None, D("-3.005"))


def test_paper_funding_apply_short_receives_and_settlement_mark_comes_first(setup):
    account, instrument = setup
    position = open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    Position.objects.filter(pk=position.pk).update(side="SHORT")
    funding_rate(instrument, EIGHT, "0.0001", mark="60100")
    mark_close(instrument, EIGHT - MINUTE, "70000")

    booked = paper_funding_apply(account=account, now=EIGHT + MINUTE)

    assert [p.amount_usdt for p in booked] == [D("3.005")]


def test_paper_funding_apply_marks_with_last_close_without_mark_samples(setup):
    account, instrument = setup
    open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT, "-0.0002")
    candle(instrument, EIGHT - timedelta(minutes=15), "59900", "60000", "59800", "59950", timeframe="15m")

    booked = paper_funding_apply(account=account, now=EIGHT + MINUTE)

    assert [p.amount_usdt for p in booked] == [D("5.995")]   # 0.5 * 59 950 * 0.0002, received


def test_paper_funding_apply_missing_rate_skips_logs_and_books_it_once_it_arrives(setup, caplog):
    account, instrument = setup
    open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT - timedelta(hours=8), "0.0005", mark="60000")   # an older settlement's rate
    funding_rate(instrument, EIGHT + timedelta(hours=8), "0.0001", mark="60000")

    with caplog.at_level(logging.WARNING, logger="execution.paper_venue"):
        booked = paper_funding_apply(account=account, now=EIGHT + timedelta(hours=8, minutes=1))
    funding_rate(instrument, EIGHT, "0.0002", mark="60000")
    late = paper_funding_apply(account=account, now=EIGHT + timedelta(hours=8, minutes=2))

    assert [p.ts for p in booked] == [EIGHT + timedelta(hours=8)]
    assert "no stored funding rate" in caplog.text
    assert [(p.ts, p.amount_usdt) for p in late] == [(EIGHT, D("-6"))]


def test_paper_funding_apply_skips_venue_accounts(setup):
    account, _ = setup
    Account.objects.filter(pk=account.pk).update(broker=Account.Broker.TESTNET)
    account.refresh_from_db()
    open_long(setup, opened_at=EIGHT - timedelta(hours=1))

    assert paper_funding_apply(account=account, now=EIGHT + MINUTE) == []


def test_paper_venue_funding_payments_reports_booked_funding(setup, venue):
    account, instrument = setup
    open_long(setup, opened_at=EIGHT - timedelta(hours=1))
    funding_rate(instrument, EIGHT, "0.0001", mark="60100")
    payment = paper_funding_apply(account=account, now=EIGHT + MINUTE)[0]

    reports = venue.funding_payments("BTCUSDT", 0)

    assert [(r.symbol, r.ts_ms, r.amount_usdt, r.rate, r.venue_id) for r in reports] == [
        ("BTCUSDT", int(EIGHT.timestamp() * 1000), D("-3.005"), D("0.0001"), f"paper-{payment.pk}")]


# -- exit bars and liquidation ---------------------------------------------------------------------

def test_paper_exit_bars_trigger_range_from_mark_closes_in_the_bar(setup):
    _, instrument = setup
    position = open_long(setup)
    candle(instrument, T0, "60000", "60100", "58900", "59500", timeframe="5m")            # a last-price wick
    candle(instrument, T0 + 5 * MINUTE, "59500", "59600", "59400", "59550", timeframe="5m")  # no mark samples
    for minute, mark in enumerate(["60010", "59800", "59300", "59400", "59450", "59520"]):
        mark_close(instrument, T0 + (minute - 1) * MINUTE, mark)      # closes at 10:00 ... 10:05

    mark_rows = paper_exit_bars(position=position, since=T0, now=T0 + 10 * MINUTE, working_type="MARK_PRICE")
    last_rows = paper_exit_bars(position=position, since=T0, now=T0 + 10 * MINUTE, working_type="CONTRACT_PRICE")

    assert [row[4:] for row in mark_rows] == [(D("60010"), D("59300")), (D("59600"), D("59400"))]
    assert [row[4:] for row in last_rows] == [(D("60100"), D("58900")), (D("59600"), D("59400"))]
    assert [row[:4] for row in mark_rows] == [row[:4] for row in last_rows]


def test_paper_exit_bars_after_checked_bar_and_closed_by_now_only(setup):
    _, instrument = setup
    position = open_long(setup)
    for minute in range(3):
        candle(instrument, T0 + minute * MINUTE, "60000", "60100", "59900", "60000")
    position.exits_checked_until = T0

    rows = paper_exit_bars(position=position, since=T0, now=T0 + 2 * MINUTE + timedelta(seconds=30))

    assert [row[0] for row in rows] == [T0 + MINUTE]


@pytest.mark.parametrize(
    "side, expected",
    [
        # 0.5 BTC at 60 000, 3x: margin 10 000, maintenance 0.4 %; rounded to the tick towards the entry
        ("LONG", D("40160.7")),    # 20 000 / (0.5 * 0.996) = 40 160.64...
        ("SHORT", D("79681.2")),   # 40 000 / (0.5 * 1.004) = 79 681.27...
    ],
)
def test_position_liquidation_isolated_at_max_leverage(setup, side, expected):
    account, _ = setup
    position = open_long(setup)
    position.side = side

    assert position_liquidation(position, account, trading_config_get()) == (expected, D("10000"))


def test_position_liquidation_margin_capped_by_wallet(setup):
    account, _ = setup
    account.balance_usdt = D("5000")
    position = open_long(setup)

    # margin 5 000: 25 000 / 0.498 = 50 200.80...
    assert position_liquidation(position, account, trading_config_get()) == (D("50200.9"), D("5000"))
