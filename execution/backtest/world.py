"""The backtest's market: in-memory stand-ins for every market read the live cycle makes, over candle arrays.

`Market` answers what `analytics.selectors` (bars_load, context_load, structure_bars_load),
`analytics.inputs.flow_inputs_load` (candles and funding rates), `execution.selectors.last_close`,
`execution.paper_venue.paper_exit_bars` and the paper venue's funding look-up return when the
database holds only these candles, funding rates and mark-price klines (no book, ETF flows,
liquidation zones, sentiment or open interest). No rule is decided here: the pure core does.

Views the live path resamples on every call (a thin higher-timeframe view, structure bars built from
1m) are cut here from one resample of the whole history: a bucket is in the window's resample
exactly when all its source bars lie in the window, so the bars are the same and nothing after
`now` is read (`_Resampled`).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from analytics.features.mtf import TIMEFRAMES
from analytics.flow.types import CandlePoint, FlowInputs, FlowParams, FundingPoint
from analytics.selectors import MAX_RESAMPLE_SOURCE_BARS
from analytics.snapshot import Bars, Context
from market.resample import resample
from market.timeframes import TIMEFRAME_MS, floor_open_time_ms, timeframe_ms

# The stored decimal places of prices, quantities and rates (DecimalField(.., 10)): values read back
# from the database carry them, so the backtest's Decimals are made the same way.
PLACES = Decimal("1E-10")
# Exits walk the finest stored bars of these timeframes (execution.paper_venue.BAR_TIMEFRAMES).
EXIT_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h")
HOUR_MS = 3_600_000
MARK_MAX_AGE_MS = 8 * 3_600_000          # execution.paper_venue.MARK_MAX_AGE
FUNDING_STAMP_TOLERANCE_MS = 60_000     # execution.paper_venue.FUNDING_STAMP_TOLERANCE
STRUCTURE_SOURCE_MAX_BARS = 20_000      # analytics.selectors.structure_bars_from


def to_decimal(value: float) -> Decimal:
    """Return a float price or quantity as the database would hand it back (10 decimal places)."""
    return Decimal(repr(float(value))).quantize(PLACES)


@dataclass(frozen=True, slots=True)
class Candles:
    """One timeframe's candles, oldest first: open times (epoch ms), OHLCV and optional taker-buy volume."""

    timeframe: str
    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_base: np.ndarray | None = None    # NaN where unknown
    quote_volume: np.ndarray | None = None      # NaN where unknown

    @classmethod
    def from_frame(cls, timeframe: str, frame: pd.DataFrame) -> Candles:
        """Return the candles of a recorded CSV frame (open_time_ms plus OHLCV columns, maybe as strings)."""
        def column(name: str) -> np.ndarray | None:
            if name not in frame:
                return None
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        return cls(timeframe, frame["open_time_ms"].to_numpy(dtype=np.int64),
                   *(column(c) for c in ("open", "high", "low", "close", "volume", "taker_buy_base",
                                         "quote_volume")))

    @property
    def step_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    def closed_until(self, now_ms: int) -> int:
        """Return how many bars had closed by `now_ms` (open_time + length <= now)."""
        return int(np.searchsorted(self.open_time_ms, now_ms - self.step_ms, side="right"))


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """The instrument's identity and venue filters, as the live path reads them from its row."""

    instrument_id: int
    symbol: str                 # ccxt symbol, e.g. BTC/USDT:USDT (in order intents)
    exchange_symbol: str        # venue symbol, e.g. BTCUSDT (in gates and gap names)
    base: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal

    @classmethod
    def of(cls, instrument) -> InstrumentSpec:
        """Return the spec of an Instrument row (or anything with the same attributes), filters as stored.

        The filters carry the stored 10 decimal places (0.1 reads back as 0.1000000000), as the
        live path reads them, so every Decimal the two paths compute has the same exponent.
        """
        return cls(instrument.pk, instrument.symbol, instrument.exchange_symbol, instrument.base,
                   *(Decimal(v).quantize(PLACES) for v in (instrument.tick_size, instrument.step_size,
                                                            instrument.min_notional)))


