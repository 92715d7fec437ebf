"""Reads of stored market series."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
from django.db.models import QuerySet

from market.coverage import DAY_MS, DayCoverage, SeriesCoverage, series_coverage
from market.gaps import Gap
from market.models import Candle, DerivativesSample, EtfFlow, Instrument, OrderBookSnapshot
from market.timeframes import timeframe_ms

_PERIOD_MS = {"8h": 8 * 3_600_000}


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    name: str
    step_ms: int
    times: QuerySet  # values_list of one datetime column


def _ms(values) -> np.ndarray:
    return np.array([int(v.timestamp() * 1000) for v in values], dtype="int64")


def series_specs(instrument: Instrument) -> list[SeriesSpec]:
    """Return every stored series of `instrument` with the spacing its rows are expected at."""
    specs = []
    timeframes = Candle.objects.filter(instrument=instrument).values_list("timeframe", flat=True).distinct()
    for tf in sorted(set(timeframes), key=timeframe_ms):
        rows = Candle.objects.filter(instrument=instrument, timeframe=tf).order_by("open_time")
        specs.append(SeriesSpec(f"candles {tf}", timeframe_ms(tf), rows.values_list("open_time", flat=True)))
    kinds = DerivativesSample.objects.filter(instrument=instrument).values_list("kind", "period").distinct()
    for kind, period in sorted(set(kinds)):
        step = _PERIOD_MS.get(period) or timeframe_ms(period or "1h")
        rows = DerivativesSample.objects.filter(instrument=instrument, kind=kind, period=period).order_by("ts")
        specs.append(SeriesSpec(f"{kind} {period}".strip(), step, rows.values_list("ts", flat=True)))
    books = OrderBookSnapshot.objects.filter(instrument=instrument).order_by("ts")
    if books.exists():
        # Depth is sampled once a minute by the collector; anything sparser shows as gaps.
        specs.append(SeriesSpec("order book", 60_000, books.values_list("ts", flat=True)))
    return specs


def instrument_coverage(instrument: Instrument, *, start: datetime | None = None,
                        end: datetime | None = None) -> list[SeriesCoverage]:
    """Return the coverage of every stored series of `instrument`, optionally in [start, end)."""
    start_ms = int(start.timestamp() * 1000) if start else None
    end_ms = int(end.timestamp() * 1000) if end else None
    return [series_coverage(spec.name, _ms(spec.times), spec.step_ms, start_ms=start_ms, end_ms=end_ms)
            for spec in series_specs(instrument)]


def etf_coverage(asset: str, *, start: date, end: date) -> SeriesCoverage:
    """Return, for each weekday in [start, end), whether any ETF flow row exists for `asset`."""
    stored = set(EtfFlow.objects.filter(asset=asset, date__gte=start, date__lt=end).values_list("date", flat=True))
    weekdays = [date.fromordinal(o) for o in range(start.toordinal(), end.toordinal())
                if date.fromordinal(o).weekday() < 5]
    days = tuple(DayCoverage(d, 1, int(d in stored)) for d in weekdays)
    gaps, run = [], []
    for day in weekdays + [None]:
        if day is not None and day not in stored:
            run.append(day)
            continue
        if run:
            gaps.append(Gap(_day_ms(run[0]), _day_ms(run[-1]) + DAY_MS, len(run)))
            run = []
    present = sorted(d for d in weekdays if d in stored)
    return SeriesCoverage(f"ETF flows {asset}", DAY_MS, _day_ms(present[0]) if present else None,
                          _day_ms(present[-1]) if present else None, len(present), days, tuple(gaps))


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
