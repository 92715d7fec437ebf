"""The backtest's account: wallet, positions, orders, fills and equity points of one simulated paper account.

`Ledger.risk_state` returns the `RiskState` that `decisions.risk_state.risk_state_load` loads from
the account's rows, field by field, for every symbol on the account (the account-level gates see
the combined account). The facts are kept incrementally (equity points by time, closed positions
by closing time, the order-rate window), so a year of bars costs the same per bar as a day.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from decisions.engine.calibration import Calibrator
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState
from decisions.risk.wall import day_bounds, week_bounds
from execution.brokers.paper import position_pnl

ZERO = Decimal(0)
CALIBRATION_TRADES = 500        # decisions.services.calibrator_load
STORED = Decimal("1E-10")       # the decimal places of the live rows' money and price columns (DecimalField(.., 10))


def stored(value: Decimal | None) -> Decimal | None:
    """Return `value` as its live row stores and reads it back: rounded to 10 decimal places."""
    return None if value is None else value.quantize(STORED)


@dataclass(slots=True)
class SimPosition:
    """One simulated position: the fields of execution.models.Position the live path reads and writes."""

    id: int
    symbol: str                         # venue symbol, e.g. BTCUSDT
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
    margin_usdt: Decimal | None = None  # the isolated margin behind the liquidation price
    best_price: Decimal | None = None
    exits_checked_until_ms: int | None = None
    status: str = "open"
    closed_ms: int | None = None
    exit_price: Decimal | None = None
    exit_reason: str = ""
    funding_usdt: Decimal = ZERO
    entry_fees_usdt: Decimal = ZERO     # the entry fills' fees booked so far (a chased entry grows the position)


@dataclass(slots=True)
class LedgerOrder:
    """An order as the rate gates read it: its notional is quantity x (average price, else limit price)."""

    created_ms: int
    quantity: Decimal
    average_price: Decimal | None
    price: Decimal | None = None

    @property
    def notional_usdt(self) -> Decimal:
        return self.quantity * (self.average_price or self.price or ZERO)


@dataclass
class Ledger:
    """The simulated paper account shared by every symbol of a run."""

    starting_balance_usdt: Decimal
    balance_usdt: Decimal
    rate_window_ms: int = 300_000
    positions: list[SimPosition] = field(default_factory=list)            # in opening order
    equity_ts_ms: list[int] = field(default_factory=list)                 # equity points, by time
    equity_values: list[Decimal] = field(default_factory=list)
    version: int = 0                    # bumped by every booking: a FLAT bar's gates change only with it
    _open: list[SimPosition] = field(default_factory=list)
    _closed: list[tuple[int, int, SimPosition]] = field(default_factory=list)   # (closed ms, id, position)
    _recent: list[LedgerOrder] = field(default_factory=list)
    _last_fill_ms: int | None = None
    _peak: Decimal | None = None
    _lows: dict[int, tuple[int, Decimal | None]] = field(default_factory=dict)   # since ms -> (points seen, low)
    _calibrator: tuple[int, Calibrator] | None = None

    def open_positions(self) -> list[SimPosition]:
        return list(self._open)

    def open_position(self, symbol: str) -> SimPosition | None:
        return next((p for p in self._open if p.symbol == symbol), None)

    def position_add(self, position: SimPosition) -> None:
        self.positions.append(position)
        self._open.append(position)
        self.version += 1

    def position_closed(self, position: SimPosition) -> None:
        self._open.remove(position)
        insort(self._closed, (position.closed_ms, position.id, position))
        self.version += 1

    def order_add(self, order: LedgerOrder) -> None:
        self._recent.append(order)
        self.version += 1

    def fills_add(self, ts_ms: list[int]) -> None:
        if ts_ms:
            latest = max(ts_ms)
            self._last_fill_ms = latest if self._last_fill_ms is None else max(self._last_fill_ms, latest)
            self.version += 1

    def balance_add(self, amount: Decimal) -> None:
        # The live wallet is a stored column updated in place: each booking rounds to its places.
        self.balance_usdt = stored(self.balance_usdt + amount)
        self.version += 1

    def equity_add(self, ts_ms: int, equity: Decimal) -> None:
        self.equity_ts_ms.append(ts_ms)
        self.equity_values.append(equity)
        self._peak = equity if self._peak is None else max(self._peak, equity)

    def unrealized_pnl(self, marks: dict[str, Decimal | None]) -> Decimal:
        """Return the open positions' PnL, each marked at its symbol's price (execution.selectors.unrealized_pnl)."""
        total = ZERO
        for p in self._open:
            mark = marks.get(p.symbol)
            if mark is not None:
                total += position_pnl(p.side, p.quantity, p.entry_price, mark)
        return total

    def calibrator(self) -> Calibrator:
        """Return the calibrator fitted on the latest closed trades (decisions.services.calibrator_load)."""
        if self._calibrator is None or self._calibrator[0] != len(self._closed):
            latest = [p for _, _, p in reversed(self._closed) if p.confidence is not None][:CALIBRATION_TRADES]
            self._calibrator = (len(self._closed), Calibrator.fit([(p.confidence, p.realized_pnl_usdt > 0)
                                                                   for p in latest]))
        return self._calibrator[1]

    def margin_in_use(self, max_leverage: Decimal) -> Decimal:
        """Return the open positions' notional over the leverage (decisions.services._account_facts)."""
        return sum((p.quantity * p.entry_price for p in self._open), ZERO) / max_leverage

    def _equity_at(self, moment_ms: int) -> Decimal:
        i = bisect_right(self.equity_ts_ms, moment_ms)
        return self.equity_values[i - 1] if i else self.starting_balance_usdt

    def _low_since(self, moment_ms: int) -> Decimal | None:
        seen, low = self._lows.get(moment_ms, (bisect_left(self.equity_ts_ms, moment_ms), None))
        for value in self.equity_values[seen:]:
            low = value if low is None or value < low else low
        if len(self._lows) > 16:
            self._lows.clear()
        self._lows[moment_ms] = (len(self.equity_values), low)
        return low

    def risk_state(self, *, now: datetime, limits: RiskLimits, equity: Decimal, atr_percentile: float | None,
                   volume_24h_usdt: Decimal | None) -> RiskState:
        """Return the facts the gates judge at `now`, as decisions.risk_state.risk_state_load loads them."""
        now_ms = int(now.timestamp() * 1000)
        day_start, week_start = day_bounds(now, limits)[0], week_bounds(now, limits)[0]
        self._recent = [o for o in self._recent if o.created_ms > now_ms - self.rate_window_ms]
        today = self._closed[bisect_left(self._closed, (day_start,)):]
        by_opening = sorted((p for _, _, p in today), key=lambda p: p.opened_ms, reverse=True)   # -opened_at
        return RiskState(
            equity_now=equity,
            day_start_equity=self._equity_at(day_start),
            week_start_equity=self._equity_at(week_start),
            peak_equity=max(self._peak or equity, equity),
            day_low_equity=self._low_since(day_start),
            week_low_equity=self._low_since(week_start),
            closed_trades=tuple(ClosedTrade(p.symbol, p.side, p.realized_pnl_usdt, p.exit_reason, p.opened_ms,
                                            p.closed_ms) for p in by_opening),
            open_positions=tuple(OpenPosition(p.symbol, p.side, p.opened_ms)
                                 for p in sorted(self._open, key=lambda p: p.opened_ms, reverse=True)),
            recent_orders=tuple(RecentOrder(o.created_ms, o.notional_usdt) for o in self._recent
                                if o.created_ms <= now_ms),
            last_trade_ms=self._last_fill_ms,
            atr_percentile=atr_percentile,
            spread_bps=None,
            volume_24h_usdt=volume_24h_usdt,
        )
