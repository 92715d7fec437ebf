"""Reads for the analytics stage."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connections
from django.db.models import BigIntegerField, QuerySet, Value

from analytics.features.mtf import TIMEFRAMES
from analytics.snapshot import Bars, Context
from market.models import Candle, CandleSeries, Instrument, OrderBookSnapshot
from market.resample import resample_columns
from market.timeframes import timeframe_ms
from tradingbot.compiled_reads import rows_compiled
from tradingbot.union import limited_parts_union, rows_union_all, union_all

# Enough 15m bars to resample ten weeks into 1w views without loading the whole history.
MAX_RESAMPLE_SOURCE_BARS = 7_000
STRUCTURE_BARS = 100            # closed bars per structure-confirmation timeframe
# A bar update's row: the timeframe, the bar (as bars_from_rows takes it) and a revision column (NULL).
UPDATE_COLUMNS = ("timeframe", "open_time", "open", "high", "low", "close", "volume", "revision")

# The bar reads of the running engine cycle, inside bars_remembered() only.
_cycle: ContextVar[_CycleReads | None] = ContextVar("bar_cycle", default=None)


@contextmanager
def bars_remembered() -> Iterator[None]:
    """Inside the block, bars_load and bars_load_many answer from the process's cache of closed bars.

    For one engine cycle: the first read of an instrument checks its series' revisions and brings
    every cached series up to `now` (two queries), then each read is a slice of the cache; bars
    are read from the database only for a series not cached yet, rewritten since (its revision
    changed) or asked deeper than cached. Outside the block every read goes to the database.
    """
    token = _cycle.set(_CycleReads())
    try:
        yield
    finally:
        _cycle.reset(token)


def bars_load(*, instrument: Instrument, timeframe: str, now: datetime, count: int) -> Bars:
    """Return up to `count` bars that had closed by `now`, oldest first."""
    cycle = _cycle.get()
    if cycle is not None:
        return _bars_cached(cycle, instrument.pk, timeframe, now, count)
    return bars_query(instrument_id=instrument.pk, timeframe=timeframe, now=now, count=count)


def bars_query(*, instrument_id: int, timeframe: str, now: datetime, count: int) -> Bars:
    """Return `bars_load` read from the database (no cache)."""
    return bars_from_rows(_rows_query(instrument_id, timeframe, now, count), timeframe_ms(timeframe))


def _rows_query(instrument_id: int, timeframe: str, now: datetime, count: int) -> list[tuple]:
    # A bar is usable once open_time + length <= now; anything later is still forming.
    last_open = now - timedelta(milliseconds=timeframe_ms(timeframe))
    rows = list(
        Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe, open_time__lte=last_open)
        .order_by("-open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume")[:count]
    )
    rows.reverse()
    return rows


def bars_load_many(*, instrument: Instrument, wanted: dict[str, int], now: datetime) -> dict[str, Bars]:
    """Return `bars_load` of each timeframe in `wanted` ({timeframe: count}), in one query where the database can.

    MariaDB runs the per-timeframe reads as one UNION ALL of ordered, limited selects; SQLite
    cannot limit the parts of a compound select, so there each timeframe is its own query.
    """
    cycle = _cycle.get()
    if cycle is not None:
        return {timeframe: _bars_cached(cycle, instrument.pk, timeframe, now, count)
                for timeframe, count in wanted.items()}
    parts = []
    for timeframe, count in wanted.items():
        last_open = now - timedelta(milliseconds=timeframe_ms(timeframe))
        parts.append(Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__lte=last_open)
                     .order_by("-open_time")
                     .values_list("timeframe", "open_time", "open", "high", "low", "close", "volume")[:count])
    rows = rows_union_all(parts)
    by_timeframe: dict[str, list] = {timeframe: [] for timeframe in wanted}
    for row in rows:
        by_timeframe[row[0]].append(row[1:])
    return {timeframe: bars_from_rows(sorted(found, key=lambda r: r[0]), timeframe_ms(timeframe))
            for timeframe, found in by_timeframe.items()}


@dataclass(frozen=True, slots=True)
class _Series:
    """Closed bars of one series as stored when its revision was `revision`, oldest first."""

    revision: int
    bars: Bars
    last: datetime | None   # the newest bar's stored open_time (an update reads the bars after it)
    complete: bool          # no stored bar is older than the first one held
    depth: int              # the most bars any read asked for: what an update keeps


@dataclass
class _CycleReads:
    """One cycle's revisions ({(instrument id, now): {timeframe: revision}}), read once per instrument and `now`."""

    revisions: dict[tuple[int, datetime], dict[str, int]] = field(default_factory=dict)


# (database, instrument id, timeframe) -> _Series, kept for the life of the process (an engine worker).
_SERIES: dict[tuple, _Series] = {}


