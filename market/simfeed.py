"""An offline simulated market of 1m OHLCV bars. Pure: no Django, no I/O, no clock.

The model, per minute t (log returns, UTC time):
  r_t = mu(regime_t) + season_t * sqrt(h_t) * z_t + J_t
  h_t = omega + alpha * e_{t-1}**2 + beta * h_{t-1}        (GARCH(1,1) on deseasonalised shocks e)
regime_t is a hidden Markov chain over down/flat/up drifts, z_t a standardised Student-t, J_t a
compound-Poisson jump with Student-t sizes, and season_t the square root of the intraday/weekly
volume profile (volatility and volume share their seasonality on real venues). Each bar is drawn as
a Brownian bridge of a few sub-steps so its high and low lie on a path that joins open to close.

Output depends only on the config and the start: bars are generated in fixed one-day blocks, so
reading them with next_bar(), bars(10) or bars(100_000) yields the same sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np

LABEL = "SIMULATED market - not real prices"

MINUTE_MS = 60_000
MINUTES_PER_YEAR = 525_600
_DAY_MS = 1440 * MINUTE_MS
_BLOCK_BARS = 1440
# Cap one deseasonalised shock fed back into the variance at this many average deviations,
# so a single huge jump cannot push the variance process into an absurd state.
_SHOCK_CAP_SD = 12.0
_JUMP_CAP = 0.10  # no single jump moves the price by more than ~10 %

BAR_DTYPE = np.dtype([
    ("open_time_ms", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"),
    ("volume", "f8"), ("quote_volume", "f8"), ("trades", "i8"),
    ("taker_buy_base", "f8"), ("taker_buy_quote", "f8"),
])


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Parameters of the simulated market; the defaults resemble BTCUSDT perpetual 1m bars."""

    start_price: float = 100_000.0
    annual_vol: float = 0.55            # target annualised volatility of log returns, 0.55 = 55 %
    tick_size: float = 0.1              # every price is a multiple of this
    seed: int = 0
    volume_step: float = 0.001          # base-asset quantity increment
    base_volume: float = 100.0          # mean base volume of a 1m bar over a week
    garch_alpha: float = 0.05
    garch_beta: float = 0.94
    innovation_df: float = 6.0          # Student-t degrees of freedom of the diffusive shocks
    trend_annual_drift: float = 0.8     # |drift| of the up and down regimes, per year
    regime_mean_minutes: float = 2 * 1440.0
    jumps_per_day: float = 4.0
    jump_variance_share: float = 0.1    # fraction of the total variance that comes from jumps
    jump_df: float = 4.0                # Student-t degrees of freedom of jump sizes
    substeps: int = 12                  # path points per bar for the high and low
    weekend_volume_factor: float = 0.6
    trades_per_unit: float = 20.0       # trades per unit of base volume
    volume_noise_sd: float = 0.35       # log-normal noise of volume

    def __post_init__(self) -> None:
        if self.start_price <= 0 or self.annual_vol <= 0 or self.tick_size <= 0 or self.volume_step <= 0:
            raise ValueError("start_price, annual_vol, tick_size and volume_step must be positive")
        if not (0 <= self.garch_alpha and 0 <= self.garch_beta and self.garch_alpha + self.garch_beta < 1):
            raise ValueError("garch_alpha and garch_beta must be >= 0 with alpha + beta < 1 (stationary variance)")
        if self.innovation_df <= 2 or self.jump_df <= 2:
            raise ValueError("innovation_df and jump_df must exceed 2 so the variance is finite")
        if not 0 <= self.jump_variance_share < 1:
            raise ValueError("jump_variance_share must be in [0, 1)")
        if self.substeps < 2 or self.regime_mean_minutes < 1 or self.jumps_per_day < 0:
            raise ValueError("substeps >= 2, regime_mean_minutes >= 1 and jumps_per_day >= 0 are required")

    @property
    def price_decimals(self) -> int:
        """Return the number of decimals of the tick size (0.1 -> 1)."""
        return max(0, -Decimal(repr(self.tick_size)).normalize().as_tuple().exponent)


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed 1m bar of the simulated market; prices in quote currency, volume in base."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_base: float
    taker_buy_quote: float
    simulated: bool = True


