"""Risk limits (every gate threshold) and the risk state (the facts the gates judge). Pure: no Django, no clock.

The shell turns the admin-edited limits row into a `RiskLimits` and the account's rows into a
`RiskState`; backtests build both the same way from their simulated account. Times are epoch ms.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from decimal import Decimal
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every gate threshold; the defaults are the issue's (or, where it names none, a documented choice)."""

    # Circuit breaker: a day's loss of 2 % of the day's starting equity pauses entries (SAFE) until next day.
    daily_loss_fraction: Decimal = Decimal("0.02")
    # Weekly drawdown from Monday 00:00's equity; 5 % = two and a half bad days. Pauses until next Monday.
    weekly_drawdown_fraction: Decimal = Decimal("0.05")
    # Drawdown from the all-time equity peak; 10 %. Does not lift by itself: an operator reviews and overrides.
    max_drawdown_fraction: Decimal = Decimal("0.10")
    loss_streak: int = 3                 # consecutive losing trades today pause entries until next day
    sl_streak: int = 3                   # consecutive stop-loss exits today pause entries until next day
    max_trades_per_day: int = 3          # entries opened today (closed or still open)
    max_open_positions: int = 2          # across all symbols of the account
    timezone: str = "Europe/Warsaw"      # days, weeks and trading hours are counted on this wall clock
    trading_start: time = time(7, 0)     # inclusive; start > end spans midnight, start == end: all day
    trading_end: time = time(23, 0)      # exclusive
    news_mute_minutes: int = 15          # no entry this long after hard news (a spike)
    volatility_percentile: float = 90.0  # ATR percentile (0..100) above which the size shrinks
    volatility_size_factor: float = 0.5  # ... to this share (half size)
    max_spread_bps: float = 5.0          # a wider bid-ask spread blocks; majors quote far below 1 bp
    rate_window_minutes: int = 5         # window of the order-rate and turnover caps
    max_orders_per_window: int = 10      # orders of any leg (entry, SL, TP, exit) in the window
    # Notional traded in the window as a multiple of equity; a multiple keeps the cap right for any account size.
    max_turnover_equity_multiple: Decimal = Decimal("5")
    cooldown_minutes: int = 15           # no new entry this long after the last entry or exit
    max_correlation: float = 0.8         # same-direction stacking of symbols correlated beyond this blocks
    min_volume_24h_usdt: Decimal = Decimal("10000000")  # thinner markets slip too much for market orders
    min_profit_factor: float = 1.0       # the day's gross profit / gross loss below this blocks ...
    profit_factor_min_trades: int = 10   # ... once this many trades closed today

    def __post_init__(self):
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown zone {self.timezone!r}") from None
        for name in ("daily_loss_fraction", "weekly_drawdown_fraction", "max_drawdown_fraction"):
            _require(name, 0 < getattr(self, name) < 1, "must be between 0 and 1")
        for name in ("loss_streak", "sl_streak", "max_trades_per_day", "max_open_positions",
                     "rate_window_minutes", "max_orders_per_window", "profit_factor_min_trades"):
            _require(name, getattr(self, name) >= 1, "must be at least 1")
        for name in ("news_mute_minutes", "cooldown_minutes"):
            _require(name, getattr(self, name) >= 0, "must not be negative")
        _require("volatility_percentile", 0 <= self.volatility_percentile <= 100, "must be within 0..100")
        _require("volatility_size_factor", 0 < self.volatility_size_factor <= 1, "must be in (0, 1]")
        _require("max_correlation", 0 < self.max_correlation <= 1, "must be in (0, 1]")
        for name in ("max_spread_bps", "max_turnover_equity_multiple", "min_profit_factor"):
            _require(name, getattr(self, name) > 0, "must be positive")
        _require("min_volume_24h_usdt", self.min_volume_24h_usdt >= 0, "must not be negative")

    @property
    def tz(self) -> ZoneInfo:
        """Return the zone of the trading calendar (ZoneInfo caches instances by key)."""
        return ZoneInfo(self.timezone)

    @classmethod
    def default(cls) -> "RiskLimits":
        """Return the standard profile."""
        return cls()

    @classmethod
    def conservative(cls) -> "RiskLimits":
        """Return the conservative profile: pause after two losses or two stop-outs in a row."""
        return cls(loss_streak=2, sl_streak=2)

    def with_changes(self, **changes) -> "RiskLimits":
        """Return a copy with `changes` applied and validated."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Return the limits as JSON-safe text and numbers (for the audit log and the start-up card)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Decimal) else (
                value.strftime("%H:%M") if isinstance(value, time) else value)
        return out


def _require(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    symbol: str
    side: str               # LONG or SHORT
    pnl_usdt: Decimal       # realised, after fees
    exit_reason: str        # "stop" counts towards the SL streak; "target", "manual", ...
    opened_ms: int
    closed_ms: int


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    side: str               # LONG or SHORT
    opened_ms: int


@dataclass(frozen=True, slots=True)
class RecentOrder:
    created_ms: int
    notional_usdt: Decimal  # quantity x price (average fill price, or the limit/trigger price)


STOP_EXIT = "stop"


@dataclass(frozen=True, slots=True)
class RiskState:
    """The account and market facts the gates judge, as of one moment.

    Day and week mean the limits' timezone: `day_start_equity` is the equity at the last local
    midnight, `week_start_equity` at the last local Monday 00:00 (use `wall.day_bounds` /
    `wall.week_bounds`). `closed_trades` must hold every trade closed since the local midnight
    (older ones may be included; the gates ignore them) in any order.
    """

    equity_now: Decimal
    day_start_equity: Decimal
    week_start_equity: Decimal
    peak_equity: Decimal                  # highest equity ever recorded (all-time)
    # Lowest equity since the day / week start, so a breaker stays tripped after a rebound;
    # None: only `equity_now` is known.
    day_low_equity: Decimal | None = None
    week_low_equity: Decimal | None = None
    closed_trades: tuple[ClosedTrade, ...] = ()
    open_positions: tuple[OpenPosition, ...] = ()
    recent_orders: tuple[RecentOrder, ...] = ()   # at least those of the last rate window
    last_trade_ms: int | None = None              # the last entry or exit fill of the account
    last_hard_news_ms: int | None = None
    spread_bps: float | None = None               # of the intent's symbol; None: no book (backtests)
    atr_percentile: float | None = None           # 0..100, decision timeframe
    volume_24h_usdt: Decimal | None = None        # quote volume of the intent's symbol
    # Correlation of the intent's symbol with each other symbol (returns, e.g. 1h over 30 days).
    correlations: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