@dataclass(frozen=True, slots=True)
class FundingRates:
    """Stored funding settlements of one symbol: times (epoch ms, as stamped), rates and optional mark prices."""

    ts_ms: np.ndarray                       # int64, ascending
    rates: tuple[Decimal, ...]              # as stored (10 decimal places)
    marks: tuple[Decimal | None, ...] | None = None

    def __post_init__(self):
        if len(self.rates) != len(self.ts_ms) or (self.marks is not None and len(self.marks) != len(self.ts_ms)):
            raise ValueError(f"{len(self.ts_ms)} funding times but {len(self.rates)} rates")
        if len(self.ts_ms) > 1 and not (np.diff(self.ts_ms) > 0).all():
            raise ValueError("funding times must increase")

    @classmethod
    def of(cls, ts_ms, rates, marks=None) -> FundingRates:
        """Return the settlements of times and rates given as numbers or text, rates kept as the database keeps them."""
        def stored(value) -> Decimal | None:
            if value is None:
                return None
            return to_decimal(value) if isinstance(value, float) else Decimal(str(value)).quantize(PLACES)
        return cls(np.asarray(ts_ms, dtype=np.int64), tuple(stored(r) for r in rates),
                   None if marks is None else tuple(stored(m) for m in marks))

    def at(self, funding_ms: int) -> tuple[Decimal, Decimal | None] | None:
        """Return (rate, mark or None) of the settlement stamped within a minute of `funding_ms`, nearest first."""
        lo = int(np.searchsorted(self.ts_ms, funding_ms - FUNDING_STAMP_TOLERANCE_MS, side="left"))
        hi = int(np.searchsorted(self.ts_ms, funding_ms + FUNDING_STAMP_TOLERANCE_MS, side="right"))
        if hi <= lo:
            return None
        best = min(range(lo, hi), key=lambda i: abs(int(self.ts_ms[i]) - funding_ms))
        return self.rates[best], (self.marks[best] if self.marks is not None else None)


@dataclass(frozen=True, slots=True)
class MarkPrices:
    """Stored mark-price klines of one symbol by period: open times (epoch ms, ascending) and closes as stored.

    Stored as the collectors store them (DerivativesSample MARK_INDEX at the kline's open time with
    its close), so a kline of `period` tells the mark at open time + period.
    """

    by_period: dict[str, tuple[np.ndarray, tuple[Decimal, ...]]]

    @classmethod
    def of(cls, rows) -> MarkPrices:
        """Return the klines of (open time ms, period, mark) rows, marks kept as the database keeps them."""
        grouped: dict[str, list] = {}
        for ts_ms, period, mark in sorted(rows, key=lambda r: (r[1], int(r[0]))):
            if mark is not None:
                value = to_decimal(mark) if isinstance(mark, float) else Decimal(str(mark)).quantize(PLACES)
                grouped.setdefault(period, []).append((int(ts_ms), value))
        return cls({period: (np.asarray([t for t, _ in points], dtype=np.int64), tuple(m for _, m in points))
                    for period, points in grouped.items()})

    def finest(self, start_ms: int, end_ms: int, longest_ms: int) -> str | None:
        """Return the shortest period, no longer than `longest_ms`, with a kline opened in [start_ms, end_ms)."""
        found = [(_period_ms(p), p) for p, (times, _) in self.by_period.items()
                 if 0 < _period_ms(p) <= longest_ms
                 and np.searchsorted(times, start_ms, side="left") < np.searchsorted(times, end_ms, side="left")]
        return min(found)[1] if found else None

    def close_at(self, at_ms: int) -> Decimal | None:
        """Return the last mark close by `at_ms` of a kline opened in the 8 h before (paper_venue._mark_at)."""
        best = None
        for period, (times, marks) in self.by_period.items():
            length = _period_ms(period)
            lo = int(np.searchsorted(times, at_ms - MARK_MAX_AGE_MS, side="right"))
            hi = int(np.searchsorted(times, at_ms - length, side="right"))     # closed by at_ms
            if hi > lo:
                close_ms, open_ms = int(times[hi - 1]) + length, int(times[hi - 1])
                # On equal closes the live read (newest open first) keeps the later-opened kline.
                if best is None or (close_ms, open_ms) > best[:2]:
                    best = (close_ms, open_ms, marks[hi - 1])
        return best[2] if best else None


def _period_ms(period: str) -> int:
    # execution.paper_venue._period_ms: a period it does not know counts as 0.
    return TIMEFRAME_MS.get(period, 0)


