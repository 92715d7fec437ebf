"""The equity curve of the equity page and the API, fast: the same LTTB selection and drawdown as
dashboard.selectors.equity_series (its reference, kept for the tests that compare the two).

Why not call equity_series directly: it loads every point as (aware datetime, Decimal), which is
where the time goes on a long curve: 11 s for 500,000 points on MariaDB (bench/README.md, API
load). Here the range is read as two float columns (epoch seconds, equity) in SQL, LTTB
(dashboard.downsample.lttb_indices) picks the points, and only the picked rows are read back as
exact Decimals.

The float columns of a range are kept in this process, so the engine's new point every minute (and
its revisions while the minute is current) costs a read of the new points, not of the whole range:
  - The newest point of the range (time, id, value) is read on every request (under 1 ms). While it
    is unchanged, the computed curve is served as it is.
  - When it changed, one aggregate over the kept points before the previous newest one (COUNT,
    MAX(id), SUM(equity), and the peak before the range; a table scan, 0.15-0.3 s for 500,000
    points on MariaDB) tells whether any of them was inserted, deleted or rewritten. If not, only
    the points from the previous newest one on are read (catching its revision too), spliced on,
    and LTTB and the drawdown rerun on the floats; otherwise the range is read again in full.
    Either way the curve is the one a computation from scratch returns
    (tests/dashboard/api/test_equity_cache_extend.py).
  - A rewrite of an older point while the newest point stays the same is therefore seen at the next
    new point, or by the same aggregate CACHE_SECONDS after the last one at the latest.
Memory: 24 bytes a point (id, seconds, equity), 12 MB for 500,000; at most CACHE_POINTS points over
at most CACHE_RANGES ranges (the newest range is kept even when it alone is larger), plus at most
CURVES_PER_RANGE computed curves a range (about 0.55 MB for 1,000 points).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import MAX_PREC, Context, Decimal

import numpy as np
from django.db import connection
from django.db.models import FloatField, Max
from django.db.models.functions import Cast

from dashboard.api.fields import iso_utc, plain
from dashboard.downsample import lttb_indices
from dashboard.selectors import CENT, EquitySeries
from execution.models import Account, EquityPoint

CACHE_SECONDS = 300
CACHE_RANGES = 16
CACHE_POINTS = 2_000_000
CURVES_PER_RANGE = 4
# The (account, ts) unique index; the aggregate check skips it on MariaDB (see _prefix_check).
_ACCOUNT_TS_INDEX = next(c.name for c in EquityPoint._meta.constraints if tuple(c.fields) == ("account", "ts"))
_clock = time.monotonic
# Adds the exact sums of two parts without rounding them to 28 digits.
_EXACT = Context(prec=MAX_PREC)


@dataclass(frozen=True)
class Curve:
    """A computed curve and its points as the API prints them, formatted once per computation."""

    series: EquitySeries
    points: list[dict]


@dataclass(frozen=True)
class _Points:
    """A range's points, oldest first: the floats LTTB and the drawdown read, the ids to read back."""

    ids: np.ndarray
    seconds: np.ndarray
    equity: np.ndarray


@dataclass(frozen=True)
class _Range:
    """The kept floats of one range, checked against the database at `verified_at` (monotonic seconds)."""

    points: _Points
    prior_peak: Decimal | None
    newest: tuple            # (ts, id, equity_usdt) of the range's newest point
    prefix: tuple            # (count, max id, equity sum) of the points before the newest one
    prior_max: object        # the peak before the range as the aggregate returns it, None without a start
    verified_at: float
    curves: OrderedDict[int, Curve] = field(default_factory=OrderedDict)


_EMPTY = Curve(EquitySeries([], [], [], None, downsampled=False), [])
_ranges: OrderedDict[tuple, _Range] = OrderedDict()
_cache_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}


