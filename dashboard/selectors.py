"""Reads for the dashboard pages and the live websocket; nothing here writes."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone

from analytics.models import Snapshot
from dashboard.downsample import lttb_indices
from decisions.models import Decision, TradingConfig
from execution.models import Account, EquityPoint, Position
from market.models import Candle, DataSource, Instrument
from market.timeframes import timeframe_ms

CENT = Decimal("0.01")

DATA_SOURCE_LABELS = {
    DataSource.EXCHANGE: "Exchange market data",
    DataSource.REPLAY: "REPLAY of real candles",
    DataSource.SIMULATED: "SIMULATED market - not real prices",
}

PERIODS = {"1D": dt.timedelta(days=1), "1W": dt.timedelta(weeks=1), "1M": dt.timedelta(days=30), "ALL": None}


def trading_config() -> TradingConfig:
    """Return the trading configuration row, or the unsaved defaults before one exists."""
    return TradingConfig.objects.first() or TradingConfig()


def header_state(config: TradingConfig | None = None) -> dict:
    """Return what every page's header shows: mode, pause flag, broker and data source."""
    config = config or trading_config()
    instrument = instrument_active()
    kind = instrument.data_source if instrument else settings.DATA_SOURCE
    # The engine's clock, which is simulated in a replay: the breaker's safe_until is on that clock.
    clock = Decision.objects.order_by("-as_of").values_list("as_of", flat=True).first() or timezone.now()
    mode = config.effective_mode(clock)
    breaker = mode != config.mode
    return {
        "mode": mode,
        "mode_label": (f"SAFE: circuit breaker until {config.safe_until:%Y-%m-%d %H:%M} UTC" if breaker
                       else config.get_mode_display()),
        "configured_mode": config.mode,
        "breaker_until": config.safe_until if breaker else None,
        "paused": config.paused,
        "broker": settings.BROKER,
        "data_source": {
            "kind": kind,
            "label": DATA_SOURCE_LABELS.get(kind, f"data source: {kind}"),
            "real": kind == DataSource.EXCHANGE,
        },
    }


def instrument_active() -> Instrument | None:
    """Return the instrument the bot trades (the first active one), or None."""
    return Instrument.objects.filter(is_active=True).order_by("id").first()


def account_default() -> Account | None:
    """Return the account trading the active instrument, else the configured broker's, else None."""
    # The active instrument's data source picks the account: replayed and simulated trading
    # book into their own paper accounts.
    from execution.selectors import account_name_for

    instrument = instrument_active()
    if instrument is not None:
        account = Account.objects.filter(name=account_name_for(instrument.data_source)).first()
        if account is not None:
            return account
    accounts = Account.objects.order_by("id")
    return accounts.filter(broker=settings.BROKER).first() or accounts.first()


def overview_state(*, now: dt.datetime | None = None) -> dict:
    """Return everything the overview page shows, as of `now` (aware UTC; default: the clock)."""
    now = now or timezone.now()
    config = trading_config()
    instrument = instrument_active()
    account = account_default()
    positions = _positions_open(account, now, config.decision_timeframe) if account else []
    return {
        **header_state(config),
        "as_of": now,
        "instrument": _instrument_summary(instrument),
        "price": _last_price(instrument, now, config.decision_timeframe) if instrument else None,
        "snapshot": _snapshot_summary(instrument),
        "decision": _decision_summary(instrument),
        "positions": positions,
        "account": _account_summary(account, positions, now) if account else None,
        "risk": risk_today(account, instrument, config, now) if account and instrument else None,
        "approvals": approvals_pending(now),
        "health": _health(now),
    }


def _health(now: dt.datetime) -> dict:
    from dashboard.health import health_summary  # the health module reads the stored self-test

    return health_summary(now=now)


APPROVALS_SHOWN = 10


