"""Coverage of stored series: the share of expected rows present per day, and the gaps.

Pure: no Django, no I/O, no clock. Times are epoch milliseconds (UTC).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from market.gaps import Gap

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class DayCoverage:
    day: date
    expected: int
    present: int

    @property
    def share(self) -> float:
        return self.present / self.expected if self.expected else 1.0


@dataclass(frozen=True, slots=True)
class SeriesCoverage:
    name: str
    step_ms: int
    first_ms: int | None
    last_ms: int | None
    rows: int
    days: tuple[DayCoverage, ...]
    gaps: tuple[Gap, ...]

    @property
    def expected(self) -> int:
        return sum(d.expected for d in self.days)

    @property
    def share(self) -> float:
        """Return present / expected over the covered days (1.0 for an empty range)."""
        return sum(d.present for d in self.days) / self.expected if self.expected else 1.0


class SeriesGapError(ValueError):
    """A builder needs a complete window and the stored series has a hole: fill it or allow gaps."""


def _slots(times_ms: np.ndarray, step_ms: int) -> np.ndarray:
    # Funding and open-interest stamps can sit a few ms after the period mark: bucket by floor.
    return np.unique(np.asarray(times_ms, dtype="int64") // step_ms * step_ms)


def window_gaps(times_ms: np.ndarray, step_ms: int, start_ms: int, end_ms: int) -> tuple[Gap, ...]:
    """Return the gaps of the slots in [start_ms, end_ms), counting a missing head and tail."""
    first = -(-start_ms // step_ms) * step_ms  # first slot at or after start
    slots = _slots(times_ms, step_ms)
    slots = slots[(slots >= first) & (slots < end_ms)]
    edges = np.concatenate(([first - step_ms], slots, [-(-end_ms // step_ms) * step_ms]))
    delta = np.diff(edges)
    where = np.flatnonzero(delta > step_ms)
    return tuple(Gap(int(edges[i] + step_ms), int(edges[i + 1]), int(delta[i] // step_ms - 1)) for i in where)


def series_coverage(name: str, times_ms: np.ndarray, step_ms: int, *,
                    start_ms: int | None = None, end_ms: int | None = None) -> SeriesCoverage:
    """Return per-day coverage of a series with one row expected every `step_ms` in [start, end)."""
    slots = _slots(times_ms, step_ms)
    if start_ms is None:
        start_ms = int(slots[0]) if len(slots) else 0
    if end_ms is None:
        end_ms = int(slots[-1]) + step_ms if len(slots) else 0
    inside = slots[(slots >= start_ms) & (slots < end_ms)]
    days = []
    for day_start in range(start_ms // DAY_MS * DAY_MS, end_ms, DAY_MS):
        lo, hi = max(day_start, start_ms), min(day_start + DAY_MS, end_ms)
        expected = len(range(-(-lo // step_ms) * step_ms, hi, step_ms))
        present = int(((inside >= lo) & (inside < hi)).sum())
        days.append(DayCoverage(datetime.fromtimestamp(day_start / 1000, tz=UTC).date(), expected, present))
    return SeriesCoverage(
        name=name, step_ms=step_ms,
        first_ms=int(inside[0]) if len(inside) else None, last_ms=int(inside[-1]) if len(inside) else None,
        rows=len(inside), days=tuple(days),
        gaps=window_gaps(inside, step_ms, start_ms, end_ms) if end_ms > start_ms else (),
    )


def require_complete(name: str, times_ms: np.ndarray, step_ms: int, start_ms: int, end_ms: int) -> None:
    """Raise SeriesGapError naming the first gap when [start_ms, end_ms) is not fully covered."""
    gaps = window_gaps(times_ms, step_ms, start_ms, end_ms)
    if gaps:
        first = gaps[0]
        raise SeriesGapError(
            f"{name}: {sum(g.missing_bars for g in gaps)} missing rows in the window, first gap "
            f"{_fmt(first.start_ms)} to {_fmt(first.end_ms)} ({first.missing_bars} rows)"
        )


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
