"""Reads for the chart page: the candles of one instrument and timeframe and what is drawn over them.

The overlays come from the same pure functions the analytics use, run on the candles shown:
fair-value gaps from analytics.features.fvg.fvg_series, sessions from
analytics.features.sessions.sessions. Liquidation zones and trades are the stored rows that
overlap the shown time span. Prices are exact Decimal text; times are epoch seconds (UTC), which
is what the charting library takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db.models import Q

from analytics.features.fvg import fvg_series
from analytics.features.sessions import SESSIONS, sessions
from analytics.snapshot import SnapshotParams
from execution.models import Position
from market.models import Candle, Instrument, LiquidationZone, Timeframe
from market.timeframes import timeframe_ms

DEFAULT_BARS = 500
MAX_BARS = 5000
TRADES_MAX = 500
ZONES_MAX = 200
# analytics.features.sessions: "meant for bars up to 1h long"; a longer bar spans several sessions.
SESSIONS_MAX_STEP_MS = 3_600_000
SESSION_LABELS = {"asia": "Asia", "eu": "London", "us": "New York"}
GAP_STATES = {1: "fresh", 2: "partial"}


class ChartRequestError(ValueError):
    """A chart request that cannot be answered; the message names the parameter and the problem."""


@dataclass(frozen=True, slots=True)
class ChartQuery:
    """A validated request: which candles to show and how many at most."""

    instrument: Instrument
    timeframe: str
    start: datetime | None      # first bar's open time at or after this
    end: datetime | None        # bars opening before this
    bars: int                   # the newest `bars` bars without a start; the cap of the range with one


def plain(value: Decimal | None) -> str | None:
    """Return a Decimal as positional text without trailing zeros (65000, 64800.5), or None."""
    return None if value is None else format(value.normalize(), "f")


def epoch_s(moment: datetime | None) -> int | None:
    """Return an aware datetime as whole epoch seconds, or None."""
    return None if moment is None else int(moment.timestamp())


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --- instruments and timeframes ------------------------------------------------------------
def timeframes_stored(instrument: Instrument) -> list[str]:
    """Return the timeframes that hold at least one candle of `instrument`, shortest first."""
    # One indexed EXISTS per timeframe: DISTINCT over a large candle table would read every row.
    rows = Candle.objects.filter(instrument=instrument)
    return [tf for tf in Timeframe.values if rows.filter(timeframe=tf).exists()]


def instruments_chartable() -> list[dict]:
    """Return every instrument with candles: id, names, data source and stored timeframes."""
    out = []
    for instrument in Instrument.objects.order_by("-is_active", "exchange_symbol", "data_source", "pk"):
        stored = timeframes_stored(instrument)
        if stored:
            out.append({"id": instrument.pk, "symbol": instrument.exchange_symbol, "name": str(instrument),
                        "source": instrument.data_source, "active": instrument.is_active, "timeframes": stored})
    return out


def instrument_find(symbol: str, source: str = "") -> Instrument:
    """Return the instrument named `symbol` (venue id like BTCUSDT, or ccxt's BTC/USDT:USDT).

    Several data sources may hold the same symbol: `source` picks one, else the active one wins.
    """
    if not symbol:
        active = Instrument.objects.filter(is_active=True).order_by("pk").first()
        if active is None:
            raise ChartRequestError("symbol: give a symbol; no instrument is active")
        return active
    found = Instrument.objects.filter(Q(exchange_symbol__iexact=symbol) | Q(symbol__iexact=symbol))
    if source:
        found = found.filter(data_source=source)
    instrument = found.order_by("-is_active", "pk").first()
    if instrument is None:
        known = sorted(set(Instrument.objects.values_list("exchange_symbol", flat=True)))
        where = f" with data source {source!r}" if source else ""
        raise ChartRequestError(f"symbol: unknown symbol {symbol!r}{where}; known: {', '.join(known) or 'none'}")
    return instrument


def chart_query(*, symbol: str, source: str, timeframe: str, start: datetime | None, end: datetime | None,
                bars: int | None, default_timeframe: str = "") -> ChartQuery:
    """Return the validated request; raise ChartRequestError naming the first problem."""
    if start is not None and end is not None and start >= end:
        raise ChartRequestError("start: start must be before end")
    instrument = instrument_find(symbol, source)
    stored = timeframes_stored(instrument)
    if timeframe and timeframe not in Timeframe.values:
        raise ChartRequestError(f"timeframe: unknown timeframe {timeframe!r}; expected one of "
                                f"{', '.join(Timeframe.values)}")
    if not stored:
        raise ChartRequestError(f"symbol: no candles stored for {instrument.exchange_symbol} "
                                f"({instrument.data_source})")
    if not timeframe:
        timeframe = default_timeframe if default_timeframe in stored else stored[0]
    if timeframe not in stored:
        raise ChartRequestError(f"timeframe: no {timeframe} candles stored for {instrument.exchange_symbol} "
                                f"({instrument.data_source}); stored: {', '.join(stored)}")
    if bars is not None and not 1 <= bars <= MAX_BARS:
        raise ChartRequestError(f"bars: must be between 1 and {MAX_BARS}, got {bars}")
    limit = bars or (MAX_BARS if start is not None else DEFAULT_BARS)
    return ChartQuery(instrument, timeframe, start, end, limit)


# --- candles -------------------------------------------------------------------------------
def candles_load(query: ChartQuery) -> list[tuple]:
    """Return (open_time, open, high, low, close, volume) rows, oldest first.

    Without a start: the newest `bars` bars opening before `end` (or all stored). With a start:
    every bar in [start, end); more than `bars` of them raise ChartRequestError.
    """
    rows = Candle.objects.filter(instrument=query.instrument, timeframe=query.timeframe)
    if query.end is not None:
        rows = rows.filter(open_time__lt=query.end)
    fields = ("open_time", "open", "high", "low", "close", "volume")
    if query.start is None:
        found = list(rows.order_by("-open_time").values_list(*fields)[:query.bars])
        found.reverse()
        return found
    # One row past the cap tells "too many" without counting the whole range.
    found = list(rows.filter(open_time__gte=query.start).order_by("open_time").values_list(*fields)[:query.bars + 1])
    if len(found) > query.bars:
        raise ChartRequestError(f"bars: the range holds more than {query.bars} {query.timeframe} bars; "
                                f"narrow it or choose a longer timeframe (at most {MAX_BARS} bars)")
    return found


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """The shown candles as the analytics see them: float64 prices, open times in ms."""

    open_time_ms: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def candle_arrays(rows: list[tuple]) -> CandleArrays:
    """Return float64 arrays of the rows, converted as analytics.selectors.bars_load converts them."""
    times = np.array([int(r[0].timestamp() * 1000) for r in rows], dtype=np.int64)
    values = np.array([[float(r[2]), float(r[3]), float(r[4])] for r in rows], dtype=np.float64).reshape(-1, 3)
    return CandleArrays(times, values[:, 0], values[:, 1], values[:, 2])


# --- overlays ------------------------------------------------------------------------------
def fvg_overlay(arrays: CandleArrays, *, atr_period: int, max_open: int) -> dict:
    """Return the fair-value gaps of the shown candles: each gap formed and the nearest open ones.

    `nearest` lists runs of bars over which the nearest open bullish gap ("below") or bearish gap
    ("above") and its unfilled zone stayed the same: what a snapshot at each bar would report.
    """
    times_s = arrays.open_time_ms // 1000
    gaps = fvg_series(arrays.high, arrays.low, arrays.close, atr_period, max_open)
    formed = [{"time": int(times_s[i]), "direction": "bullish" if gaps.gap[i] > 0 else "bearish",
               "bottom": float(gaps.gap_bottom[i]), "top": float(gaps.gap_top[i]),
               "size_atr": _finite(gaps.gap_size_atr[i])} for i in np.flatnonzero(gaps.gap)]
    nearest = []
    for side in ("below", "above"):
        nearest += _runs(side, times_s, getattr(gaps, f"{side}_bottom"), getattr(gaps, f"{side}_top"),
                         getattr(gaps, f"{side}_age"), getattr(gaps, f"{side}_state"))
    last = len(times_s) - 1
    return {"atr_period": atr_period, "max_open": max_open, "formed": formed, "nearest": nearest,
            "open_below": int(gaps.open_below[last]) if last >= 0 else 0,
            "open_above": int(gaps.open_above[last]) if last >= 0 else 0}


def _runs(side: str, times_s, bottom, top, age, state) -> list[dict]:
    # Plain lists: indexing numpy arrays one element at a time is several times slower.
    times_s, bottom, top, age, state = (a.tolist() for a in (times_s, bottom, top, age, state))
    runs, key = [], None
    for i, t in enumerate(times_s):
        if state[i] == 0:
            key = None
            continue
        this = (i - age[i], bottom[i], top[i], state[i])
        if this == key:
            runs[-1]["to"] = t
            continue
        key = this
        runs.append({"side": side, "formed": times_s[this[0]], "from": t, "to": t,
                     "bottom": this[1], "top": this[2], "state": GAP_STATES.get(this[3], str(this[3]))})
    return runs


def session_overlay(arrays: CandleArrays, step_ms: int) -> list[dict]:
    """Return each session's stretch of the shown bars with its high and low (bars up to 1h only)."""
    if step_ms > SESSIONS_MAX_STEP_MS or not len(arrays.open_time_ms):
        return []
    series = sessions(arrays.open_time_ms, arrays.high, arrays.low)
    times_ms = arrays.open_time_ms.tolist()
    day = (arrays.open_time_ms // 86_400_000).tolist()
    active = series.active.astype(np.int64).tolist()
    out = []
    for j, session in enumerate(SESSIONS):
        first = None
        for i, mask in enumerate(active):
            inside = (mask >> j) & 1 == 1
            # A stretch ends where the session closes or the UTC day changes (a new session instance).
            if first is not None and (not inside or day[i] != day[first]):
                out.append(_stretch(session.name, times_ms, first, i - 1, step_ms, series, j))
                first = None
            if inside and first is None:
                first = i
        if first is not None:
            out.append(_stretch(session.name, times_ms, first, len(active) - 1, step_ms, series, j))
    return sorted(out, key=lambda s: (s["from"], s["name"]))


def _stretch(name: str, times_ms: list, first: int, last: int, step_ms: int, series, j: int) -> dict:
    return {"name": name, "label": SESSION_LABELS.get(name, name), "from": times_ms[first] // 1000,
            "to": (times_ms[last] + step_ms) // 1000,
            "high": _finite(series.high[last, j]), "low": _finite(series.low[last, j])}


def zones_overlay(instrument: Instrument, span_start: datetime, span_end: datetime) -> list[dict]:
    """Return the liquidation zones known before `span_end` and still valid after `span_start`."""
    rows = (LiquidationZone.objects.filter(instrument=instrument, known_at__lt=span_end)
            .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=span_start))
            .order_by("-known_at", "-pk")[:ZONES_MAX])
    return [{"id": z.pk, "side": z.side, "price_low": plain(z.price_low), "price_high": plain(z.price_high),
             "size_usd": plain(z.size_usd), "known_at": epoch_s(z.known_at), "valid_until": epoch_s(z.valid_until),
             "source": z.source} for z in rows]