def approvals_pending(now: dt.datetime) -> list[dict]:
    """Return the decisions waiting for an operator's approval at `now` (not snoozed), newest first."""
    from decisions.selectors import decisions_awaiting

    rows = []
    for decision in decisions_awaiting(now=now)[:APPROVALS_SHOWN]:
        instrument = decision.instrument
        rows.append({
            "id": decision.pk,
            "as_of": decision.as_of,
            "symbol": instrument.symbol,
            "timeframe": decision.timeframe,
            "action": decision.action,
            "entry_price": _to_tick(decision.entry_price, instrument),
            "entry_zone_low": _to_tick(decision.entry_zone_low, instrument),
            "entry_zone_high": _to_tick(decision.entry_zone_high, instrument),
            "stop_price": _to_tick(decision.stop_price, instrument),
            "target_price": _to_tick(decision.target_price, instrument),
            "quantity": _normal(decision.quantity),
            "confidence": decision.confidence,
            "expires_at": decision.expires_at,
            "reason": decision.reason,
        })
    return rows


def risk_today(account: Account, instrument: Instrument, config: TradingConfig, now: dt.datetime) -> dict | None:
    """Return today's PnL and the daily loss budget left, counted exactly as the daily_loss gate counts them.

    The day is the risk timezone's; the loss is from the equity the day started with to the day's
    lowest equity (a loss recovered later still used the budget). None when the limits do not load.
    """
    from decisions.risk.gates import check_daily_loss
    from decisions.risk.wall import day_bounds
    from decisions.risk_state import risk_limits_for, risk_state_load

    try:
        limits = risk_limits_for(config)
    except (ValueError, TypeError):
        return None
    state = risk_state_load(account=account, instrument=instrument, now=now, limits=limits, atr_percentile=None)
    start = state.day_start_equity
    low = state.equity_now if state.day_low_equity is None else min(state.day_low_equity, state.equity_now)
    limit = start * limits.daily_loss_fraction
    used = max(start - low, Decimal(0))
    left = max(limit - used, Decimal(0))
    gate = check_daily_loss(start, low, limits.daily_loss_fraction)
    return {
        "day_start": dt.datetime.fromtimestamp(day_bounds(now, limits)[0] / 1000, dt.UTC),
        "timezone": limits.timezone,
        "day_start_equity_usdt": start.quantize(CENT),
        "pnl_today_usdt": (state.equity_now - start).quantize(CENT),
        "pnl_today_pct": round(float((state.equity_now - start) / start * 100), 2) if start > 0 else None,
        "loss_limit_usdt": limit.quantize(CENT),
        "loss_limit_pct": round(float(limits.daily_loss_fraction * 100), 2),
        "loss_used_usdt": used.quantize(CENT),
        "budget_left_usdt": left.quantize(CENT),
        "budget_left_pct": round(float(left / limit * 100), 1) if limit > 0 else 0.0,
        "blocked": gate.blocked,
        "gate_reason": gate.reason,
    }


def _instrument_summary(instrument: Instrument | None) -> dict | None:
    if instrument is None:
        return None
    return {"id": instrument.pk, "symbol": instrument.symbol, "exchange": instrument.exchange,
            "tick_size": _normal(instrument.tick_size)}


def _last_price(instrument: Instrument, now: dt.datetime, decision_timeframe: str) -> dict | None:
    # Query per timeframe so the (instrument, timeframe, open_time) index answers each.
    latest = None
    for timeframe in {"1m", decision_timeframe}:
        candle = Candle.objects.filter(instrument=instrument, timeframe=timeframe).order_by("-open_time").first()
        if candle is None:
            continue
        # A bar's close is known at its end; a bar still forming is as of now.
        closed_at = min(candle.open_time + dt.timedelta(milliseconds=timeframe_ms(timeframe)), now)
        if latest is None or closed_at > latest["ts"]:
            latest = {"value": _to_tick(candle.close, instrument), "ts": closed_at}
    return latest


def _snapshot_summary(instrument: Instrument | None) -> dict | None:
    snapshot = Snapshot.objects.filter(instrument=instrument).order_by("-as_of").first() if instrument else None
    if snapshot is None:
        return None
    return {
        "as_of": snapshot.as_of,
        "timeframe": snapshot.timeframe,
        "close": _to_tick(snapshot.close, instrument),
        "atr": round(snapshot.atr, 6),
        "trend": snapshot.trend,
        "momentum": snapshot.momentum,
        "structure": structure_labels(snapshot.features),
    }