def _series_key(instrument_id: int, timeframe: str) -> tuple:
    connection = connections[Candle.objects.db]
    return connection.alias, connection.settings_dict["NAME"], instrument_id, timeframe


def _bars_cached(cycle: _CycleReads, instrument_id: int, timeframe: str, now: datetime, count: int) -> Bars:
    """Return bars_load's answer from the cache, bringing it up to date first (see bars_remembered)."""
    revision = _revision(cycle, instrument_id, timeframe, now)
    if revision is None:    # no revision to check against (the series row could not be made)
        return bars_query(instrument_id=instrument_id, timeframe=timeframe, now=now, count=count)
    key = _series_key(instrument_id, timeframe)
    series = _SERIES.get(key)
    last_open_ms = _epoch_ms(now) - timeframe_ms(timeframe)
    held = 0 if series is None else int(np.searchsorted(series.bars.open_time_ms, last_open_ms, side="right"))
    if series is None or series.revision != revision or (held < count and not series.complete):
        depth = max(count, series.depth if series is not None else 0)
        rows = _rows_query(instrument_id, timeframe, now, depth)
        series = _SERIES[key] = _Series(revision, bars_from_rows(rows, timeframe_ms(timeframe)),
                                        rows[-1][0] if rows else None, len(rows) < depth, depth)
        held = len(rows)
    return _window(series.bars, max(0, held - count), held)


def _revision(cycle: _CycleReads, instrument_id: int, timeframe: str, now: datetime) -> int | None:
    """Return the series' revision as of this cycle; the first call per instrument also updates its cached series."""
    revisions = cycle.revisions.get((instrument_id, now))
    if revisions is None:
        revisions = cycle.revisions[(instrument_id, now)] = _series_update(instrument_id, now)
    if timeframe not in revisions:
        # The first cache of this series: it gets a revision that writers replace from now on.
        CandleSeries.objects.bulk_create([CandleSeries(instrument_id=instrument_id, timeframe=timeframe,
                                                       revision=secrets.randbits(63))], ignore_conflicts=True)
        revisions.update(_revisions_read(instrument_id))
    return revisions.get(timeframe)


def _revisions_read(instrument_id: int) -> dict[str, int]:
    return dict(rows_compiled("series revisions", CandleSeries, _revisions_query, instrument_id=instrument_id))


def _revisions_query(*, instrument_id: int) -> QuerySet:
    return CandleSeries.objects.filter(instrument_id=instrument_id).values_list("timeframe", "revision")


def _series_update(instrument_id: int, now: datetime) -> dict[str, int]:
    """Return the instrument's series revisions; drop its rewritten series from the cache and append the bars
    closed since to the others.

    Where the database can limit a compound select's parts, the revisions and the new bars of every
    cached series are one UNION ALL: one snapshot, so the bars are those of the revisions read with
    them. Elsewhere the revisions come first, then the bars of each series still current (a rewrite
    committed in between shows as a new revision next time). A part reads at most the series' depth
    of bars after its last cached one; when it reads that many, the bars in between are not needed
    and the read replaces the series.
    """
    instrument_key = _series_key(instrument_id, "")[:3]
    cached = {key[3]: series for key, series in _SERIES.items() if key[:3] == instrument_key}
    if cached and limited_parts_union(Candle.objects.db):
        revisions, rows = _revisions_and_updates_read(instrument_id, cached, now)
    else:
        revisions = _revisions_read(instrument_id)
        rows = _updates_read(instrument_id, {timeframe: series for timeframe, series in cached.items()
                                             if revisions.get(timeframe) == series.revision}, now)
    found: dict[str, list] = {}
    for timeframe, series in cached.items():
        if revisions.get(timeframe) != series.revision:
            del _SERIES[_series_key(instrument_id, timeframe)]
        else:
            found[timeframe] = []
    for row in rows:
        if row[0] in found:     # bars of a rewritten series, read along with its new revision, are dropped
            found[row[0]].append(row[1:-1])
    for timeframe, new in found.items():
        if new:
            _SERIES[_series_key(instrument_id, timeframe)] = _appended(
                cached[timeframe], sorted(new, key=lambda r: r[0]), timeframe_ms(timeframe))
    return revisions


def _update_shape(current: dict[str, _Series], now: datetime) -> tuple[tuple, list[dict]]:
    # The shape: each part's timeframe, depth and whether it has a last bar; the values bind the rest.
    shape = tuple((timeframe, series.depth, series.last is not None) for timeframe, series in current.items())
    bounds = [{"last_open": now - timedelta(milliseconds=timeframe_ms(timeframe)),
               **({"after": series.last} if series.last is not None else {})}
              for timeframe, series in current.items()]
    return shape, bounds


