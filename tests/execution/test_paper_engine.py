"""The paper engine's cycle with the paper venue: resting limit entries, funding at the bar, liquidation."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from decisions.models import Decision
from decisions.selectors import trading_config_get
from execution.brokers.paper_model import liquidation_clearance_fee
from execution.models import Account, EquityPoint, Fill, FundingPayment, Order, Position
from execution.paper_venue import PaperVenue
from execution.selectors import closes_remembered, equity_now, last_close
from execution.services import positions_check_exits
from market.models import Candle, DerivativesKind, DerivativesSample
from market.services import instrument_ensure
from tests.execution.test_pipeline import _mode_on, _replay_day

T8 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_paper_limit_entries_on_a_real_day_rest_fill_as_maker_and_open_the_decisions_positions(btc_15m):
    instrument, frame = btc_15m
    _mode_on(entry_order_type="limit")
    maker = trading_config_get().maker_fee_fraction

    _replay_day(frame)

    entries = Order.objects.filter(leg__startswith="entry")
    assert entries.exists()
    assert set(entries.values_list("type", flat=True)) <= {"limit_maker", "market"}
    assert entries.filter(type="limit_maker").exists()
    # A working limit entry is not a skipped decision: every decision with an entry order executed.
    assert set(Decision.objects.filter(orders__leg__startswith="entry").values_list("outcome", flat=True)) == \
        {"executed"}
    for fill in Fill.objects.filter(order__type="limit_maker"):
        assert fill.liquidity == "maker"
        assert fill.fee_usdt == (fill.price * fill.quantity * maker).quantize(D("0.00000001"))
        # A resting limit never fills at a worse price than its own.
        assert (fill.price <= fill.order.price) if fill.order.side == "buy" else (fill.price >= fill.order.price)
    assert Fill.objects.filter(order__type="limit_maker").exists() and Position.objects.exists()
    for position in Position.objects.all():
        filled = Fill.objects.filter(order__decision=position.decision, order__leg__startswith="entry")
        quantity = sum((f.quantity for f in filled), D(0))
        assert position.initial_quantity == quantity > 0
        assert position.entry_price == sum((f.quantity * f.price for f in filled), D(0)) / quantity
        if not position.take_profits[0]["filled"]:  # after TP1 the stop moves to breakeven and trails
            assert position.stop_price == position.decision.stop_price
    account = Account.objects.get(name="paper")
    realized = sum((p.realized_pnl_usdt for p in Position.objects.all()), D(0))
    last = EquityPoint.objects.filter(account=account).last()
    assert last.equity_usdt - account.starting_balance_usdt == realized + last.unrealized_pnl_usdt


@pytest.fixture
def market(db):
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    return account, instrument


def _bars(instrument, start, prices):
    for i, (o, h, low, c) in enumerate(prices):
        Candle.objects.create(instrument=instrument, timeframe="1m", open_time=start + i * MINUTE, open=D(o),
                              high=D(h), low=D(low), close=D(c), volume=D("10"))


def _long(account, instrument, *, stop="59000", liquidation=None, opened_at=T8 - 5 * MINUTE):
    return Position.objects.create(account=account, instrument=instrument, side="LONG", open_key=instrument.pk,
                                   quantity=D("0.5"), initial_quantity=D("0.5"), entry_price=D("60000"),
                                   stop_price=D(stop), target_price=D("70000"),
                                   take_profits=[{"price": "70000", "share": "1", "filled": False}],
                                   opened_at=opened_at, liquidation_price=liquidation)


def test_positions_check_exits_settles_funding_at_the_funding_bar_before_its_exits(market):
    account, instrument = market
    position = _long(account, instrument)
    _bars(instrument, T8 - 5 * MINUTE, [("60000", "60050", "59990", "60020")] * 5 + [("60100", "60120", "60090", "60100")] * 3)
    DerivativesSample.objects.create(instrument=instrument, kind=DerivativesKind.FUNDING, ts=T8,
                                     funding_rate=D("0.0001"), mark_price=D("60100"))

    positions_check_exits(account=account, instrument=instrument, broker=PaperVenue(account, trading_config_get()),
                          now=T8 + 3 * MINUTE)

    payment = FundingPayment.objects.get()
    position.refresh_from_db()
    # A long pays a positive rate: 0.5 BTC * 60 100 * 0.0001 = 3.005 USDT.
    assert (payment.ts, payment.amount_usdt, payment.source) == (T8, D("-3.005"), "paper")
    assert (position.funding_usdt, position.realized_pnl_usdt) == (D("-3.005"), D("-3.005"))
    account.refresh_from_db()
    assert account.balance_usdt == D("10000") - D("3.005")


def test_positions_check_exits_liquidates_before_a_stop_beyond_the_liquidation_price(market):
    account, instrument = market
    config = trading_config_get()
    config.stop_working_type = "CONTRACT_PRICE"
    config.save()
    _long(account, instrument, stop="50000", liquidation=D("54000"), opened_at=T8)
    _bars(instrument, T8, [("60000", "60010", "59990", "60000"), ("56000", "56010", "53000", "53500")])

    closed = positions_check_exits(account=account, instrument=instrument,
                                   broker=PaperVenue(account, config), now=T8 + 2 * MINUTE)

    assert closed is not None and (closed.status, closed.exit_reason) == ("closed", "liquidation")
    exit_order = Order.objects.get(leg="liq")
    # The position came with a liquidation price and no margin (as one set by hand): the margin 54000 implies,
    # 54000 x (0.5 x 0.004 - 0.5) + 0.5 x 60000 = 3108, all of it lost: 3000 to the price, 108 (the
    # maintenance margin at 54000) as the clearance fee.
    assert exit_order.average_price == D("54000") and config.maintenance_margin_fraction == D("0.004")
    margin = D("3108")
    clearance = liquidation_clearance_fee("LONG", D("0.5"), D("60000"), exit_order.average_price, margin)
    assert clearance == D("108")
    fee = exit_order.fills.get().fee_usdt
    gross = (exit_order.average_price - D("60000")) * D("0.5")
    assert closed.realized_pnl_usdt == gross - fee - clearance
    assert clearance > 0 and gross - clearance == -margin
    assert closed.margin_usdt == 0


def test_last_close_inside_one_cycle_reads_each_instrument_and_moment_once(market):
    # The cycle marks its exits, decision, equity point and header at one `now`: one read serves them all.
    account, instrument = market
    _bars(instrument, T8 - 3 * MINUTE, [("60000", "60100", "59900", "60050")] * 3)
    _long(account, instrument)
    outside = last_close(instrument=instrument, now=T8)

    with closes_remembered(), CaptureQueriesContext(connection) as queries:
        inside = [last_close(instrument=instrument, now=T8) for _ in range(3)]
        equity = equity_now(account=account, now=T8)
        earlier = last_close(instrument=instrument, now=T8 - MINUTE)

    assert inside == [outside] * 3 == [(D("60050"), T8)] * 3
    assert earlier == (D("60050"), T8 - MINUTE)
    assert equity == D("10000") + D("0.5") * (D("60050") - D("60000"))
    # one (timeframes, close) pair for T8, one position read for the equity, one pair for T8 - 1m
    assert len(queries.captured_queries) == 5
    with CaptureQueriesContext(connection) as again:
        last_close(instrument=instrument, now=T8)
    assert len(again.captured_queries) == 2          # outside the block nothing is remembered