def structure_labels(features: dict) -> list[str]:
    """Return readable labels for the market-structure entries of a snapshot's features."""
    structure = features.get("structure") if isinstance(features, dict) else None
    labels: list[str] = []
    if isinstance(structure, str):
        labels.append(structure)
    elif isinstance(structure, dict):
        labels += [f"{key}: {_scalar(value)}" for key, value in structure.items()]
    elif isinstance(structure, list):
        labels += [_scalar(item) for item in structure]
    if isinstance(features, dict):
        labels += [f"{key[10:]}: {_scalar(value)}" for key, value in features.items() if key.startswith("structure_")]
    return labels


def _decision_summary(instrument: Instrument | None) -> dict | None:
    decision = Decision.objects.filter(instrument=instrument).order_by("-as_of").first() if instrument else None
    if decision is None:
        return None
    return {
        "as_of": decision.as_of,
        "action": decision.action,
        "outcome": decision.outcome,
        "outcome_label": decision.get_outcome_display(),
        "reason": decision.reason,
        "rationale": rationale_lines(decision.rationale),
        "entry_price": _to_tick(decision.entry_price, instrument),
        "stop_price": _to_tick(decision.stop_price, instrument),
        "target_price": _to_tick(decision.target_price, instrument),
        "quantity": _normal(decision.quantity),
    }


def rationale_lines(rationale: list) -> list[str]:
    """Return one readable line per rationale entry, whether it is a string or a dict."""
    lines = []
    for item in rationale or []:
        if isinstance(item, dict):
            name = next((item[k] for k in ("label", "name", "input", "key") if k in item), None)
            detail = next((item[k] for k in ("text", "detail", "value") if k in item), None)
            if name is not None and detail is not None:
                lines.append(f"{name}: {_scalar(detail)}")
            else:
                lines.append(", ".join(f"{k}={_scalar(v)}" for k, v in item.items()))
        else:
            lines.append(_scalar(item))
    return lines


def _positions_open(account: Account, now: dt.datetime, decision_timeframe: str) -> list[dict]:
    positions = Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument")
    marks: dict[int, dict | None] = {}
    rows = []
    for position in positions.order_by("opened_at"):
        instrument = position.instrument
        if instrument.pk not in marks:
            marks[instrument.pk] = _last_price(instrument, now, decision_timeframe)
        mark = marks[instrument.pk]
        rows.append({
            "id": position.pk,
            "instrument_id": instrument.pk,
            "symbol": instrument.symbol,
            "side": position.side,
            "quantity": _normal(position.quantity),
            "contract_size": _normal(instrument.contract_size),
            "entry_price": _to_tick(position.entry_price, instrument),
            "stop_price": _to_tick(position.stop_price, instrument),
            "target_price": _to_tick(position.target_price, instrument),
            "take_profits": _ladder(position, instrument),
            "opened_at": position.opened_at,
            "mark_price": mark["value"] if mark else None,
            "unrealized_pnl_usdt": unrealized_pnl(position, mark["value"]) if mark else None,
        })
    return rows


def _ladder(position: Position, instrument: Instrument) -> list[dict]:
    """Return the position's targets as TP1..n with their price, share in percent and whether they filled."""
    ladder = []
    for number, target in enumerate(position.take_profits or [], start=1):
        try:
            price, share = Decimal(str(target["price"])), Decimal(str(target.get("share", "0")))
        except (KeyError, ArithmeticError, TypeError):
            continue  # a malformed row is shown by the admin, not guessed at here
        ladder.append({"label": f"TP{number}", "price": _to_tick(price, instrument),
                       "share_pct": _normal(share * 100), "filled": bool(target.get("filled"))})
    return ladder


def unrealized_pnl(position: Position, mark_price: Decimal) -> Decimal:
    """Return the USDT PnL of an open linear position at `mark_price`, to the cent, before exit fees."""
    direction = 1 if position.side == "LONG" else -1
    pnl = (mark_price - position.entry_price) * position.quantity * position.instrument.contract_size * direction
    return pnl.quantize(CENT)


def _account_summary(account: Account, positions: list[dict], now: dt.datetime) -> dict:
    unrealized = sum((p["unrealized_pnl_usdt"] or Decimal(0) for p in positions), Decimal(0))
    day_start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    realized_today = Position.objects.filter(
        account=account, status=Position.Status.CLOSED, closed_at__gte=day_start, closed_at__lte=now
    ).aggregate(total=Sum("realized_pnl_usdt"))["total"] or Decimal(0)
    return {
        "id": account.pk,
        "name": account.name,
        "broker": account.broker,
        "balance_usdt": account.balance_usdt.quantize(CENT),
        "unrealized_pnl_usdt": unrealized.quantize(CENT),
        "equity_usdt": (account.balance_usdt + unrealized).quantize(CENT),
        "realized_today_usdt": realized_today.quantize(CENT),
    }