class MarkTriggers:
    """The mark-price trigger range of every bar of one exit series, from the klines of one period.

    execution.paper_venue.paper_exit_bars with MARK_PRICE: a bar's range is that of the mark closes
    from its open to its close (a kline closing on the bar's open counts); a bar with no mark close
    after its open has none and triggers on its own range. `high`/`low` are floats for the search
    (NaN-free: the bar's own range where no mark); `range_at` gives the stored Decimals.
    """

    def __init__(self, candles: Candles, times: np.ndarray, marks: tuple[Decimal, ...], period_ms: int):
        step = candles.step_ms
        closes = times + period_ms
        opens = candles.open_time_ms
        self.lo = np.searchsorted(closes, opens, side="left")
        self.hi = np.searchsorted(closes, opens + step, side="right")
        self.inside = np.searchsorted(closes, opens, side="right") < self.hi
        self.marks = marks
        values = np.asarray([float(m) for m in marks], dtype=float)
        high, low = candles.high.copy(), candles.low.copy()
        rows = np.flatnonzero(self.inside)
        if len(rows):
            lo, hi = self.lo[rows], self.hi[rows]
            top = values[lo].copy()
            bottom = top.copy()
            for k in range(1, int((hi - lo).max())):
                picked = values[np.minimum(lo + k, hi - 1)]
                top, bottom = np.maximum(top, picked), np.minimum(bottom, picked)
            high[rows], low[rows] = top, bottom
        self.high, self.low = high, low

    def range_at(self, i: int) -> tuple[Decimal, Decimal] | None:
        """Return (trigger high, trigger low) of bar `i` from the stored marks, None when it has no mark close."""
        if not self.inside[i]:
            return None
        seen = self.marks[int(self.lo[i]):int(self.hi[i])]
        return max(seen), min(seen)


@dataclass(frozen=True, slots=True)
class SymbolData:
    """Everything the backtest reads of one instrument: its spec, its candles by timeframe, funding and marks."""

    instrument: InstrumentSpec
    candles: dict[str, Candles]
    funding: FundingRates | None = None
    marks: MarkPrices | None = None


def _bars(candles: Candles, start: int, end: int, step_ms: int) -> Bars:
    # Columns of one (n, 5) array, as analytics.selectors builds them, so every reduction sees
    # the same memory layout as in the live cycle.
    values = np.empty((end - start, 5), dtype=float)
    for i, name in enumerate(("open", "high", "low", "close", "volume")):
        values[:, i] = getattr(candles, name)[start:end]
    return Bars(candles.open_time_ms[start:end].copy(), values[:, 0], values[:, 1], values[:, 2], values[:, 3],
                values[:, 4], step_ms)


