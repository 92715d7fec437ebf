"""Reads for the analytics stage."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.db import connections

from analytics.features.mtf import TIMEFRAMES
from analytics.snapshot import Bars, Context
from market.models import Candle, Instrument, OrderBookSnapshot
from market.resample import resample_columns
from market.timeframes import timeframe_ms

# Enough 15m bars to resample ten weeks into 1w views without loading the whole history.
MAX_RESAMPLE_SOURCE_BARS = 7_000
STRUCTURE_BARS = 100            # closed bars per structure-confirmation timeframe


def bars_load(*, instrument: Instrument, timeframe: str, now: datetime, count: int) -> Bars:
    """Return up to `count` bars that had closed by `now`, oldest first."""
    step_ms = timeframe_ms(timeframe)
    # A bar is usable once open_time + length <= now; anything later is still forming.
    last_open = now - timedelta(milliseconds=step_ms)
    rows = list(
        Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__lte=last_open)
        .order_by("-open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume")[:count]
    )
    rows.reverse()
    return _bars_from_rows(rows, step_ms)


def bars_load_many(*, instrument: Instrument, wanted: dict[str, int], now: datetime) -> dict[str, Bars]:
    """Return `bars_load` of each timeframe in `wanted` ({timeframe: count}), in one query where the database can.

    MariaDB runs the per-timeframe reads as one UNION ALL of ordered, limited selects; SQLite
    cannot limit the parts of a compound select, so there each timeframe is its own query.
    """
    parts = []
    for timeframe, count in wanted.items():
        last_open = now - timedelta(milliseconds=timeframe_ms(timeframe))
        parts.append(Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__lte=last_open)
                     .order_by("-open_time")
                     .values_list("timeframe", "open_time", "open", "high", "low", "close", "volume")[:count])
    if len(parts) > 1 and connections[Candle.objects.db].features.supports_slicing_ordering_in_compound:
        rows = list(parts[0].union(*parts[1:], all=True))
    else:
        rows = [row for part in parts for row in part]
    by_timeframe: dict[str, list] = {timeframe: [] for timeframe in wanted}
    for row in rows:
        by_timeframe[row[0]].append(row[1:])
    return {timeframe: _bars_from_rows(sorted(found, key=lambda r: r[0]), timeframe_ms(timeframe))
            for timeframe, found in by_timeframe.items()}


def _bars_from_rows(rows: list, step_ms: int) -> Bars:
    times = np.array([int(r[0].timestamp() * 1000) for r in rows], dtype=np.int64)
    values = np.array([[float(v) for v in r[1:]] for r in rows], dtype=float).reshape(-1, 5)
    return Bars(times, values[:, 0], values[:, 1], values[:, 2], values[:, 3], values[:, 4], step_ms)


def resampled(bars: Bars, source: str, target: str) -> Bars:
    """Return the complete `target` bars aggregated from `bars` (market.resample's rule, on arrays)."""
    # complete_only: a bucket is kept only when every source bar exists, so it has closed.
    times, out = resample_columns(bars.open_time_ms, {"open": bars.open, "high": bars.high, "low": bars.low,
                                                      "close": bars.close, "volume": bars.volume}, source, target)
    return Bars(times.astype(np.int64), out["open"], out["high"], out["low"], out["close"], out["volume"],
                timeframe_ms(target))


def views_filled(higher: dict[str, Bars], timeframe: str, bars_per_view: int, load_source) -> dict[str, Bars]:
    """Return the views with each thin one (under half of `bars_per_view`) resampled from the decision timeframe.

    `load_source(n)` returns the last n bars of `timeframe`, loaded once for all thin views. Shared by
    the live path (stored candles) and the backtester (candle arrays): one rule for both.
    """
    thin = [tf for tf in higher if tf != timeframe and len(higher[tf]) < bars_per_view // 2]
    if not thin:
        return higher
    ratio = max(timeframe_ms(tf) // timeframe_ms(timeframe) for tf in thin)
    source = load_source(min(ratio * bars_per_view, MAX_RESAMPLE_SOURCE_BARS))
    out = dict(higher)
    for target in thin:
        made = resampled(source, timeframe, target) if len(source) else higher[target]
        if len(made) > len(higher[target]):
            out[target] = made
    return out


def _last(bars: Bars, count: int) -> Bars:
    """Return the last `count` bars of `bars` (a view and a structure timeframe can be the same one)."""
    if len(bars) <= count:
        return bars
    return Bars(*(a[-count:] for a in (bars.open_time_ms, bars.open, bars.high, bars.low, bars.close, bars.volume)),
                bars.timeframe_ms)


def structure_bars_load(*, instrument: Instrument, timeframe: str, now: datetime, count: int = STRUCTURE_BARS) -> Bars:
    """Return up to `count` closed bars of `timeframe`, resampled from stored 1m bars when too few are stored."""
    bars = bars_load(instrument=instrument, timeframe=timeframe, now=now, count=count)
    return structure_bars_from(bars, timeframe, count, lambda n: bars_load(instrument=instrument, timeframe="1m",
                                                                            now=now, count=n))


def structure_bars_from(bars: Bars, timeframe: str, count: int, load_1m) -> Bars:
    """Return `bars`, or the last `count` bars resampled from 1m (`load_1m(n)`) when too few are stored.

    Shared by the live path (stored candles) and the backtester (candle arrays): one rule for both.
    """
    if len(bars) >= count // 2 or timeframe == "1m":
        return bars
    ratio = timeframe_ms(timeframe) // timeframe_ms("1m")
    # One bucket more: the oldest one is usually cut by the window and dropped as incomplete.
    source = load_1m(min(ratio * (count + 1), 20_000))
    if not len(source):
        return bars
    made = resampled(source, "1m", timeframe)
    if len(made) > count:
        made = Bars(*(a[-count:] for a in (made.open_time_ms, made.open, made.high, made.low, made.close,
                                           made.volume)), made.timeframe_ms)
    return made if len(made) > len(bars) else bars


def context_load(*, instrument: Instrument, timeframe: str, now: datetime, bars_per_view: int = 30,
                 book_max_age: timedelta = timedelta(minutes=2), structure_timeframes: tuple[str, ...] = ()) -> Context:
    """Return closed bars of each multi-timeframe view and the latest fresh order book as of `now`.

    A view with too few stored candles is resampled from the decision timeframe's candles, which
    are loaded once for all such views.
    """
    views = [tf for tf in TIMEFRAMES if timeframe_ms(tf) >= timeframe_ms(timeframe)]
    structure_views = [tf for tf in structure_timeframes if tf != timeframe]
    # One read for the views and the stored structure bars (STRUCTURE_BARS each).
    wanted = {tf: bars_per_view for tf in views}
    for tf in structure_views:
        wanted[tf] = max(wanted.get(tf, 0), STRUCTURE_BARS)
    stored = bars_load_many(instrument=instrument, now=now, wanted=wanted)
    higher = {tf: _last(stored[tf], bars_per_view) for tf in views}
    higher = views_filled(higher, timeframe, bars_per_view,
                          lambda n: bars_load(instrument=instrument, timeframe=timeframe, now=now, count=n))
    structure = {tf: structure_bars_from(_last(stored[tf], STRUCTURE_BARS), tf, STRUCTURE_BARS,
                                         lambda n: bars_load(instrument=instrument, timeframe="1m", now=now, count=n))
                 for tf in structure_views}
    book = (OrderBookSnapshot.objects.filter(instrument=instrument, ts__lte=now, ts__gte=now - book_max_age)
            .order_by("-ts").values_list("bids", "asks").first())
    if book is None:
        return Context(higher=higher, structure=structure)
    bids, asks = (np.array([[float(p), float(q)] for p, q in side], dtype=float).reshape(-1, 2) for side in book)
    return Context(higher=higher, structure=structure, book_bids=bids, book_asks=asks)
