"""Build the facts the risk gates judge (RiskState) from the database, as of one moment."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import IntegerField, Max, Min, Q, Sum, Value

from analytics.services import ms_to_datetime
from decisions.models import TradingConfig
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState
from decisions.risk.wall import day_bounds, week_bounds
from execution.models import Account, EquityPoint, Fill, Order, Position
from execution.selectors import equity_now, positions_open
from market.models import Candle, Instrument, OrderBookSnapshot
from tradingbot.union import rows_union_all


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


def _equity_at(account: Account, moments: tuple[datetime, ...], fallback: Decimal) -> list[Decimal]:
    """Return the equity of the last point at or before each moment (`fallback` before the first point).

    One query for all of them where the database can limit a compound select's parts (MariaDB).
    """
    distinct = list(dict.fromkeys(moments))
    parts = [EquityPoint.objects.filter(account=account, ts__lte=moment).order_by("-ts")
             .annotate(moment=Value(k, output_field=IntegerField())).values_list("moment", "equity_usdt")[:1]
             for k, moment in enumerate(distinct)]
    found = dict(rows_union_all(parts))
    return [found.get(distinct.index(moment), fallback) for moment in moments]


def _closed_trades(account: Account, since: datetime) -> tuple[ClosedTrade, ...]:
    rows = (Position.objects.filter(account=account, status=Position.Status.CLOSED, closed_at__gte=since)
            .select_related("instrument"))
    return tuple(ClosedTrade(p.instrument.exchange_symbol, p.side, p.realized_pnl_usdt, p.exit_reason,
                             _ms(p.opened_at), _ms(p.closed_at)) for p in rows)


def _market_facts(instrument: Instrument, now: datetime) -> dict:
    book = (OrderBookSnapshot.objects.filter(instrument=instrument, ts__lte=now, ts__gte=now - timedelta(minutes=2))
            .order_by("-ts").values_list("spread_bps", flat=True).first())
    volume = (Candle.objects.filter(instrument=instrument, timeframe="1h", open_time__gte=now - timedelta(hours=25),
                                    open_time__lte=now - timedelta(hours=1))
              .aggregate(total=Sum("quote_volume"))["total"])
    return {"spread_bps": book, "volume_24h_usdt": volume}


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
    # The peak and both lows in one pass over the account's points.
    marks = EquityPoint.objects.filter(account=account).aggregate(
        peak=Max("equity_usdt", filter=Q(ts__lte=now)), day_low=Min("equity_usdt", filter=Q(ts__gte=day_start)),
        week_low=Min("equity_usdt", filter=Q(ts__gte=week_start)))
    orders = Order.objects.filter(account=account, created_at__gt=now - timedelta(minutes=limits.rate_window_minutes),
                                  created_at__lte=now)
    last_fill = Fill.objects.filter(order__account=account, ts__lte=now).aggregate(last=Max("ts"))["last"]
    day_start_equity, week_start_equity = _equity_at(account, (day_start, week_start), account.starting_balance_usdt)
    return RiskState(
        equity_now=equity,
        day_start_equity=day_start_equity,
        week_start_equity=week_start_equity,
        peak_equity=max(marks["peak"] or equity, equity),
        day_low_equity=marks["day_low"],
        week_low_equity=marks["week_low"],
        closed_trades=_closed_trades(account, day_start),
        open_positions=tuple(OpenPosition(p.instrument.exchange_symbol, p.side, _ms(p.opened_at)) for p in positions),
        recent_orders=tuple(RecentOrder(_ms(o.created_at), o.quantity * (o.average_price or o.price or o.trigger_price
                                                                          or Decimal(0))) for o in orders),
        last_trade_ms=_ms(last_fill) if last_fill else None,
        atr_percentile=atr_percentile,
        **_market_facts(instrument, now),
    )
