"""Reads for the analytics stage."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from analytics.snapshot import Bars
from market.models import Candle, Instrument
from market.timeframes import timeframe_ms


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
    if not rows:
        empty = np.array([], dtype=float)
        return Bars(np.array([], dtype=np.int64), empty, empty, empty, empty, empty, step_ms)
    times = np.array([int(r[0].timestamp() * 1000) for r in rows], dtype=np.int64)
    values = np.array([[float(v) for v in r[1:]] for r in rows], dtype=float)
    return Bars(times, values[:, 0], values[:, 1], values[:, 2], values[:, 3], values[:, 4], step_ms)
