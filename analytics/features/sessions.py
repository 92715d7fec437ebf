"""Trading sessions from a bar's UTC open time: which are open, their highs and lows, the next open.

Pure: no Django, no I/O, no clock. Fixed UTC hours, the same every day of the week (crypto
trades on weekends too), no daylight-saving shifts, so a bar's session is a function of its
timestamp alone:

- asia 00:00-08:00 UTC (Tokyo and Hong Kong business hours)
- eu   07:00-16:00 UTC (London's open one hour before the Asia close to its afternoon)
- us   13:30-20:00 UTC (the NYSE cash session in summer time; an hour early in winter)

Sessions overlap on purpose: asia+eu 07:00-08:00 and eu+us 13:30-16:00. A bar belongs to every
session whose [start, end) holds its open time; `active` is a bit mask over SESSIONS, so
overlaps are explicit. No session crosses midnight UTC, so "today's" session is well defined.
Meant for bars up to 1h long: a longer bar counts only where it opens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
MINUTE_MS = 60_000
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    start_ms: int               # from 00:00 UTC, inclusive
    end_ms: int                 # from 00:00 UTC, exclusive


SESSIONS = (
    Session("asia", 0, 8 * 60 * MINUTE_MS),
    Session("eu", 7 * 60 * MINUTE_MS, 16 * 60 * MINUTE_MS),
    Session("us", (13 * 60 + 30) * MINUTE_MS, 20 * 60 * MINUTE_MS),
)


@dataclass(frozen=True, slots=True)
class SessionSeries:
    """Per-bar session features; 2-D arrays have one column per entry of SESSIONS."""

    active: np.ndarray          # int8 bit mask: bit j set while SESSIONS[j] is open at the bar's open time
    high: np.ndarray            # (n, 3) running high of today's session so far; NaN before it starts today
    low: np.ndarray             # (n, 3) running low, likewise
    prev_high: np.ndarray       # (n, 3) high of the last completed session (ended at or before the bar opens)
    prev_low: np.ndarray        # (n, 3) low, likewise
    minutes_to_next_open: np.ndarray  # to the next session start strictly after the bar's open time


@dataclass(frozen=True, slots=True)
class SessionBar:
    """Session features of one bar; tuples follow SESSIONS."""

    active: int
    high: tuple[float, ...]
    low: tuple[float, ...]
    prev_high: tuple[float, ...]
    prev_low: tuple[float, ...]
    minutes_to_next_open: float


def minutes_to_next_open(open_time_ms: np.ndarray) -> np.ndarray:
    """Return minutes from each open time to the next session start strictly after it."""
    t = np.asarray(open_time_ms, np.int64)
    day_start = t - t % DAY_MS
    waits = []
    for session in SESSIONS:
        start = day_start + session.start_ms
        waits.append(np.where(start > t, start, start + DAY_MS) - t)
    return np.minimum.reduce(waits) / MINUTE_MS


def _segmented_running(values: np.ndarray, segment_starts: np.ndarray, ufunc) -> np.ndarray:
    out = np.empty_like(values)
    bounds = np.append(segment_starts, len(values))
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        ufunc.accumulate(values[start:stop], out=out[start:stop])
    return out


def _one_session(session, t, day, tod, high, low, columns) -> None:
    """Fill this session's column of today's running and previous completed high/low."""
    hi_out, lo_out, prev_hi_out, prev_lo_out = columns
    mask = (tod >= session.start_ms) & (tod < session.end_ms)
    inside = np.flatnonzero(mask)
    if len(inside) == 0:
        return
    in_day = day[inside]
    segment_starts = np.flatnonzero(np.diff(in_day, prepend=in_day[0] - 1))
    run_hi = _segmented_running(high[inside], segment_starts, np.maximum)
    run_lo = _segmented_running(low[inside], segment_starts, np.minimum)
    # Latest in-session bar at or before each bar; it counts only if it is from the same UTC day.
    last = np.cumsum(mask) - 1
    today = (last >= 0) & (in_day[np.maximum(last, 0)] == day)
    hi_out[:] = np.where(today, run_hi[np.maximum(last, 0)], np.nan)
    lo_out[:] = np.where(today, run_lo[np.maximum(last, 0)], np.nan)
    # A session is complete once a bar opens at or after its end.
    segment_ends = np.append(segment_starts[1:], len(inside)) - 1
    end_ms = in_day[segment_ends] * DAY_MS + session.end_ms
    done = np.searchsorted(end_ms, t, side="right") - 1
    prev_hi_out[:] = np.where(done >= 0, run_hi[segment_ends][np.maximum(done, 0)], np.nan)
    prev_lo_out[:] = np.where(done >= 0, run_lo[segment_ends][np.maximum(done, 0)], np.nan)


def sessions(open_time_ms: np.ndarray, high: np.ndarray, low: np.ndarray) -> SessionSeries:
    """Return the session features of every bar; open times in ms UTC, strictly increasing."""
    t = np.asarray(open_time_ms, np.int64)
    high, low = np.asarray(high, float), np.asarray(low, float)
    day = t // DAY_MS
    tod = t - day * DAY_MS
    shape = (len(t), len(SESSIONS))
    hi, lo, prev_hi, prev_lo = (np.full(shape, np.nan) for _ in range(4))
    active = np.zeros(len(t), np.int8)
    for j, session in enumerate(SESSIONS):
        active |= (((tod >= session.start_ms) & (tod < session.end_ms)) << j).astype(np.int8)
        _one_session(session, t, day, tod, high, low, (hi[:, j], lo[:, j], prev_hi[:, j], prev_lo[:, j]))
    return SessionSeries(active, hi, lo, prev_hi, prev_lo, minutes_to_next_open(t))


def sessions_last(open_time_ms: np.ndarray, high: np.ndarray, low: np.ndarray) -> SessionBar:
    """Return `sessions(...)` at the last bar only (at least one bar), without the per-bar arrays.

    Today's session so far is every in-session bar of the last bar's UTC day (a session never
    crosses midnight), and the last completed one is the latest day's session that ended by the
    last bar's open; highs and lows are exact, so they equal the running values of `sessions`.
    """
    t = np.asarray(open_time_ms, np.int64)
    high, low = np.asarray(high, float), np.asarray(low, float)
    day = t // DAY_MS
    tod = t - day * DAY_MS
    now, today = int(t[-1]), int(day[-1])
    active, levels = 0, []
    for j, session in enumerate(SESSIONS):
        inside = (tod >= session.start_ms) & (tod < session.end_ms)
        active |= int(inside[-1]) << j
        levels.append(_session_levels(session, inside, day, high, low, now, today))
    hi, lo, prev_hi, prev_lo = zip(*levels)
    return SessionBar(active, hi, lo, prev_hi, prev_lo, float(minutes_to_next_open(t[-1:])[0]))


def _session_levels(session, inside, day, high, low, now: int, today: int) -> tuple[float, ...]:
    # numpy floats, as read from the arrays of `sessions`.
    days, nan = day[inside], np.float64(NAN)
    if not len(days):
        return nan, nan, nan, nan
    hi = lo = nan
    if days[-1] == today:
        first = int(np.searchsorted(days, today))
        hi, lo = high[inside][first:].max(), low[inside][first:].min()
    # The latest session instance that had ended by the last bar's open: its day is the newest
    # in-session day d with d * DAY_MS + end <= now (days only grow, so search the unique days).
    done_days = days[days * DAY_MS + session.end_ms <= now]
    if not len(done_days):
        return hi, lo, nan, nan
    start, stop = np.searchsorted(days, done_days[-1]), np.searchsorted(days, done_days[-1], side="right")
    return hi, lo, high[inside][start:stop].max(), low[inside][start:stop].min()


class _Tracker:
    """One session's current instance and the last completed one."""

    __slots__ = ("session", "day", "high", "low", "end_ms", "completed", "prev_high", "prev_low")

    def __init__(self, session: Session):
        self.session, self.day, self.end_ms, self.completed = session, None, 0, True
        self.high = self.low = self.prev_high = self.prev_low = NAN

    def update(self, t: int, day: int, tod: int, high: float, low: float) -> bool:
        if not self.completed and t >= self.end_ms:
            self.prev_high, self.prev_low, self.completed = self.high, self.low, True
        inside = self.session.start_ms <= tod < self.session.end_ms
        if inside and self.day != day:
            self.day, self.high, self.low = day, high, low
            self.end_ms, self.completed = day * DAY_MS + self.session.end_ms, False
        elif inside:
            self.high, self.low = max(self.high, high), min(self.low, low)
        return inside


