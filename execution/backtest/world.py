"""The backtest's world: in-memory stand-ins for every read the live cycle makes, over candle arrays.

`Market` answers what `analytics.selectors` (bars_load, context_load, structure_bars_load),
`analytics.inputs.flow_inputs_load`, `execution.selectors.last_close` and
`execution.paper_venue.paper_exit_bars` return when the database holds only these candles (no
derivatives, book, ETF flows, liquidation zones or sentiment). `Ledger` is the simulated account:
its positions, orders, fills and equity points, with `risk_state` mirroring
`decisions.risk_state.risk_state_load` field by field. No rule is decided here: the pure core does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from analytics.features.mtf import TIMEFRAMES
from analytics.flow.types import CandlePoint, FlowInputs, FlowParams
from analytics.selectors import structure_bars_from, views_filled
from analytics.snapshot import Bars, Context
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState
from decisions.risk.wall import day_bounds, week_bounds
from execution.brokers.paper import position_pnl
from market.timeframes import timeframe_ms

# The stored decimal places of prices and quantities (DecimalField(28, 10)): values read back from
# the database carry them, so the backtest's Decimals are made the same way.
PLACES = Decimal("1E-10")
# Exits walk the finest stored bars of these timeframes (execution.paper_venue.BAR_TIMEFRAMES).
EXIT_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h")
HOUR_MS = 3_600_000


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


def _bars(candles: Candles, start: int, end: int, step_ms: int) -> Bars:
    # Columns of one (n, 5) array, as analytics.selectors builds them, so every reduction sees
    # the same memory layout as in the live cycle.
    values = np.empty((end - start, 5), dtype=float)
    for i, name in enumerate(("open", "high", "low", "close", "volume")):
        values[:, i] = getattr(candles, name)[start:end]
    return Bars(candles.open_time_ms[start:end].copy(), values[:, 0], values[:, 1], values[:, 2], values[:, 3],
                values[:, 4], step_ms)


class Market:
    """Candle reads as of a moment; nothing after it is ever returned."""

    def __init__(self, candles: dict[str, Candles]):
        self.candles = candles

    def bars_load(self, *, timeframe: str, now_ms: int, count: int) -> Bars:
        """Return up to `count` bars that had closed by `now_ms`, oldest first (analytics.selectors.bars_load)."""
        step = timeframe_ms(timeframe)
        stored = self.candles.get(timeframe)
        if stored is None:
            return _bars(Candles(timeframe, *(np.empty(0) for _ in range(6))), 0, 0, step)
        end = stored.closed_until(now_ms)
        return _bars(stored, max(0, end - count), end, step)

    def structure_bars_load(self, *, timeframe: str, now_ms: int, count: int = 100) -> Bars:
        """Return closed bars of `timeframe`, resampled from 1m bars when too few are stored."""
        bars = self.bars_load(timeframe=timeframe, now_ms=now_ms, count=count)
        return structure_bars_from(bars, timeframe, count,
                                   lambda n: self.bars_load(timeframe="1m", now_ms=now_ms, count=n))

    def context_load(self, *, timeframe: str, now_ms: int, bars_per_view: int = 30,
                     structure_timeframes: tuple[str, ...] = ()) -> Context:
        """Return the closed multi-timeframe views and structure bars (analytics.selectors.context_load); no book."""
        views = [tf for tf in TIMEFRAMES if timeframe_ms(tf) >= timeframe_ms(timeframe)]
        higher = {tf: self.bars_load(timeframe=tf, now_ms=now_ms, count=bars_per_view) for tf in views}
        higher = views_filled(higher, timeframe, bars_per_view,
                              lambda n: self.bars_load(timeframe=timeframe, now_ms=now_ms, count=n))
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
            mask = (times <= as_of_ms - step) & (times > as_of_ms - lookback)
            taker = stored.taker_buy_base
            points = tuple(
                CandlePoint(int(times[i]), int(times[i]) + step, float(stored.close[i]), float(stored.volume[i]),
                            None if taker is None or np.isnan(taker[i]) else float(taker[i]))
                for i in np.flatnonzero(mask))
        return FlowInputs(as_of_ms=as_of_ms, asset=asset, candles=points)

    def last_close(self, now_ms: int) -> Decimal | None:
        """Return the close of the freshest bar of any timeframe closed by `now_ms` (execution.selectors)."""
        best = None
        for stored in self.candles.values():
            end = stored.closed_until(now_ms)
            if end and (best is None or stored.open_time_ms[end - 1] + stored.step_ms > best[1]):
                best = (stored.close[end - 1], int(stored.open_time_ms[end - 1]) + stored.step_ms)
        return to_decimal(best[0]) if best else None

    def exit_bars(self, *, since_ms: int, now_ms: int, strictly_after: bool) -> list[tuple]:
        """Return (open ms, open, high, low) of the finest bars from `since_ms` closed by `now_ms`, as Decimals.

        execution.paper_venue.paper_exit_bars with no stored mark klines: the trigger range is the
        bar's own range.
        """
        for timeframe in EXIT_TIMEFRAMES:
            stored = self.candles.get(timeframe)
            if stored is None:
                continue
            times = stored.open_time_ms
            start = int(np.searchsorted(times, since_ms, side="right" if strictly_after else "left"))
            end = stored.closed_until(now_ms)
            if end > start:
                return [(int(times[i]), to_decimal(stored.open[i]), to_decimal(stored.high[i]),
                         to_decimal(stored.low[i])) for i in range(start, end)]
        return []

    def volume_24h_usdt(self, now_ms: int) -> Decimal | None:
        """Return the quote volume of the 1h candles opened in [now - 25 h, now - 1 h], None without any."""
        stored = self.candles.get("1h")
        if stored is None or stored.quote_volume is None:
            return None
        times = stored.open_time_ms
        mask = (times >= now_ms - 25 * HOUR_MS) & (times <= now_ms - HOUR_MS) & ~np.isnan(stored.quote_volume)
        values = stored.quote_volume[mask]
        return sum((to_decimal(v) for v in values), Decimal(0)) if len(values) else None


@dataclass(slots=True)
class SimPosition:
    """One simulated position: the fields of execution.models.Position the live path reads and writes."""

    id: int
    decision_as_of_ms: int
    confidence: float | None
    side: str
    entry_price: Decimal
    quantity: Decimal
    initial_quantity: Decimal
    stop_price: Decimal
    target_price: Decimal
    take_profits: list[dict]
    trail_distance: Decimal | None
    opened_ms: int
    fees_usdt: Decimal
    realized_pnl_usdt: Decimal
    liquidation_price: Decimal | None = None
    best_price: Decimal | None = None
    exits_checked_until_ms: int | None = None
    status: str = "open"
    closed_ms: int | None = None
    exit_price: Decimal | None = None
    exit_reason: str = ""


@dataclass(slots=True)
class LedgerOrder:
    created_ms: int
    quantity: Decimal
    average_price: Decimal | None


@dataclass
class Ledger:
    """The simulated paper account: wallet, positions, orders, fills and equity points."""

    starting_balance_usdt: Decimal
    balance_usdt: Decimal
    positions: list[SimPosition] = field(default_factory=list)
    orders: list[LedgerOrder] = field(default_factory=list)
    fill_times_ms: list[int] = field(default_factory=list)
    equity_points: list[tuple[int, Decimal]] = field(default_factory=list)   # (ts ms, equity), by time

    def open_positions(self) -> list[SimPosition]:
        return [p for p in self.positions if p.status == "open"]

    def unrealized_pnl(self, mark: Decimal | None) -> Decimal:
        """Return the open positions' PnL marked at `mark` (execution.selectors.unrealized_pnl)."""
        if mark is None:
            return Decimal(0)
        return sum((position_pnl(p.side, p.quantity, p.entry_price, mark) for p in self.open_positions()),
                   Decimal(0))

    def calibration_pairs(self, limit: int = 500) -> list[tuple[float, bool]]:
        """Return (confidence, won) of the latest closed trades (decisions.services.calibrator_load)."""
        closed = sorted((p for p in self.positions if p.status == "closed" and p.confidence is not None),
                        key=lambda p: p.closed_ms, reverse=True)
        return [(p.confidence, p.realized_pnl_usdt > 0) for p in closed[:limit]]

    def margin_in_use(self, max_leverage: Decimal) -> Decimal:
        """Return the open positions' notional over the leverage (decisions.services._account_facts)."""
        return sum((p.quantity * p.entry_price for p in self.open_positions()), Decimal(0)) / max_leverage

    def _equity_at(self, moment_ms: int) -> Decimal:
        before = [e for ts, e in self.equity_points if ts <= moment_ms]
        return before[-1] if before else self.starting_balance_usdt

    def _low_since(self, moment_ms: int) -> Decimal | None:
        return min((e for ts, e in self.equity_points if ts >= moment_ms), default=None)

    def risk_state(self, *, now: datetime, limits: RiskLimits, equity: Decimal, symbol: str,
                   atr_percentile: float | None, volume_24h_usdt: Decimal | None) -> RiskState:
        """Return the facts the gates judge at `now`, as decisions.risk_state.risk_state_load loads them."""
        now_ms = int(now.timestamp() * 1000)
        day_start, week_start = day_bounds(now, limits)[0], week_bounds(now, limits)[0]
        peak = max((e for ts, e in self.equity_points if ts <= now_ms), default=None)
        window_ms = limits.rate_window_minutes * 60_000
        fills = [ts for ts in self.fill_times_ms if ts <= now_ms]
        by_opening = sorted(self.positions, key=lambda p: p.opened_ms, reverse=True)   # Position.Meta.ordering
        return RiskState(
            equity_now=equity,
            day_start_equity=self._equity_at(day_start),
            week_start_equity=self._equity_at(week_start),
            peak_equity=max(peak or equity, equity),
            day_low_equity=self._low_since(day_start),
            week_low_equity=self._low_since(week_start),
            closed_trades=tuple(ClosedTrade(symbol, p.side, p.realized_pnl_usdt, p.exit_reason, p.opened_ms,
                                            p.closed_ms) for p in by_opening
                                if p.status == "closed" and p.closed_ms >= day_start),
            open_positions=tuple(OpenPosition(symbol, p.side, p.opened_ms) for p in by_opening if p.status == "open"),
            recent_orders=tuple(RecentOrder(o.created_ms, o.quantity * (o.average_price or Decimal(0)))
                                for o in sorted(self.orders, key=lambda o: o.created_ms, reverse=True)
                                if now_ms - window_ms < o.created_ms <= now_ms),
            last_trade_ms=max(fills) if fills else None,
            atr_percentile=atr_percentile,
            spread_bps=None,
            volume_24h_usdt=volume_24h_usdt,
        )