@dataclass(frozen=True, slots=True)
class EquitySeries:
    """Equity points of one account over a range; drawdown is from the running peak, in percent (<= 0)."""

    times: list[dt.datetime]
    equity_usdt: list[Decimal]
    drawdown_pct: list[float]
    peak_equity_usdt: Decimal | None
    downsampled: bool


# A period of a week or more starts on the hour: see equity_range.
PERIOD_START_STEP = dt.timedelta(hours=1)


def equity_range(account: Account, *, period: str | None, start, end) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Return (start, end) for a period counted back from the account's last point, or the given bounds.

    A period of a week or more starts at the hour at or before (last point - period), so it shows
    up to an hour more than the period. Why: the equity curve is kept per range
    (dashboard.equity_curve) and grows by new points only while its start stays put; a start
    moving with every minute point made each minute's first request compute the whole month again.
    Shorter periods are cheap to compute and keep their exact start.
    """
    delta = PERIODS.get(period or "")
    if start or end or delta is None:
        return start, end
    last = EquityPoint.objects.filter(account=account).aggregate(last=Max("ts"))["last"]
    if last is None:
        return None, None
    start = last - delta
    if delta >= dt.timedelta(weeks=1):
        start = _floor(start, PERIOD_START_STEP)
    return start, None


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The latest multiple of `step` since the epoch at or before `moment` (UTC)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return moment - (moment - epoch) % step


def equity_points(account: Account, start: dt.datetime | None, end: dt.datetime | None):
    """Return the account's equity points within [start, end] (either open), oldest first."""
    points = EquityPoint.objects.filter(account=account)
    if start:
        points = points.filter(ts__gte=start)
    if end:
        points = points.filter(ts__lte=end)
    return points.order_by("ts")


def equity_rows(account: Account, start, end) -> Iterator[tuple]:
    """Yield (ts, balance, unrealised, equity) rows in the range without loading them all at once."""
    fields = ("ts", "balance_usdt", "unrealized_pnl_usdt", "equity_usdt")
    return equity_points(account, start, end).values_list(*fields).iterator(chunk_size=5000)


def equity_series(account: Account, start, end, max_points: int) -> EquitySeries:
    """Return the equity curve in [start, end] LTTB-downsampled to at most `max_points` points."""
    rows = list(equity_points(account, start, end).values_list("ts", "equity_usdt"))
    if not rows:
        return EquitySeries([], [], [], None, downsampled=False)
    times, equity = zip(*rows)
    # The peak before the range counts: a range that opens inside a drawdown starts below 0 %.
    prior_peak = None
    if start:
        prior_peak = EquityPoint.objects.filter(account=account, ts__lt=start).aggregate(p=Max("equity_usdt"))["p"]
    values = np.array(equity, dtype=np.float64)
    peaks = np.maximum.accumulate(np.maximum(values, float(prior_peak) if prior_peak is not None else -np.inf))
    drawdown = np.where(peaks > 0, (values - peaks) / np.where(peaks > 0, peaks, 1) * 100, 0.0)
    seconds = np.array([t.timestamp() for t in times])
    keep = lttb_indices(seconds, values, max_points)
    peak_usdt = max(max(equity), prior_peak) if prior_peak is not None else max(equity)
    return EquitySeries(
        times=[times[i] for i in keep],
        equity_usdt=[equity[i].quantize(CENT) for i in keep],
        drawdown_pct=[round(float(drawdown[i]), 4) for i in keep],
        peak_equity_usdt=peak_usdt.quantize(CENT),
        downsampled=len(keep) < len(rows),
    )


def _to_tick(value: Decimal | None, instrument: Instrument) -> Decimal | None:
    if value is None:
        return None
    tick = instrument.tick_size.normalize()
    # A tick of 10 normalises to 1E+1; quantizing to it would print prices in exponent form.
    return value.quantize(tick if tick.as_tuple().exponent <= 0 else Decimal(1))


def _normal(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal


def _scalar(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    return str(value)