class SessionsState:
    """Latest session features, as `sessions`; O(1) per bar. Bars must arrive in time order."""

    __slots__ = ("_trackers",)

    def __init__(self):
        self._trackers = tuple(_Tracker(s) for s in SESSIONS)

    def update(self, open_time_ms: int, high: float, low: float) -> SessionBar:
        """Fold in one bar and return its session features."""
        t = int(open_time_ms)
        day, tod = divmod(t, DAY_MS)
        active = 0
        for j, tracker in enumerate(self._trackers):
            active |= tracker.update(t, day, tod, high, low) << j
        today = [tr.day == day for tr in self._trackers]
        waits = [(s.start_ms - tod) if s.start_ms > tod else (s.start_ms + DAY_MS - tod) for s in SESSIONS]
        return SessionBar(
            active,
            tuple(tr.high if ok else NAN for tr, ok in zip(self._trackers, today)),
            tuple(tr.low if ok else NAN for tr, ok in zip(self._trackers, today)),
            tuple(tr.prev_high for tr in self._trackers),
            tuple(tr.prev_low for tr in self._trackers),
            min(waits) / MINUTE_MS,
        )


def session_names(active: int) -> tuple[str, ...]:
    """Return the names of the sessions set in an `active` bit mask."""
    return tuple(s.name for j, s in enumerate(SESSIONS) if active >> j & 1)