def trades_overlay(instrument: Instrument, span_start: datetime, span_end: datetime) -> list[dict]:
    """Return the positions open at any moment of the span: entry, stops, targets and exit."""
    rows = (Position.objects.filter(instrument=instrument, opened_at__lt=span_end)
            .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=span_start))
            .select_related("account", "decision").order_by("-opened_at", "-pk")[:TRADES_MAX])
    return [_trade(p) for p in reversed(list(rows))]


def _targets(position: Position) -> list[dict]:
    ladder = position.take_profits or (position.decision.take_profits if position.decision else None) or \
        [{"price": str(position.target_price), "share": "1"}]
    return [{"label": f"TP{n}", "price": plain(Decimal(str(t["price"]))), "share": t.get("share"),
             "filled": bool(t.get("filled", False))} for n, t in enumerate(ladder, start=1)]


def _trade(position: Position) -> dict:
    decision = position.decision
    return {
        "id": position.pk, "account": position.account.name, "side": position.side, "status": position.status,
        "opened_at": epoch_s(position.opened_at), "closed_at": epoch_s(position.closed_at),
        "entry_price": plain(position.entry_price), "exit_price": plain(position.exit_price),
        "exit_reason": position.exit_reason, "quantity": plain(position.initial_quantity or position.quantity),
        "stop_price": plain(position.stop_price),
        "initial_stop_price": plain(decision.stop_price) if decision else None,
        "take_profits": _targets(position), "realized_pnl_usdt": plain(position.realized_pnl_usdt),
        "decision_id": decision.pk if decision else None,
    }


