"""Build the facts the risk gates judge (RiskState) from the database, as of one moment."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import F, Func, IntegerField, OuterRef, QuerySet, Subquery, Value

from analytics.services import ms_to_datetime
from decisions.models import TradingConfig
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState
from decisions.risk.wall import day_bounds, week_bounds
from execution.models import Account, EquityPoint, Fill, Order, Position
from execution.selectors import equity_now, positions_open
from market.models import Candle, Instrument, OrderBookSnapshot
from tradingbot.compiled_reads import rows_compiled

# One unit of the last decimal place of stored equity.
EQUITY_UNIT = Decimal(1).scaleb(-EquityPoint._meta.get_field("equity_usdt").decimal_places)

LIMIT_FIELDS = (
    "weekly_drawdown_fraction", "max_drawdown_fraction", "loss_streak", "sl_streak", "max_trades_per_day",
    "max_open_positions", "trading_start", "trading_end", "news_mute_minutes", "cooldown_minutes",
    "volatility_percentile", "volatility_size_factor", "max_spread_bps", "rate_window_minutes",
    "max_orders_per_window", "max_turnover_equity_multiple", "max_correlation", "min_volume_24h_usdt",
    "min_profit_factor", "profit_factor_min_trades",
)


def risk_limits_for(config: TradingConfig) -> RiskLimits:
    """Return the frozen gate limits of the admin-edited configuration; raise ValueError naming a bad one."""
    return RiskLimits(daily_loss_fraction=config.daily_loss_limit_fraction, timezone=config.risk_timezone,
                      **{name: getattr(config, name) for name in LIMIT_FIELDS})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _one(rows: QuerySet, expression) -> Subquery:
    """Return `expression` over `rows` (an aggregate such as MAX, or a column of a [:1] slice) as a scalar subquery."""
    if isinstance(expression, str):
        return Subquery(rows.values(expression))
    return Subquery(rows.order_by().annotate(value=expression).values("value"))


def _fills_of(account_id: int) -> QuerySet:
    """Return the account's fills, each one's order account compared in a scalar subquery, not a join.

    The last fill is then read from the top of the fill (ts, order) index down to the account's
    newest: one row when the account filled last, else also the other accounts' newer fills. As a
    join (or an IN, which the server turns into one) the server starts from the account's orders:
    every order it ever placed, a read that grew with the order history.
    """
    account_of_order = Subquery(Order.objects.filter(pk=OuterRef("order_id")).order_by().values("account_id"))
    return Fill.objects.annotate(order_account_id=account_of_order).filter(order_account_id=account_id)


FACTS = ("peak", "day_low", "week_low", "day_start", "week_start", "last_fill", "spread_bps", "volume_24h_usdt")


def _facts_read(*, account_id: int, instrument_id: int, now: datetime, day_start: datetime, week_start: datetime,
                book_since: datetime, volume_from: datetime, volume_to: datetime) -> QuerySet:
    points = EquityPoint.objects.filter(account_id=account_id)
    facts = {
        # The peak and both lows as the account's points have them. The peak is the first point of
        # the (account, equity, ts) index from the top at or before `now`, not a MAX over every point
        # ever recorded (one a cycle: a scan that grew without end).
        "peak": _one(points.filter(ts__lte=now).order_by("-equity_usdt")[:1], "equity_usdt"),
        "day_low": _one(points.filter(ts__gte=day_start), Func(F("equity_usdt"), function="MIN")),
        "week_low": _one(points.filter(ts__gte=week_start), Func(F("equity_usdt"), function="MIN")),
        # The equity of the last point at or before each start.
        "day_start": _one(points.filter(ts__lte=day_start).order_by("-ts")[:1], "equity_usdt"),
        "week_start": _one(points.filter(ts__lte=week_start).order_by("-ts")[:1], "equity_usdt"),
        "last_fill": _one(_fills_of(account_id).filter(ts__lte=now).order_by("-ts")[:1], "ts"),
        "spread_bps": _one(OrderBookSnapshot.objects.filter(instrument_id=instrument_id, ts__lte=now,
                                                            ts__gte=book_since).order_by("-ts")[:1], "spread_bps"),
        "volume_24h_usdt": _one(Candle.objects.filter(instrument_id=instrument_id, timeframe="1h",
                                                      open_time__gte=volume_from, open_time__lte=volume_to),
                                Func(F("quote_volume"), function="SUM")),
    }
    return Account.objects.filter(pk=account_id).annotate(**facts).values_list(*FACTS)


def _facts(account: Account, instrument: Instrument, now: datetime, day_start: datetime,
           week_start: datetime) -> dict:
    """Return the scalar facts of the account and the market at `now`, in one query (a subquery each)."""
    row, = rows_compiled("risk facts", Account, _facts_read, account_id=account.pk, instrument_id=instrument.pk,
                         now=now, day_start=day_start, week_start=week_start, book_since=now - timedelta(minutes=2),
                         volume_from=now - timedelta(hours=25), volume_to=now - timedelta(hours=1))
    return dict(zip(FACTS, row))


def _as_stored(value: Decimal | None) -> Decimal | None:
    # A column read outside a subquery comes at its scale on every database (SQLite returns floats
    # that Django quantizes for a column, not for a subquery): keep the start equities as before.
    return None if value is None else value.quantize(EQUITY_UNIT)


# Both parts of the trades-and-orders read select a column of the same type in each place, so the
# first part's columns convert the second's rows alike; a trade's unused places hold position columns.
_TRADE_COLUMNS = ("instrument__exchange_symbol", "side", "exit_reason", "opened_at", "closed_at",
                  "realized_pnl_usdt", "quantity", "entry_price", "stop_price")
_ORDER_COLUMNS = ("client_order_id", "side", "type", "created_at", "created_at",
                  "quantity", "average_price", "price", "trigger_price")


def _trades_and_orders_read(*, account_id: int, since: datetime, orders_after: datetime, now: datetime) -> QuerySet:
    trades = (Position.objects.filter(account_id=account_id, status=Position.Status.CLOSED, closed_at__gte=since)
              .order_by().annotate(part=Value(0, output_field=IntegerField()))
              .values_list("part", "pk", *_TRADE_COLUMNS))
    orders = (Order.objects.filter(account_id=account_id, created_at__gt=orders_after, created_at__lte=now)
              .order_by().annotate(part=Value(1, output_field=IntegerField()))
              .values_list("part", "pk", *_ORDER_COLUMNS))
    return trades.union(orders, all=True)


def _trades_and_orders(account: Account, since: datetime, now: datetime,
                       rate_window: timedelta) -> tuple[tuple[ClosedTrade, ...], tuple[RecentOrder, ...]]:
    """Return the trades closed since `since` and the orders created in the rate window, in one query."""
    rows = rows_compiled("closed trades and recent orders", Position, _trades_and_orders_read,
                         account_id=account.pk, since=since, orders_after=now - rate_window, now=now)
    closed = sorted((r for r in rows if r[0] == 0), key=lambda r: (r[6], r[1]))
    recent = sorted((r for r in rows if r[0] == 1), key=lambda r: (r[5], r[1]), reverse=True)
    return (tuple(ClosedTrade(r[2], r[3], r[7], r[4], _ms(r[5]), _ms(r[6])) for r in closed),
            tuple(RecentOrder(_ms(r[5]), r[7] * (r[8] or r[9] or r[10] or Decimal(0))) for r in recent))


def risk_state_load(*, account: Account, instrument: Instrument, now: datetime, limits: RiskLimits,
                    atr_percentile: float | None, equity: Decimal | None = None,
                    positions: list[Position] | None = None) -> RiskState:
    """Return the account and market facts of `instrument` the gates need at `now`.

    `equity` (at `now`) and `positions` (the open ones, with instruments) when the caller has read them.
    """
    if positions is None:
        positions = positions_open(account)
    equity = equity if equity is not None else equity_now(account=account, now=now, positions=positions)
    day_start, week_start = (ms_to_datetime(day_bounds(now, limits)[0]), ms_to_datetime(week_bounds(now, limits)[0]))
    facts = _facts(account, instrument, now, day_start, week_start)
    closed_trades, recent_orders = _trades_and_orders(account, day_start, now,
                                                      timedelta(minutes=limits.rate_window_minutes))
    start_equity = account.starting_balance_usdt    # before the first point
    return RiskState(
        equity_now=equity,
        day_start_equity=_as_stored(facts["day_start"]) if facts["day_start"] is not None else start_equity,
        week_start_equity=_as_stored(facts["week_start"]) if facts["week_start"] is not None else start_equity,
        peak_equity=max(facts["peak"] or equity, equity),
        day_low_equity=facts["day_low"],
        week_low_equity=facts["week_low"],
        closed_trades=closed_trades,
        open_positions=tuple(OpenPosition(p.instrument.exchange_symbol, p.side, _ms(p.opened_at)) for p in positions),
        recent_orders=recent_orders,
        last_trade_ms=_ms(facts["last_fill"]) if facts["last_fill"] else None,
        atr_percentile=atr_percentile,
        spread_bps=facts["spread_bps"],
        volume_24h_usdt=facts["volume_24h_usdt"],
    )