def equity_curve(account: Account, start: datetime | None, end: datetime | None, max_points: int) -> Curve:
    """Return the equity curve of `account` in [start, end], LTTB-downsampled to at most `max_points`."""
    key = (account.pk, start, end)
    newest = _newest(account, start, end)
    if newest is None:
        return _EMPTY
    cached = _curve_cached(key, newest, max_points)
    if cached is not None:
        return cached
    # One computation per range at a time: clients asking for it wait for it, not redo it.
    with _cache_lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        # Read again: the computation waited for may have seen a newer point.
        newest = _newest(account, start, end)
        cached = _EMPTY if newest is None else _curve_cached(key, newest, max_points)
        if cached is None:
            cached = _curve_refresh(account, start, end, newest, max_points)
    with _cache_lock:
        _key_locks.pop(key, None)
    return cached


def cache_clear() -> None:
    """Forget every kept range and computed curve (tests)."""
    with _cache_lock:
        _ranges.clear()


def _newest(account: Account, start: datetime | None, end: datetime | None) -> tuple | None:
    # MAX(ts) then one unique-key lookup: MariaDB answers ORDER BY ts DESC LIMIT 1 inside a range by
    # walking the account's whole index backwards (seconds on 500,000 points).
    last = _in_range(account, start, end).aggregate(last=Max("ts"))["last"]
    if last is None:
        return None
    row = EquityPoint.objects.filter(account=account, ts=last).values_list("pk", "equity_usdt").first()
    return None if row is None else (last, *row)


def _in_range(account: Account, start: datetime | None, end: datetime | None):
    points = EquityPoint.objects.filter(account=account)
    if start:
        points = points.filter(ts__gte=start)
    if end:
        points = points.filter(ts__lte=end)
    return points


def _curve_cached(key: tuple, newest: tuple, max_points: int) -> Curve | None:
    with _cache_lock:
        state = _ranges.get(key)
        if state is None or state.newest != newest or state.verified_at + CACHE_SECONDS < _clock():
            return None
        _ranges.move_to_end(key)
        curve = state.curves.get(max_points)
        if curve is not None:
            state.curves.move_to_end(max_points)
        return curve


def _curve_refresh(account: Account, start: datetime | None, end: datetime | None, newest: tuple,
                   max_points: int) -> Curve:
    """Bring the range's floats up to date (from the kept ones when they still hold) and compute the curve."""
    key = (account.pk, start, end)
    with _cache_lock:
        state = _ranges.get(key)
    if state is None:
        state = _range_read(account, start, end, newest)
    elif state.newest != newest or state.verified_at + CACHE_SECONDS < _clock():
        state = _range_extend(account, start, end, newest, state) or _range_read(account, start, end, newest)
    with _cache_lock:
        curve = state.curves.get(max_points)
    if curve is None:
        curve = _curve_compute(state, max_points)
    if curve is None:
        # A kept row is gone (deleted since the last check): the floats are stale, read them again.
        state = _range_read(account, start, end, newest)
        curve = _curve_compute(state, max_points)
        if curve is None:
            raise RuntimeError(f"equity points of account {account.pk} were deleted while being read")
    _range_put(key, state, max_points, curve)
    return curve


def _range_read(account: Account, start: datetime | None, end: datetime | None, newest: tuple) -> _Range:
    # The aggregate before the floats: a write in between makes the next check fail (a needless full
    # read), never pass over stale floats.
    prefix, prior_max = _prefix_check(account, start, newest[0])
    points = _Points(*_floats(account, start, end))
    prior_peak = None
    if start:
        prior_peak = EquityPoint.objects.filter(account=account, ts__lt=start).aggregate(p=Max("equity_usdt"))["p"]
    return _Range(points, prior_peak, newest, prefix, prior_max, _clock())