# --- the whole answer ----------------------------------------------------------------------
def chart_data(query: ChartQuery, *, atr_period: int) -> dict:
    """Return the candles of `query` with their FVG, session, liquidation-zone and trade overlays."""
    rows = candles_load(query)
    step_ms = timeframe_ms(query.timeframe)
    instrument = query.instrument
    body = {
        "instrument": {"id": instrument.pk, "symbol": instrument.exchange_symbol, "name": str(instrument),
                       "source": instrument.data_source, "tick_size": plain(instrument.tick_size)},
        "timeframe": query.timeframe, "timeframe_seconds": step_ms // 1000,
        "start": query.start.isoformat() if query.start else None,
        "end": query.end.isoformat() if query.end else None,
        "candles": [{"time": epoch_s(r[0]), "open": plain(r[1]), "high": plain(r[2]), "low": plain(r[3]),
                     "close": plain(r[4]), "volume": plain(r[5])} for r in rows],
    }
    arrays = candle_arrays(rows)
    body["fvg"] = fvg_overlay(arrays, atr_period=atr_period, max_open=SnapshotParams().fvg_max_open)
    body["sessions"] = session_overlay(arrays, step_ms)
    if rows:
        span_start, span_end = rows[0][0], rows[-1][0] + timedelta(milliseconds=step_ms)
        body["liquidation_zones"] = zones_overlay(instrument, span_start, span_end)
        body["trades"] = trades_overlay(instrument, span_start, span_end)
    else:
        body["liquidation_zones"], body["trades"] = [], []
    return body