class _Resampled:
    """One resample of a whole source series, cut to the buckets that lie whole inside a window of it."""

    def __init__(self, source: Candles, target: str):
        times = source.open_time_ms
        frame = pd.DataFrame({"open_time_ms": times, "open": source.open, "high": source.high, "low": source.low,
                              "close": source.close, "volume": source.volume})
        self.out = resample(frame, source.timeframe, target, complete_only=True)
        self.step_ms = timeframe_ms(target)
        buckets = floor_open_time_ms(times, target)
        starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1]))) if len(times) else buckets
        ends = np.append(starts[1:], len(times)) - 1
        complete = (ends - starts + 1) == self.step_ms // source.step_ms
        self.first, self.last = starts[complete], ends[complete]
        self.columns = {c: self.out[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
        self.times = self.out["open_time_ms"].to_numpy(dtype=np.int64)

    def window(self, start: int, end: int) -> Bars:
        """Return the complete buckets made only of source bars start..end-1, as contiguous arrays."""
        lo = int(np.searchsorted(self.first, start, side="left"))
        hi = int(np.searchsorted(self.last, end, side="left"))
        hi = max(lo, hi)
        return Bars(self.times[lo:hi].copy(), *(self.columns[c][lo:hi].copy()
                                                for c in ("open", "high", "low", "close", "volume")), self.step_ms)


class Market:
    """Candle and funding reads of one instrument as of a moment; nothing after it is ever returned."""

    def __init__(self, candles: dict[str, Candles], funding: FundingRates | None = None,
                 marks: MarkPrices | None = None):
        self.candles = candles
        self.funding = funding
        self.marks = marks
        self._triggers: dict[tuple[str, str], MarkTriggers] = {}
        self._resampled: dict[tuple[str, str], _Resampled] = {}
        self._exit_timeframes = [tf for tf in EXIT_TIMEFRAMES if tf in candles]
        self._last_close: tuple[int | None, Decimal | None] = (None, None)

    def bars_load(self, *, timeframe: str, now_ms: int, count: int) -> Bars:
        """Return up to `count` bars that had closed by `now_ms`, oldest first (analytics.selectors.bars_load)."""
        step = timeframe_ms(timeframe)
        stored = self.candles.get(timeframe)
        if stored is None:
            return _bars(Candles(timeframe, *(np.empty(0) for _ in range(6))), 0, 0, step)
        end = stored.closed_until(now_ms)
        return _bars(stored, max(0, end - count), end, step)

    def _resample_window(self, source_tf: str, target_tf: str, now_ms: int, count: int) -> Bars:
        """Return what `resampled(bars_load(source_tf, now, count), source_tf, target_tf)` returns live."""
        source = self.candles.get(source_tf)
        if source is None:
            return self.bars_load(timeframe=target_tf, now_ms=0, count=0)
        key = (source_tf, target_tf)
        if key not in self._resampled:
            self._resampled[key] = _Resampled(source, target_tf)
        end = source.closed_until(now_ms)
        return self._resampled[key].window(max(0, end - count), end)

    def structure_bars_load(self, *, timeframe: str, now_ms: int, count: int = 100) -> Bars:
        """Return closed bars of `timeframe`, resampled from 1m bars when too few are stored.

        analytics.selectors.structure_bars_from, with the resample cut from the whole history.
        """
        bars = self.bars_load(timeframe=timeframe, now_ms=now_ms, count=count)
        if len(bars) >= count // 2 or timeframe == "1m":
            return bars
        ratio = timeframe_ms(timeframe) // timeframe_ms("1m")
        minutes = self.candles.get("1m")
        if minutes is None or not minutes.closed_until(now_ms):
            return bars
        made = self._resample_window("1m", timeframe, now_ms, min(ratio * (count + 1), STRUCTURE_SOURCE_MAX_BARS))
        if len(made) > count:
            made = Bars(*(a[-count:] for a in (made.open_time_ms, made.open, made.high, made.low, made.close,
                                               made.volume)), made.timeframe_ms)
        return made if len(made) > len(bars) else bars

    def context_load(self, *, timeframe: str, now_ms: int, bars_per_view: int = 30,
                     structure_timeframes: tuple[str, ...] = ()) -> Context:
        """Return the closed multi-timeframe views and structure bars (analytics.selectors.context_load); no book."""
        views = [tf for tf in TIMEFRAMES if timeframe_ms(tf) >= timeframe_ms(timeframe)]
        higher = {tf: self.bars_load(timeframe=tf, now_ms=now_ms, count=bars_per_view) for tf in views}
        # analytics.selectors.views_filled: a thin view is resampled from the decision timeframe.
        thin = [tf for tf in higher if tf != timeframe and len(higher[tf]) < bars_per_view // 2]
        if thin:
            ratio = max(timeframe_ms(tf) // timeframe_ms(timeframe) for tf in thin)
            count = min(ratio * bars_per_view, MAX_RESAMPLE_SOURCE_BARS)
            stored = self.candles.get(timeframe)
            if stored is not None and stored.closed_until(now_ms):
                for target in thin:
                    made = self._resample_window(timeframe, target, now_ms, count)
                    if len(made) > len(higher[target]):
                        higher[target] = made
        structure = {tf: self.structure_bars_load(timeframe=tf, now_ms=now_ms)
                     for tf in structure_timeframes if tf != timeframe}
        return Context(higher=higher, structure=structure)

    def flow_inputs(self, *, asset: str, as_of_ms: int, params: FlowParams, candle_timeframe: str) -> FlowInputs:
        """Return what analytics.inputs.flow_inputs_load returns when only candles are stored."""
        stored = self.candles.get(candle_timeframe)
        points: tuple[CandlePoint, ...] = ()
        if stored is not None:
            step = stored.step_ms
            lookback = params.cvd_window_ms + params.max_age("candles") + 2 * step
            times = stored.open_time_ms
            lo = int(np.searchsorted(times, as_of_ms - lookback, side="right"))
            hi = int(np.searchsorted(times, as_of_ms - step, side="right"))
            taker = stored.taker_buy_base
            points = tuple(
                CandlePoint(int(times[i]), int(times[i]) + step, float(stored.close[i]), float(stored.volume[i]),
                            None if taker is None or np.isnan(taker[i]) else float(taker[i]))
                for i in range(lo, hi))
        return FlowInputs(as_of_ms=as_of_ms, asset=asset, candles=points,
                          funding=self._funding_points(as_of_ms, params))

    def _funding_points(self, as_of_ms: int, params: FlowParams) -> tuple[FundingPoint, ...]:
        """Return the stored rates in the flow's funding look-back (analytics.inputs.derivatives_load)."""
        if self.funding is None:
            return ()
        lookback = params.funding_z_window_ms + params.max_age("funding") + HOUR_MS
        times = self.funding.ts_ms
        lo = int(np.searchsorted(times, as_of_ms - lookback, side="right"))
        hi = int(np.searchsorted(times, as_of_ms, side="right"))
        return tuple(FundingPoint(int(times[i]), float(self.funding.rates[i])) for i in range(lo, hi))

    def last_close(self, now_ms: int) -> Decimal | None:
        """Return the close of the freshest bar of any timeframe closed by `now_ms` (execution.selectors)."""
        if self._last_close[0] != now_ms:
            self._last_close = (now_ms, self._last_close_at(now_ms))
        return self._last_close[1]

    def _last_close_at(self, now_ms: int) -> Decimal | None:
        best = None
        for stored in self.candles.values():
            end = stored.closed_until(now_ms)
            if end and (best is None or stored.open_time_ms[end - 1] + stored.step_ms > best[1]):
                best = (stored.close[end - 1], int(stored.open_time_ms[end - 1]) + stored.step_ms)
                if best[1] == now_ms:
                    break               # nothing closes later than now; on a tie the first timeframe wins anyway
        return to_decimal(best[0]) if best else None

    def exit_series(self, *, since_ms: int, now_ms: int, strictly_after: bool) -> tuple[Candles, int, int] | None:
        """Return (candles, first, end) of the finest bars opened from `since_ms` and closed by `now_ms`.

        execution.paper_venue.paper_exit_bars without the trigger range (`exit_triggers`). None when
        no such bar is stored.
        """
        for timeframe in self._exit_timeframes:
            stored = self.candles[timeframe]
            start = int(np.searchsorted(stored.open_time_ms, since_ms, side="right" if strictly_after else "left"))
            end = stored.closed_until(now_ms)
            if end > start:
                return stored, start, end
        return None

    def exit_triggers(self, candles: Candles, first: int, end: int) -> MarkTriggers | None:
        """Return the mark trigger range of the exit bars first..end-1 of `candles`, None without mark klines.

        As paper_exit_bars reads them for one check: the klines of the finest period no longer than
        a bar among those opened from a bar before the first to the last bar's close.
        """
        if self.marks is None or end <= first:
            return None
        step = candles.step_ms
        period = self.marks.finest(int(candles.open_time_ms[first]) - step, int(candles.open_time_ms[end - 1]) + step,
                                   step)
        if period is None:
            return None
        key = (candles.timeframe, period)
        if key not in self._triggers:
            times, marks = self.marks.by_period[period]
            self._triggers[key] = MarkTriggers(candles, times, marks, _period_ms(period))
        return self._triggers[key]

    def volume_24h_usdt(self, now_ms: int) -> Decimal | None:
        """Return the quote volume of the 1h candles opened in [now - 25 h, now - 1 h], None without any."""
        stored = self.candles.get("1h")
        if stored is None or stored.quote_volume is None:
            return None
        times = stored.open_time_ms
        lo = int(np.searchsorted(times, now_ms - 25 * HOUR_MS, side="left"))
        hi = int(np.searchsorted(times, now_ms - HOUR_MS, side="right"))
        values = stored.quote_volume[lo:hi]
        values = values[~np.isnan(values)]
        return sum((to_decimal(v) for v in values), Decimal(0)) if len(values) else None

    def funding_mark(self, at_ms: int) -> tuple[Decimal, Decimal] | None:
        """Return (rate, mark) of the settlement at `at_ms`, or None without a stored rate or a price.

        The mark is the settlement's own, else the last mark kline close by `at_ms`, else the last
        close by `at_ms` (execution.paper_venue._mark_at).
        """
        found = self.funding.at(at_ms) if self.funding is not None else None
        if found is None:
            return None
        rate, mark = found
        if not mark and self.marks is not None:
            mark = self.marks.close_at(at_ms)
        mark = mark or self.last_close(at_ms)
        return (rate, mark) if mark is not None else None