def _range_extend(account: Account, start: datetime | None, end: datetime | None, newest: tuple,
                  state: _Range) -> _Range | None:
    """Return the kept range with the points from its newest one on read again, or None if older ones changed."""
    kept_last = state.newest[0]
    if newest[0] < kept_last:
        return None     # the kept newest point was deleted: rare, read in full
    before, prior_max = _prefix_check(account, start, kept_last)
    if before != state.prefix or prior_max != state.prior_max:
        return None
    prefix = _sums_add(before, _segment_sums(account, kept_last, newest[0]))
    count = before[0]
    tail = _Points(*_floats(account, kept_last, end))
    kept = state.points
    # The newest point's exact value too: two amounts a float cannot tell apart may print differently.
    unchanged = state.newest == newest and all(np.array_equal(a[count:], b) for a, b in zip(
        (kept.ids, kept.seconds, kept.equity), (tail.ids, tail.seconds, tail.equity)))
    points = kept if unchanged else _Points(
        np.concatenate((kept.ids[:count], tail.ids)), np.concatenate((kept.seconds[:count], tail.seconds)),
        np.concatenate((kept.equity[:count], tail.equity)))
    # Same floats: the computed curves still hold.
    curves = state.curves if unchanged else OrderedDict()
    return _Range(points, state.prior_peak, newest, prefix, prior_max, _clock(), curves)


def _range_put(key: tuple, state: _Range, max_points: int, curve: Curve) -> None:
    ids = state.points.ids
    count = state.prefix[0]
    # Keep only floats that match the aggregate they will be checked against: a point written between
    # the two reads leaves them out of step, and the next request reads the range in full.
    consistent = (len(ids) == count + 1 and int(ids[-1]) == state.newest[1]
                  and (count == 0 or int(ids[:count].max()) == state.prefix[1]))
    with _cache_lock:
        if not consistent:
            _ranges.pop(key, None)
            return
        state.curves[max_points] = curve
        while len(state.curves) > CURVES_PER_RANGE:
            state.curves.popitem(last=False)
        _ranges[key] = state
        _ranges.move_to_end(key)
        while len(_ranges) > 1 and (len(_ranges) > CACHE_RANGES or _points_kept() > CACHE_POINTS):
            _ranges.popitem(last=False)


def _points_kept() -> int:
    return sum(len(state.points.ids) for state in _ranges.values())


def _curve_compute(state: _Range, max_points: int) -> Curve | None:
    """Return the curve of the kept floats, or None if a row they name no longer exists."""
    series = _series(state.points, state.prior_peak, max_points)
    if series is None:
        return None
    return Curve(series, [{"ts": iso_utc(t), "equity_usdt": plain(e), "drawdown_pct": d}
                          for t, e, d in zip(series.times, series.equity_usdt, series.drawdown_pct)])


def _series(points: _Points, prior_peak: Decimal | None, max_points: int) -> EquitySeries | None:
    ids, values = points.ids, points.equity
    # The drawdown as dashboard.selectors.equity_series computes it: from the running peak,
    # which counts the peak before the range.
    peaks = np.maximum.accumulate(np.maximum(values, float(prior_peak) if prior_peak is not None else -np.inf))
    drawdown = np.where(peaks > 0, (values - peaks) / np.where(peaks > 0, peaks, 1) * 100, 0.0)
    keep = lttb_indices(points.seconds, values, max_points)
    top = int(np.argmax(values))
    wanted = {int(ids[i]) for i in (*keep, top)}
    exact = {pk: (ts, amount) for pk, ts, amount in EquityPoint.objects.filter(
        pk__in=wanted).values_list("pk", "ts", "equity_usdt").order_by()}
    if len(exact) != len(wanted):
        return None
    peak = exact[int(ids[top])][1]
    if prior_peak is not None:
        peak = max(peak, prior_peak)
    return EquitySeries(
        times=[exact[int(ids[i])][0] for i in keep],
        equity_usdt=[exact[int(ids[i])][1].quantize(CENT) for i in keep],
        drawdown_pct=[round(float(drawdown[i]), 4) for i in keep],
        peak_equity_usdt=peak.quantize(CENT),
        downsampled=len(keep) < len(ids),
    )


