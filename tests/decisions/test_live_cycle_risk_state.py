"""The risk state's day- and week-start equity: the last point at or before each start, read together."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.risk_state import risk_limits_for, risk_state_load
from decisions.selectors import trading_config_get
from execution.models import EquityPoint, Fill
from execution.services import account_ensure
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
# Wednesday 2025-07-09 12:00 UTC; the limits' day and week start at Warsaw midnight (22:00 UTC the day before).
NOW = datetime(2025, 7, 9, 12, 0, tzinfo=UTC)
DAY_START = datetime(2025, 7, 8, 22, 0, tzinfo=UTC)
WEEK_START = datetime(2025, 7, 6, 22, 0, tzinfo=UTC)


@pytest.fixture
def account():
    return account_ensure(name="paper")


@pytest.fixture
def instrument():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


def _point(account, ts, equity):
    EquityPoint.objects.create(account=account, ts=ts, balance_usdt=equity, unrealized_pnl_usdt=0, equity_usdt=equity)


def _state(account, instrument, now=NOW):
    limits = risk_limits_for(trading_config_get())
    return risk_state_load(account=account, instrument=instrument, now=now, limits=limits, atr_percentile=None)


def test_risk_state_load_start_equities_are_the_last_points_at_or_before_each_start(account, instrument):
    _point(account, WEEK_START - timedelta(hours=1), D("9000"))
    _point(account, WEEK_START, D("9100"))          # at the start counts
    _point(account, WEEK_START + timedelta(hours=1), D("9200"))
    _point(account, DAY_START - timedelta(minutes=15), D("9300"))
    _point(account, DAY_START + timedelta(minutes=15), D("9400"))

    state = _state(account, instrument)

    assert state.week_start_equity == D("9100")
    assert state.day_start_equity == D("9300")


def test_risk_state_load_without_points_before_the_starts_uses_the_starting_balance(account, instrument):
    _point(account, DAY_START + timedelta(hours=1), D("9400"))

    state = _state(account, instrument)

    assert state.day_start_equity == state.week_start_equity == account.starting_balance_usdt


def test_risk_state_load_on_the_first_day_of_the_week_both_starts_are_the_same_point(account, instrument):
    monday_noon = WEEK_START + timedelta(hours=14)
    _point(account, WEEK_START - timedelta(minutes=15), D("9050"))

    state = _state(account, instrument, now=monday_noon)

    assert state.day_start_equity == state.week_start_equity == D("9050")


# --- the two reads equal a plain read of each fact --------------------------------------------

def _reference(account, instrument, now, limits, equity, positions):
    """Return the risk state read fact by fact with plain ORM queries, as risk_state_load read it before."""
    from django.db.models import Max, Min, Q, Sum

    from analytics.services import ms_to_datetime
    from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskState
    from decisions.risk.wall import day_bounds, week_bounds
    from execution.models import Fill, Order, Position
    from market.models import Candle, OrderBookSnapshot

    def ms(moment):
        return int(moment.timestamp() * 1000)

    day_start, week_start = ms_to_datetime(day_bounds(now, limits)[0]), ms_to_datetime(week_bounds(now, limits)[0])
    marks = EquityPoint.objects.filter(account=account).aggregate(
        peak=Max("equity_usdt", filter=Q(ts__lte=now)), day_low=Min("equity_usdt", filter=Q(ts__gte=day_start)),
        week_low=Min("equity_usdt", filter=Q(ts__gte=week_start)))
    start = {moment: (EquityPoint.objects.filter(account=account, ts__lte=moment).order_by("-ts")
                      .values_list("equity_usdt", flat=True).first() or account.starting_balance_usdt)
             for moment in (day_start, week_start)}
    last_fill = Fill.objects.filter(order__account=account, ts__lte=now).aggregate(last=Max("ts"))["last"]
    closed = Position.objects.filter(account=account, status="closed", closed_at__gte=day_start).order_by("closed_at")
    orders = Order.objects.filter(account=account, created_at__gt=now - timedelta(minutes=limits.rate_window_minutes),
                                  created_at__lte=now)
    book = (OrderBookSnapshot.objects.filter(instrument=instrument, ts__lte=now, ts__gte=now - timedelta(minutes=2))
            .order_by("-ts").values_list("spread_bps", flat=True).first())
    volume = Candle.objects.filter(instrument=instrument, timeframe="1h", open_time__gte=now - timedelta(hours=25),
                                   open_time__lte=now - timedelta(hours=1)).aggregate(t=Sum("quote_volume"))["t"]
    return RiskState(
        equity_now=equity, day_start_equity=start[day_start], week_start_equity=start[week_start],
        peak_equity=max(marks["peak"] or equity, equity), day_low_equity=marks["day_low"],
        week_low_equity=marks["week_low"],
        closed_trades=tuple(ClosedTrade(p.instrument.exchange_symbol, p.side, p.realized_pnl_usdt, p.exit_reason,
                                        ms(p.opened_at), ms(p.closed_at)) for p in closed),
        open_positions=tuple(OpenPosition(p.instrument.exchange_symbol, p.side, ms(p.opened_at)) for p in positions),
        recent_orders=tuple(RecentOrder(ms(o.created_at), o.quantity * (o.average_price or o.price or o.trigger_price
                                                                          or D(0))) for o in orders),
        last_trade_ms=ms(last_fill) if last_fill else None, atr_percentile=None, spread_bps=book,
        volume_24h_usdt=volume)


def _world(account, instrument, other_account, other_instrument):
    """Store points, fills, trades, orders, books and candles of two accounts and two instruments."""
    from market.models import Candle, OrderBookSnapshot
    from tests.dashboard.factories import PositionFactory

    for k, (ts, equity) in enumerate([(WEEK_START - timedelta(hours=3), "9000.1234567891"), (WEEK_START, "9100"),
                                      (DAY_START - timedelta(minutes=15), "9300.5"),
                                      (DAY_START + timedelta(hours=2), "8800"), (NOW - timedelta(minutes=15), "9250"),
                                      (NOW + timedelta(hours=1), "99999")]):
        _point(account, ts, D(equity))
        _point(other_account, ts + timedelta(seconds=1), D(equity) * 2)
    for who, symbol_instrument, closed_at, pnl, reason in [
            (account, instrument, DAY_START + timedelta(hours=1), "-12.5", "stop"),
            (account, other_instrument, DAY_START + timedelta(hours=3), "40.0000000001", "target"),
            (account, instrument, DAY_START - timedelta(hours=1), "-3", "stop"),          # before the day
            (other_account, instrument, DAY_START + timedelta(hours=2), "7", "target")]:
        PositionFactory(account=who, instrument=symbol_instrument, status="closed", open_key=None,
                        opened_at=closed_at - timedelta(hours=1), closed_at=closed_at, realized_pnl_usdt=D(pnl),
                        exit_reason=reason, side="SHORT" if pnl.startswith("-") else "LONG")
    # The rate window is 5 minutes: two orders inside it, one at its start (outside), one a day old.
    for who, minutes_ago, price, average in [(account, 1, "108000.5", None), (account, 4, None, "107999.25"),
                                             (account, 5, "2", None), (account, 24 * 60, "1", None),
                                             (other_account, 3, "5", None)]:
        order = _order(who, instrument, NOW - timedelta(minutes=minutes_ago), price, average)
        _fill(order, NOW - timedelta(minutes=minutes_ago) + timedelta(seconds=2))
    for book_instrument, ts, spread in ((instrument, NOW - timedelta(minutes=1), 1.25),
                                        (instrument, NOW + timedelta(seconds=5), 9.0),      # after now
                                        (other_instrument, NOW, 3.0)):
        OrderBookSnapshot.objects.create(instrument=book_instrument, ts=ts, depth=5, bids=[], asks=[],
                                         best_bid=D("108000"), best_ask=D("108001"), spread_bps=spread)
    Candle.objects.bulk_create([
        Candle(instrument=candle_instrument, timeframe=timeframe, open_time=NOW - timedelta(hours=k), open=1, high=1,
               low=1, close=1, volume=1, quote_volume=D("1000000.123") * k)
        for k in range(0, 30) for candle_instrument in (instrument, other_instrument) for timeframe in ("1h", "15m")])


def _order(account, instrument, created_at, price, average):
    from execution.models import Order

    return Order.objects.create(
        account=account, instrument=instrument, client_order_id=f"c{Order.objects.count()}",
        intent_id=f"i{Order.objects.count()}", leg="entry", side="buy", type="market" if price is None else "limit",
        quantity=D("0.015"), price=None if price is None else D(price),
        average_price=None if average is None else D(average), status="filled", created_at=created_at,
        updated_at=created_at)


def _fill(order, ts):
    from execution.models import Fill

    Fill.objects.create(order=order, trade_id=f"t{order.pk}", ts=ts, price=D("108000"), quantity=order.quantity,
                        fee_usdt=D("0.5"))


@pytest.fixture
def others():
    from market.models import Instrument

    other_instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    return account_ensure(name="paper-replay"), Instrument.objects.get(pk=other_instrument.pk)


def _both(account, instrument, now=NOW):
    from execution.selectors import equity_now, positions_open

    limits = risk_limits_for(trading_config_get())
    positions = positions_open(account)
    equity = equity_now(account=account, now=now, positions=positions)
    loaded = risk_state_load(account=account, instrument=instrument, now=now, limits=limits, atr_percentile=None,
                             equity=equity, positions=positions)
    return loaded, _reference(account, instrument, now, limits, equity, positions)


@pytest.mark.parametrize("hours_later", [0, 2, 24 * 3])
def test_risk_state_load_equals_a_plain_read_of_each_fact(account, instrument, others, hours_later):
    other_account, other_instrument = others
    _world(account, instrument, other_account, other_instrument)

    for who, what in ((account, instrument), (account, other_instrument), (other_account, instrument)):
        loaded, reference = _both(who, what, NOW + timedelta(hours=hours_later))

        assert loaded == reference, (who, what)
    loaded = _both(account, instrument)[0]
    assert len(loaded.closed_trades) == 2 and len(loaded.recent_orders) == 2
    assert loaded.spread_bps == 1.25 and loaded.last_trade_ms is not None


def test_risk_state_load_without_any_row_equals_a_plain_read(account, instrument):
    loaded, reference = _both(account, instrument)

    assert loaded == reference
    assert loaded.closed_trades == loaded.recent_orders == ()
    assert loaded.spread_bps is None and loaded.volume_24h_usdt is None and loaded.last_trade_ms is None


def test_risk_state_load_start_equities_keep_the_stored_scale(account, instrument):
    _point(account, DAY_START - timedelta(minutes=1), D("9300.5"))

    loaded = _state(account, instrument)

    assert str(loaded.day_start_equity) == "9300.5000000000"


def test_risk_state_load_sees_trades_orders_and_points_of_the_next_cycle(account, instrument, others):
    from tests.dashboard.factories import PositionFactory

    other_account, other_instrument = others
    _world(account, instrument, other_account, other_instrument)
    before = _both(account, instrument)[0]

    PositionFactory(account=account, instrument=instrument, status="closed", open_key=None,
                    opened_at=NOW - timedelta(hours=2), closed_at=NOW - timedelta(minutes=1),
                    realized_pnl_usdt=D("-1"), exit_reason="stop")
    _fill(_order(account, instrument, NOW - timedelta(seconds=30), "1.5", None), NOW - timedelta(seconds=10))
    _point(account, NOW - timedelta(minutes=5), D("12000"))
    loaded, reference = _both(account, instrument)

    assert loaded == reference
    assert len(loaded.closed_trades) == len(before.closed_trades) + 1
    assert len(loaded.recent_orders) == len(before.recent_orders) + 1
    assert loaded.peak_equity == D("12000")


def test_risk_state_load_with_equity_and_positions_given_is_two_queries(account, instrument, others,
                                                                        django_assert_num_queries):
    _world(account, instrument, *others)
    _both(account, instrument)                  # the reads' shapes, compiled once per process
    limits = risk_limits_for(trading_config_get())

    with django_assert_num_queries(2):
        state = risk_state_load(account=account, instrument=instrument, now=NOW, atr_percentile=None,
                                limits=limits, equity=D("10000"), positions=[])

    assert state.closed_trades and state.recent_orders


# --- the last fill: the newest of the account's fills at or before now ----------------------------

def test_risk_state_load_last_trade_skips_later_fills_and_other_accounts_newer_ones(account, instrument, others):
    other_account, _ = others
    ours = _order(account, instrument, NOW - timedelta(hours=2), "1", None)
    _fill(ours, NOW - timedelta(minutes=10))
    theirs = _order(other_account, instrument, NOW - timedelta(hours=1), "1", None)
    _fill(theirs, NOW - timedelta(minutes=1))              # the newest fill at or before now is theirs
    later = _order(account, instrument, NOW - timedelta(minutes=30), "1", None)
    _fill(later, NOW + timedelta(minutes=1))               # after now

    loaded, reference = _both(account, instrument)

    assert loaded == reference
    assert loaded.last_trade_ms == int((NOW - timedelta(minutes=10)).timestamp() * 1000)


def test_risk_state_load_last_trade_of_an_account_without_fills_is_none(account, instrument, others):
    other_account, _ = others
    _fill(_order(other_account, instrument, NOW - timedelta(hours=1), "1", None), NOW - timedelta(minutes=1))
    _order(account, instrument, NOW - timedelta(minutes=5), "1", None)    # an order, never filled

    loaded, reference = _both(account, instrument)

    assert loaded == reference
    assert loaded.last_trade_ms is None


def test_risk_state_load_last_trade_with_several_fills_at_one_time_is_that_time(account, instrument, others):
    other_account, _ = others
    moment = NOW - timedelta(minutes=3)
    for who in (other_account, account, other_account):
        order = _order(who, instrument, moment - timedelta(minutes=1), "1", None)
        _fill(order, moment)
        Fill.objects.create(order=order, trade_id=f"t{order.pk}-2", ts=moment, price=D("1"), quantity=D("1"),
                            fee_usdt=D("0"))

    loaded, reference = _both(account, instrument)

    assert loaded == reference
    assert loaded.last_trade_ms == int(moment.timestamp() * 1000)


@pytest.mark.parametrize(("table", "columns"), [
    ("execution_fill", ["ts", "order_id"]),                             # the last fill, from the top
    ("execution_position", ["account_id", "status", "closed_at"]),      # the trades closed since the day start
])
def test_risk_reads_have_their_indexes(table, columns):
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)

    assert any(c["index"] and c["columns"] == columns for c in constraints.values()), constraints