def _revisions_and_updates_read(instrument_id: int, cached: dict[str, _Series],
                                now: datetime) -> tuple[dict[str, int], list[tuple]]:
    """Return the instrument's series revisions and `_updates_read` of every series in `cached`, in one UNION ALL."""
    shape, bounds = _update_shape(cached, now)
    values = {f"{name}_{k}": value for k, part in enumerate(bounds) for name, value in part.items()}
    rows = rows_compiled(("revisions and bar updates", shape), Candle, lambda **v: union_all(
        [*(_update_part(v, k, timeframe, depth) for k, (timeframe, depth, _) in enumerate(shape)),
         _revisions_part(v)]), instrument_id=instrument_id, **values)
    # A revision row has no open time; a bar always has one.
    return ({row[0]: row[-1] for row in rows if row[1] is None}, [row for row in rows if row[1] is not None])


def _revisions_part(v: dict) -> QuerySet:
    # The revisions in the bar parts' layout: the timeframe, no open time nor prices, the revision.
    empty = {f"no_{name}": Value(None, output_field=Candle._meta.get_field(name)) for name in UPDATE_COLUMNS[1:-1]}
    return (CandleSeries.objects.filter(instrument_id=v["instrument_id"]).order_by().annotate(**empty)
            .values_list("timeframe", *empty, "revision"))


def _updates_read(instrument_id: int, current: dict[str, _Series], now: datetime) -> list[tuple]:
    """Return the bars of each series closed by `now` after its last cached one (at most its depth, newest first).

    One query each: SQLite cannot limit the parts of a compound select.
    """
    shape, bounds = _update_shape(current, now)
    rows = []
    for (timeframe, depth, has_last), part in zip(shape, bounds):
        rows += rows_compiled(("bar update", timeframe, depth, has_last), Candle,
                              lambda timeframe=timeframe, depth=depth, **v: _update_part(v, 0, timeframe, depth),
                              instrument_id=instrument_id, **{f"{name}_0": value for name, value in part.items()})
    return rows


def _update_part(v: dict, k: int, timeframe: str, depth: int) -> QuerySet:
    rows = Candle.objects.filter(instrument_id=v["instrument_id"], timeframe=timeframe,
                                 open_time__lte=v[f"last_open_{k}"])
    if f"after_{k}" in v:
        rows = rows.filter(open_time__gt=v[f"after_{k}"])
    # No revision: the column is there for the revisions read in one UNION ALL with the bars.
    return (rows.annotate(revision=Value(None, output_field=BigIntegerField())).order_by("-open_time")
            .values_list(*UPDATE_COLUMNS)[:depth])


def _appended(series: _Series, rows: list, step_ms: int) -> _Series:
    """Return the series with `rows` (newer than its last bar, oldest first) after its bars."""
    new, last = bars_from_rows(rows, step_ms), rows[-1][0]
    if len(rows) >= series.depth:
        return _Series(series.revision, new, last, False, series.depth)
    joined = Bars(*(np.concatenate([old, more]) for old, more in zip(_columns(series.bars), _columns(new))), step_ms)
    if len(joined) > 2 * series.depth:     # trimmed now and then, not on every bar
        return _Series(series.revision, _window(joined, len(joined) - series.depth, len(joined)), last, False,
                       series.depth)
    return _Series(series.revision, joined, last, series.complete, series.depth)


def _columns(bars: Bars) -> tuple[np.ndarray, ...]:
    return bars.open_time_ms, bars.open, bars.high, bars.low, bars.close, bars.volume


def _window(bars: Bars, start: int, stop: int) -> Bars:
    # Copies: callers get arrays of their own, the cache keeps its own.
    return Bars(*(a[start:stop].copy() for a in _columns(bars)), bars.timeframe_ms)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def bars_from_rows(rows: list, step_ms: int) -> Bars:
    """Return Bars of (open_time, open, high, low, close, volume) rows, in their order."""
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
    found = rows_compiled("latest book", OrderBookSnapshot, _book_query, instrument_id=instrument.pk, now=now,
                          since=now - book_max_age)
    book = found[0] if found else None
    if book is None:
        return Context(higher=higher, structure=structure)
    bids, asks = (np.array([[float(p), float(q)] for p, q in side], dtype=float).reshape(-1, 2) for side in book)
    return Context(higher=higher, structure=structure, book_bids=bids, book_asks=asks)


def _book_query(*, instrument_id: int, now: datetime, since: datetime) -> QuerySet:
    return (OrderBookSnapshot.objects.filter(instrument_id=instrument_id, ts__lte=now, ts__gte=since)
            .order_by("-ts").values_list("bids", "asks")[:1])