def _prefix_check(account: Account, start: datetime | None, boundary: datetime) -> tuple[tuple, object]:
    """Return the (count, max id, equity sum) of the range's points before `boundary`, and the peak before
    `start` as the database returns it (None without a start), in one scan of the account's points.
    """
    adapt = connection.ops.adapt_datetimefield_value
    # MariaDB answers this through the (account, ts) index, one primary-key lookup a row: 0.8-2.2 s for
    # 500,000 points, against 0.15-0.2 s scanning the table. Right while the table holds a few accounts.
    hint = f" IGNORE INDEX ({_ACCOUNT_TS_INDEX})" if connection.vendor == "mysql" else ""
    table = f"{EquityPoint._meta.db_table}{hint} WHERE account_id = %s AND ts < %s"
    with connection.cursor() as cursor:
        if start is None:
            cursor.execute(f"SELECT COUNT(*), MAX(id), {_equity_sum()} FROM {table}", [account.pk, adapt(boundary)])
            return tuple(cursor.fetchone()), None
        # Grouped, not CASE WHEN per column: a CASE per row and column doubles MariaDB's time.
        cursor.execute(f"SELECT ts >= %s, COUNT(*), MAX(id), {_equity_sum()}, MAX(equity_usdt) FROM {table} "
                       "GROUP BY 1", [adapt(start), account.pk, adapt(boundary)])
        groups = {bool(row[0]): row[1:] for row in cursor.fetchall()}
    inside, before = groups.get(True), groups.get(False)
    return (tuple(inside[:3]) if inside else (0, None, None)), (before[3] if before else None)


def _segment_sums(account: Account, lower: datetime, upper: datetime) -> tuple:
    """Return the (count, max id, equity sum) of the points in [lower, upper): a few, through the index."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), MAX(id), {_equity_sum()} FROM {EquityPoint._meta.db_table} "
                       "WHERE account_id = %s AND ts >= %s AND ts < %s", [account.pk, adapt(lower), adapt(upper)])
        return tuple(cursor.fetchone())


def _equity_sum() -> str:
    # SQLite keeps the amounts as floats, whose sums depend on the order of addition: sum whole
    # micro-dollars there, so the sum of two parts equals the sum of the whole (a rewrite by less than
    # a micro-dollar goes unseen). Elsewhere the SUM of a DECIMAL column is exact.
    if connection.vendor == "sqlite":
        return "SUM(CAST(ROUND(equity_usdt * 1000000) AS INTEGER))"
    return "SUM(equity_usdt)"


def _sums_add(first: tuple, second: tuple) -> tuple:
    if not second[0]:
        return first
    if not first[0]:
        return second
    total = _EXACT.add(first[2], second[2]) if isinstance(first[2], Decimal) else first[2] + second[2]
    return first[0] + second[0], max(first[1], second[1]), total


def _floats(account: Account, start: datetime | None, end: datetime | None):
    """Return (ids, epoch seconds, equity) of the points in [start, end], oldest first, as numpy arrays."""
    if connection.vendor != "mysql":
        rows = list(_in_range(account, start, end).order_by("ts").values_list(
            "pk", "ts", Cast("equity_usdt", FloatField())))
        return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1].timestamp() for r in rows]),
                np.array([r[2] for r in rows], dtype=np.float64))
    # Epoch and equity as doubles in SQL: converting 500,000 datetimes and Decimals in Python costs
    # seconds. The session time zone is UTC (the settings' init_command), as the column is stored.
    table = EquityPoint._meta.db_table
    sql = (f"SELECT id, CAST(UNIX_TIMESTAMP(ts) AS DOUBLE), CAST(equity_usdt AS DOUBLE) FROM {table} "
           "WHERE account_id = %s")
    params = [account.pk]
    for bound, operator in ((start, ">="), (end, "<=")):
        if bound is not None:
            sql += f" AND ts {operator} %s"
            params.append(connection.ops.adapt_datetimefield_value(bound))
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY ts", params)
        rows = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, 3)
    return rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2]
