"""Find missing bars in a series of candle open times. Pure: no Django, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from market.timeframes import timeframe_ms


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two present bars; times are epoch ms."""

    start_ms: int  # open time of the first missing bar
    end_ms: int  # open time of the next present bar (exclusive end)
    missing_bars: int

    @property
    def start_utc(self) -> str:
        """Return the first missing bar's open time as 'YYYY-MM-DD HH:MM' UTC."""
        return format_ms(self.start_ms)


@dataclass(frozen=True, slots=True)
class GapSummary:
    """Coverage of one series: first and last open time (ms), rows, and every gap."""

    first_ms: int | None
    last_ms: int | None
    rows: int
    gaps: tuple[Gap, ...]

    @property
    def missing_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps)

    def biggest(self, count: int = 3) -> list[Gap]:
        """Return the `count` largest gaps, largest first, earliest first among equals."""
        return sorted(self.gaps, key=lambda g: (-g.missing_bars, g.start_ms))[:count]


def find_gaps(open_time_ms: np.ndarray, timeframe: str) -> tuple[Gap, ...]:
    """Return the gaps in ascending open times (ms) of `timeframe` bars; duplicates are ignored."""
    step = timeframe_ms(timeframe)
    times = np.asarray(open_time_ms, dtype="int64")
    if len(times) < 2:
        return ()
    delta = np.diff(times)
    if (delta < 0).any():
        raise ValueError("open times must be sorted ascending")
    where = np.flatnonzero(delta > step)
    # Bars off the grid (a partial step) count as the whole bars that fit in between.
    missing = (delta[where] - 1) // step
    return tuple(
        Gap(start_ms=int(times[i] + step), end_ms=int(times[i + 1]), missing_bars=int(m))
        for i, m in zip(where, missing)
    )


def summarize(open_time_ms: np.ndarray, timeframe: str) -> GapSummary:
    """Return first/last open time, row count and gaps of ascending open times (ms)."""
    times = np.asarray(open_time_ms, dtype="int64")
    if not len(times):
        return GapSummary(first_ms=None, last_ms=None, rows=0, gaps=())
    return GapSummary(
        first_ms=int(times[0]), last_ms=int(times[-1]), rows=len(times), gaps=find_gaps(times, timeframe)
    )


def format_ms(ts_ms: int | None) -> str:
    """Return 'YYYY-MM-DD HH:MM' UTC for epoch ms, or '-'."""
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_summary(summary: GapSummary, top: int = 3) -> str:
    """Return one line: first, last, rows, gaps, missing bars and the `top` biggest gaps."""
    biggest = ", ".join(f"{format_ms(g.start_ms)} ({g.missing_bars})" for g in summary.biggest(top)) or "-"
    return (f"first {format_ms(summary.first_ms)}, last {format_ms(summary.last_ms)}, rows {summary.rows}, "
            f"gaps {len(summary.gaps)}, missing bars {summary.missing_bars}, biggest: {biggest}")
