"""Tests of the simulated market: bar invariants, determinism and the stylised facts of real 1m returns."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from market.simfeed import (
    BAR_DTYPE, LABEL, MINUTES_PER_YEAR, Bar, SimConfig, SimulatedMarket, intraday_volume_profile,
)

START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC, a Wednesday
SIXTY_DAYS = 60 * 1440
REAL_1M_FILE = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"


def log_returns(closes: np.ndarray) -> np.ndarray:
    return np.diff(np.log(np.asarray(closes, dtype=float)))


def autocorrelation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


def excess_kurtosis(x: np.ndarray) -> float:
    return float(pd.Series(x).kurt())


@pytest.fixture(scope="module")
def long_run() -> np.ndarray:
    return SimulatedMarket(SimConfig(seed=7), START_MS).bars(SIXTY_DAYS)


# --- bar invariants ---------------------------------------------------------------------------

def assert_valid_bars(bars: np.ndarray, tick: float) -> None:
    assert (bars["high"] >= np.maximum(bars["open"], bars["close"])).all()
    assert (bars["low"] <= np.minimum(bars["open"], bars["close"])).all()
    assert (bars["low"] > 0).all()
    assert (bars["volume"] > 0).all()
    assert (bars["taker_buy_base"] <= bars["volume"]).all()
    for name in ("open", "high", "low", "close"):
        in_ticks = bars[name] / tick
        assert np.abs(in_ticks - np.rint(in_ticks)).max() < 1e-6, name


def test_bars_long_run_ohlc_consistent_on_tick_grid(long_run):
    assert_valid_bars(long_run, tick=0.1)


def test_bars_long_run_open_equals_previous_close(long_run):
    assert (long_run["open"][1:] == long_run["close"][:-1]).all()


def test_bars_open_times_consecutive_minutes_from_start(long_run):
    assert long_run["open_time_ms"][0] == START_MS
    assert (np.diff(long_run["open_time_ms"]) == 60_000).all()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    tick=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
    annual_vol=st.floats(min_value=0.05, max_value=3.0),
    start_price=st.floats(min_value=1.0, max_value=200_000.0),
)
def test_bars_any_seed_and_config_ohlc_invariants_hold(seed, tick, annual_vol, start_price):
    config = SimConfig(seed=seed, tick_size=tick, annual_vol=annual_vol, start_price=start_price)

    bars = SimulatedMarket(config, START_MS).bars(400)

    assert_valid_bars(bars, tick)


def test_next_bar_returns_simulated_bar():
    bar = SimulatedMarket(SimConfig(), START_MS).next_bar()

    assert isinstance(bar, Bar)
    assert bar.simulated is True
    assert bar.open_time_ms == START_MS
    assert bar.open == 100_000.0
    assert SimulatedMarket.label == LABEL == "SIMULATED market - not real prices"


def test_bars_prices_print_as_clean_decimals():
    bars = SimulatedMarket(SimConfig(tick_size=0.1), START_MS).bars(200)

    # repr of a grid price has at most one decimal: no 104361.50000000001 reaches the database.
    assert all(len(repr(p).split(".")[1]) == 1 for p in bars["close"].tolist())


# --- determinism --------------------------------------------------------------------------------

def test_bars_same_seed_identical_output():
    first = SimulatedMarket(SimConfig(seed=3), START_MS).bars(3000)
    second = SimulatedMarket(SimConfig(seed=3), START_MS).bars(3000)

    assert first.tobytes() == second.tobytes()


def test_bars_different_seed_different_output():
    first = SimulatedMarket(SimConfig(seed=3), START_MS).bars(3000)
    second = SimulatedMarket(SimConfig(seed=4), START_MS).bars(3000)

    assert not np.array_equal(first["close"], second["close"])


def test_bars_chunked_reads_equal_one_read():
    whole = SimulatedMarket(SimConfig(seed=5), START_MS).bars(3000)
    market = SimulatedMarket(SimConfig(seed=5), START_MS)

    pieces = [market.bars(700), market.bars(1), market.bars(0), market.bars(2299)]

    assert np.concatenate(pieces).tobytes() == whole.tobytes()


def test_next_bar_sequence_equals_bars():
    rows = SimulatedMarket(SimConfig(seed=5), START_MS).bars(50)
    market = SimulatedMarket(SimConfig(seed=5), START_MS)

    bars = [market.next_bar() for _ in range(50)]

    assert [b.close for b in bars] == rows["close"].tolist()
    assert [b.volume for b in bars] == rows["volume"].tolist()
    assert market.next_open_ms == START_MS + 50 * 60_000


# --- start and config validation ---------------------------------------------------------------

def test_simulated_market_aware_datetime_start_converted_to_epoch_ms():
    start = datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))  # 00:00 UTC

    assert SimulatedMarket(SimConfig(), start).next_open_ms == START_MS


@pytest.mark.parametrize("start, message", [
    (datetime(2025, 1, 1), "aware"),                  # naive: the zone is unknown
    (START_MS + 1_000, "not aligned to the minute"),  # mid-minute
])
def test_simulated_market_bad_start_raises(start, message):
    with pytest.raises(ValueError, match=message):
        SimulatedMarket(SimConfig(), start)


@pytest.mark.parametrize("overrides, message", [
    ({"annual_vol": 0}, "must be positive"),
    ({"garch_alpha": 0.5, "garch_beta": 0.6}, "alpha \\+ beta < 1"),
    ({"innovation_df": 2}, "must exceed 2"),
    ({"substeps": 1}, "substeps >= 2"),
])
def test_sim_config_invalid_values_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        SimConfig(**overrides)


def test_bars_negative_count_raises():
    with pytest.raises(ValueError, match="n must be >= 0"):
        SimulatedMarket(SimConfig(), START_MS).bars(-1)


# --- stylised facts -----------------------------------------------------------------------------

def test_returns_abs_autocorrelation_positive_lags_1_to_10(long_run):
    abs_returns = np.abs(log_returns(long_run["close"]))

    assert min(autocorrelation(abs_returns, lag) for lag in range(1, 11)) > 0.1


def test_returns_raw_autocorrelation_near_zero(long_run):
    returns = log_returns(long_run["close"])

    assert max(abs(autocorrelation(returns, lag)) for lag in range(1, 11)) < 0.03


def test_returns_excess_kurtosis_fat_tailed(long_run):
    assert excess_kurtosis(log_returns(long_run["close"])) > 1


@pytest.mark.parametrize("annual_vol", [0.2, 0.55, 1.2])
def test_returns_realised_volatility_within_factor_two_of_config(annual_vol):
    bars = SimulatedMarket(SimConfig(seed=11, annual_vol=annual_vol), START_MS).bars(SIXTY_DAYS)

    realised = log_returns(bars["close"]).std() * np.sqrt(MINUTES_PER_YEAR)

    assert annual_vol / 2 < realised < annual_vol * 2


def test_volume_overlap_hours_busier_than_asian_night(long_run):
    hours = (long_run["open_time_ms"] // 3_600_000) % 24

    overlap = long_run["volume"][(hours >= 13) & (hours < 17)].mean()
    night = long_run["volume"][hours < 4].mean()

    assert overlap > 1.1 * night


def test_volume_weekends_quieter_than_weekdays(long_run):
    weekday = (long_run["open_time_ms"] // 86_400_000 + 3) % 7

    assert long_run["volume"][weekday >= 5].mean() < 0.85 * long_run["volume"][weekday < 5].mean()


def test_volume_mean_near_configured_base(long_run):
    assert 0.5 * 100 < long_run["volume"].mean() < 2 * 100


def test_intraday_volume_profile_weekly_mean_is_one():
    week = START_MS + np.arange(7 * 1440, dtype=np.int64) * 60_000

    assert intraday_volume_profile(week).mean() == pytest.approx(1.0)


def test_taker_buy_share_rises_with_return(long_run):
    share = long_run["taker_buy_base"] / long_run["volume"]
    bar_return = np.log(long_run["close"] / long_run["open"])

    assert np.corrcoef(share, bar_return)[0, 1] > 0.3


def test_bars_dtype_is_bar_dtype(long_run):
    assert long_run.dtype == BAR_DTYPE


def test_stylised_facts_resemble_real_btcusdt_1m(long_run, market_data_dir):
    real = pd.read_csv(market_data_dir / REAL_1M_FILE)
    real_returns = log_returns(real["close"].to_numpy())
    sim_returns = log_returns(long_run["close"])

    real_acf = [autocorrelation(np.abs(real_returns), lag) for lag in (1, 5, 10)]
    sim_acf = [autocorrelation(np.abs(sim_returns), lag) for lag in (1, 5, 10)]

    # Same shape, not the same numbers: both clearly clustered, both fat-tailed.
    assert all(r > 0.1 for r in real_acf) and all(s > 0.1 for s in sim_acf)
    assert all(0.33 < s / r < 3 for s, r in zip(sim_acf, real_acf))
    assert excess_kurtosis(real_returns) > 1 and excess_kurtosis(sim_returns) > 1


def test_returns_trend_regimes_make_daily_returns_persistent():
    # Strong drift and quiet noise make the hidden regimes visible: a trending day tends to be
    # followed by another day of the same sign, which a driftless walk would not do.
    config = SimConfig(seed=13, annual_vol=0.1, trend_annual_drift=10.0, regime_mean_minutes=5 * 1440)
    closes = SimulatedMarket(config, START_MS).bars(120 * 1440)["close"][1439::1440]

    daily = log_returns(closes)

    assert autocorrelation(daily, 1) > 0.3