def _raw_volume_profile(open_time_ms: np.ndarray, weekend_factor: float) -> np.ndarray:
    hour = (np.asarray(open_time_ms, dtype=np.int64) % _DAY_MS) / 3_600_000.0
    # A U across the UTC day (busy around the daily candle close, quiet at midday in Asia's
    # evening) plus a peak where the EU afternoon overlaps the US morning.
    u_shape = 1.0 + 0.35 * np.cos(2 * np.pi * hour / 24.0)
    overlap = 1.0 * np.exp(-0.5 * ((hour - 14.5) / 1.8) ** 2)
    weekday = (np.asarray(open_time_ms, dtype=np.int64) // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    return (u_shape + overlap) * np.where(weekday >= 5, weekend_factor, 1.0)


def intraday_volume_profile(open_time_ms: np.ndarray, weekend_factor: float = 0.6) -> np.ndarray:
    """Return the relative volume of bars opening at `open_time_ms` (epoch ms); its weekly mean is 1."""
    week = np.arange(7 * 1440, dtype=np.int64) * MINUTE_MS
    return _raw_volume_profile(open_time_ms, weekend_factor) / _raw_volume_profile(week, weekend_factor).mean()


def _start_ms(start: datetime | int) -> int:
    if isinstance(start, datetime):
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be an aware datetime (UTC) or epoch milliseconds")
        start = int(round((start - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000))
    if start % MINUTE_MS:
        raise ValueError(f"start {start} ms is not aligned to the minute; floor it with floor_open_time_ms")
    return int(start)


def _regimes(rng: np.random.Generator, n: int, state: int, mean_minutes: float) -> np.ndarray:
    # States are -1 (down), 0 (flat), +1 (up); a switch always moves to one of the other two.
    switches = rng.random(n) < 1.0 / mean_minutes
    offsets = rng.integers(1, 3, size=n)
    steps = np.where(switches, offsets, 0)
    return (state + 1 + np.cumsum(steps)) % 3 - 1


def _jumps(rng: np.random.Generator, n: int, cfg: SimConfig, total_var: float) -> np.ndarray:
    lam = cfg.jumps_per_day / 1440.0
    counts = rng.poisson(lam, size=n)
    sizes = rng.standard_t(cfg.jump_df, size=n)
    if lam == 0 or cfg.jump_variance_share == 0:
        return np.zeros(n)
    # Scale so jumps carry jump_variance_share of the variance: E[J^2] = lam * s^2 * df / (df - 2).
    scale = np.sqrt(cfg.jump_variance_share * total_var / (lam * cfg.jump_df / (cfg.jump_df - 2)))
    # Several jumps in one minute add up; their combined size has sqrt(count) times the spread.
    return np.clip(np.sqrt(counts) * sizes * scale, -_JUMP_CAP, _JUMP_CAP)


def _garch(z: np.ndarray, jumps_deseason: np.ndarray, h: float, shock_sq: float,
           omega: float, alpha: float, beta: float, cap_sq: float) -> tuple[np.ndarray, float, float]:
    # The recursion is sequential by nature; plain floats keep the loop fast (~0.3 µs a step).
    out = np.empty(len(z))
    for i, (zi, ji) in enumerate(zip(z.tolist(), jumps_deseason.tolist())):
        h = omega + alpha * shock_sq + beta * h
        out[i] = h
        shock = h ** 0.5 * zi + ji
        shock_sq = min(shock * shock, cap_sq)
    return out, h, shock_sq


class SimulatedMarket:
    """Generate 1m bars of a simulated market from `config`, the first opening at `start`."""

    label = LABEL

    def __init__(self, config: SimConfig, start: datetime | int) -> None:
        self.config = config
        self._next_open_ms = _start_ms(start)
        self._rng = np.random.default_rng(config.seed)
        total_var = config.annual_vol ** 2 / MINUTES_PER_YEAR
        self._total_var = total_var
        self._diff_var = total_var * (1.0 - config.jump_variance_share)
        self._h = self._diff_var
        self._shock_sq = self._diff_var
        self._regime = 0
        self._close_ticks = max(1, int(round(config.start_price / config.tick_size)))
        self._log_price = float(np.log(self._close_ticks * config.tick_size))
        self._buffer = np.empty(0, dtype=BAR_DTYPE)
        self._pos = 0

    @property
    def next_open_ms(self) -> int:
        """Return the open time (epoch ms) of the bar the next call hands out."""
        return int(self._buffer["open_time_ms"][self._pos]) if self._pos < len(self._buffer) else self._next_open_ms

    def next_bar(self) -> Bar:
        """Return the next 1m bar."""
        row = self.bars(1)[0]
        return Bar(**{name: row[name].item() for name in BAR_DTYPE.names})

    def bars(self, n: int) -> np.ndarray:
        """Return the next `n` bars as a structured array of BAR_DTYPE, oldest first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        parts, need = [], n
        while need > 0:
            if self._pos >= len(self._buffer):
                self._buffer, self._pos = self._block(_BLOCK_BARS), 0
            take = min(need, len(self._buffer) - self._pos)
            parts.append(self._buffer[self._pos:self._pos + take])
            self._pos += take
            need -= take
        return np.concatenate(parts) if parts else np.empty(0, dtype=BAR_DTYPE)

    def _block(self, n: int) -> np.ndarray:
        cfg, rng = self.config, self._rng
        open_ms = self._next_open_ms + np.arange(n, dtype=np.int64) * MINUTE_MS
        profile = intraday_volume_profile(open_ms, cfg.weekend_volume_factor)
        season = np.sqrt(profile)
        regimes = _regimes(rng, n, self._regime, cfg.regime_mean_minutes)
        df = cfg.innovation_df
        z = rng.standard_t(df, size=n) / np.sqrt(df / (df - 2))
        jumps = _jumps(rng, n, cfg, self._total_var)
        # Jumps feed the variance too (a crash raises volatility), so omega leaves room for them;
        # the floor keeps the process alive when jumps alone would exceed the target variance.
        jump_var = self._total_var - self._diff_var
        gap = 1 - cfg.garch_alpha - cfg.garch_beta
        omega = max(self._diff_var * gap - cfg.garch_alpha * jump_var, 0.1 * self._diff_var * gap)
        h, self._h, self._shock_sq = _garch(
            z, jumps / season, self._h, self._shock_sq, omega, cfg.garch_alpha, cfg.garch_beta,
            _SHOCK_CAP_SD ** 2 * self._diff_var,
        )
        sigma = season * np.sqrt(h)
        drift = regimes * cfg.trend_annual_drift / MINUTES_PER_YEAR
        returns = drift + sigma * z + jumps
        log_paths = self._paths(rng, returns, sigma, jumps)
        bars = self._assemble(rng, open_ms, log_paths, returns, sigma, profile, h)
        self._regime = int(regimes[-1])
        self._next_open_ms = int(open_ms[-1]) + MINUTE_MS
        return bars

    def _paths(self, rng: np.random.Generator, returns: np.ndarray, sigma: np.ndarray,
               jumps: np.ndarray) -> np.ndarray:
        # A Brownian bridge per bar: sub-steps wander with the bar's volatility but end exactly
        # at the bar's return, and a jump lands at one random sub-step.
        n, m = len(returns), self.config.substeps
        noise = rng.standard_normal((n, m))
        bridge = (noise - noise.mean(axis=1, keepdims=True)) * (sigma / np.sqrt(m))[:, None]
        steps = bridge + ((returns - jumps) / m)[:, None]
        steps[np.arange(n), rng.integers(0, m, size=n)] += jumps
        bar_starts = self._log_price + np.concatenate(([0.0], np.cumsum(returns)[:-1]))
        paths = bar_starts[:, None] + np.cumsum(steps, axis=1)
        paths[:, -1] = bar_starts + returns  # exact close, free of cumsum round-off drift
        self._log_price = float(paths[-1, -1])
        return paths

    def _assemble(self, rng: np.random.Generator, open_ms: np.ndarray, log_paths: np.ndarray,
                  returns: np.ndarray, sigma: np.ndarray, profile: np.ndarray, h: np.ndarray) -> np.ndarray:
        cfg, n = self.config, len(open_ms)
        ticks = np.maximum(np.rint(np.exp(log_paths) / cfg.tick_size), 1).astype(np.int64)
        close_t = ticks[:, -1]
        open_t = np.concatenate(([self._close_ticks], close_t[:-1]))
        self._close_ticks = int(close_t[-1])
        high_t = np.maximum(ticks.max(axis=1), open_t)
        low_t = np.minimum(ticks.min(axis=1), open_t)
        standardised = returns / sigma
        volume = self._volumes(rng, profile, h, standardised)
        # Buyers lift offers in rising minutes: the taker-buy share leans with the bar's return.
        share = np.clip(0.5 + 0.3 * np.tanh(0.8 * standardised) + rng.normal(0.0, 0.1, n), 0.01, 0.99)
        vwap = ticks.mean(axis=1) * cfg.tick_size
        taker_base = np.round(volume * share / cfg.volume_step) * cfg.volume_step
        out = np.empty(n, dtype=BAR_DTYPE)
        out["open_time_ms"] = open_ms
        for name, values in (("open", open_t), ("high", high_t), ("low", low_t), ("close", close_t)):
            out[name] = np.round(values * cfg.tick_size, cfg.price_decimals)
        out["volume"] = volume
        out["quote_volume"] = np.round(volume * vwap, 4)
        out["trades"] = rng.poisson(volume * cfg.trades_per_unit) + 1
        out["taker_buy_base"] = np.round(taker_base, 8)
        out["taker_buy_quote"] = np.round(taker_base * vwap, 4)
        return out

    def _volumes(self, rng: np.random.Generator, profile: np.ndarray, h: np.ndarray,
                 standardised: np.ndarray) -> np.ndarray:
        cfg = self.config
        # Volume follows the session profile, the current variance level and the size of the move;
        # 0.5 + 0.5 * |z| has mean ~0.9 and the noise has mean 1, so base_volume stays the mean.
        activity = np.sqrt(h / self._diff_var) * (0.5 + 0.5 * np.minimum(np.abs(standardised), 20.0)) / 0.9
        noise = rng.lognormal(-0.5 * cfg.volume_noise_sd ** 2, cfg.volume_noise_sd, len(h))
        raw = cfg.base_volume * profile * activity * noise
        steps = np.maximum(np.rint(raw / cfg.volume_step), 1)
        return np.round(steps * cfg.volume_step, 8)
