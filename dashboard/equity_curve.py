"""The equity curve of the equity page and the API, fast: the same LTTB selection and drawdown as
dashboard.selectors.equity_series (its reference, kept for the tests that compare the two).

Why not call equity_series directly: it loads every point as (aware datetime, Decimal), which is
where the time goes on a long curve: 11 s for 500,000 points on MariaDB (bench/README.md, API
load). Here the range is read as two float columns (epoch seconds, equity) in SQL, LTTB
(dashboard.downsample.lttb_indices) picks the points, and only the picked rows are read back as
exact Decimals. The result is kept in this process, keyed by the range and by the newest point of
the range (its time and value), so a new or updated last point is seen at once; a rewritten older
point (rare: a late funding booking) is seen within CACHE_SECONDS.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection
from django.db.models import FloatField, Max
from django.db.models.functions import Cast

from dashboard.api.fields import iso_utc, plain
from dashboard.downsample import lttb_indices
from dashboard.selectors import CENT, EquitySeries
from execution.models import Account, EquityPoint

CACHE_SECONDS = 300
CACHE_ENTRIES = 64



@dataclass(frozen=True)
class Curve:
    """A computed curve and its points as the API prints them, formatted once per computation."""

    series: EquitySeries
    points: list[dict]


_cache: OrderedDict[tuple, tuple[float, Curve]] = OrderedDict()
_cache_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}


def equity_curve(account: Account, start: datetime | None, end: datetime | None, max_points: int) -> Curve:
    """Return the equity curve of `account` in [start, end], LTTB-downsampled to at most `max_points`."""
    points = EquityPoint.objects.filter(account=account)
    if start:
        points = points.filter(ts__gte=start)
    if end:
        points = points.filter(ts__lte=end)
    # MAX(ts) then one unique-key lookup: MariaDB answers ORDER BY ts DESC LIMIT 1 inside a range by
    # walking the account's whole index backwards (seconds on 500,000 points).
    last = points.aggregate(last=Max("ts"))["last"]
    if last is None:
        return Curve(EquitySeries([], [], [], None, downsampled=False), [])
    newest = (last, EquityPoint.objects.filter(account=account, ts=last).values_list("equity_usdt", flat=True)[0])
    key = (account.pk, start, end, max_points, newest)
    cached = _cache_get(key)
    if cached is not None:
        return cached
    # One computation per key at a time: clients asking for the same curve wait for it, not redo it.
    with _cache_lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        cached = _cache_get(key)
        if cached is None:
            series = _series_compute(account, points, start, end, max_points)
            cached = Curve(series, [{"ts": iso_utc(t), "equity_usdt": plain(e), "drawdown_pct": d}
                                    for t, e, d in zip(series.times, series.equity_usdt, series.drawdown_pct)])
            _cache_put(key, cached)
    with _cache_lock:
        _key_locks.pop(key, None)
    return cached


def _cache_get(key: tuple) -> Curve | None:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        _cache.move_to_end(key)
        return entry[1]


def _cache_put(key: tuple, curve: Curve) -> None:
    with _cache_lock:
        _cache[key] = (time.monotonic() + CACHE_SECONDS, curve)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)


def cache_clear() -> None:
    """Forget every computed curve (tests)."""
    with _cache_lock:
        _cache.clear()


def _series_compute(account: Account, points, start: datetime | None, end: datetime | None,
                    max_points: int) -> EquitySeries:
    ids, seconds, values = _floats(account, points, start, end)
    prior_peak = None
    if start:
        prior_peak = EquityPoint.objects.filter(account=account, ts__lt=start).aggregate(p=Max("equity_usdt"))["p"]
    # The drawdown as dashboard.selectors.equity_series computes it: from the running peak,
    # which counts the peak before the range.
    peaks = np.maximum.accumulate(np.maximum(values, float(prior_peak) if prior_peak is not None else -np.inf))
    drawdown = np.where(peaks > 0, (values - peaks) / np.where(peaks > 0, peaks, 1) * 100, 0.0)
    keep = lttb_indices(seconds, values, max_points)
    top = int(np.argmax(values))
    exact = {pk: (ts, amount) for pk, ts, amount in EquityPoint.objects.filter(
        pk__in=[int(ids[i]) for i in (*keep, top)]).values_list("pk", "ts", "equity_usdt").order_by()}
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


def _floats(account: Account, points, start: datetime | None, end: datetime | None):
    """Return (ids, epoch seconds, equity) of the range's points, oldest first, as numpy arrays."""
    if connection.vendor != "mysql":
        rows = list(points.order_by("ts").values_list("pk", "ts", Cast("equity_usdt", FloatField())))
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
