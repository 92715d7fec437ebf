import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.csvformat import parse_candles
from market.resample import resample, resample_columns, to_decimal_strings

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC, a Saturday


def minutes(count: int, start_ms: int = T0) -> pd.DataFrame:
    i = np.arange(count, dtype="float64")
    return pd.DataFrame({
        "open_time_ms": start_ms + np.arange(count, dtype="int64") * MINUTE,
        "open": 100 + i, "high": 102 + i, "low": 99 + i, "close": 101 + i,
        "volume": np.full(count, 0.5), "trades": np.full(count, 2.0),
    })


def test_resample_one_hour_takes_first_open_max_high_min_low_last_close_and_sums():
    bars = resample(minutes(60), "1m", "1h")

    assert bars.to_dict("records") == [{
        "open_time_ms": T0, "open": 100.0, "high": 161.0, "low": 99.0, "close": 160.0,
        "volume": 30.0, "trades": 120.0,
    }]


def test_resample_incomplete_bucket_is_dropped_by_default():
    frame = minutes(120).drop(index=70)

    assert resample(frame, "1m", "1h")["open_time_ms"].tolist() == [T0]
    assert resample(frame, "1m", "1h", complete_only=False)["open_time_ms"].tolist() == [T0, T0 + HOUR]


def test_resample_week_buckets_start_on_monday():
    monday = 1_717_372_800_000  # 2024-06-03 00:00 UTC
    frame = minutes(7 * 1440 + 2 * 1440, start_ms=T0)  # Saturday to the next Monday, inclusive

    bars = resample(frame, "1m", "1w", complete_only=False)

    assert bars["open_time_ms"].tolist() == [monday - 7 * 86_400_000, monday]


def test_resample_missing_optional_value_makes_sum_missing():
    frame = minutes(60)
    frame.loc[5, "volume"] = np.nan

    assert np.isnan(resample(frame, "1m", "1h")["volume"].iloc[0])


def test_resample_target_not_a_multiple_raises():
    with pytest.raises(ValueError, match="cannot build 1m from 5m"):
        resample(minutes(10), "5m", "1m")


@given(st.lists(st.floats(min_value=0.01, max_value=1e6), min_size=15, max_size=15))
def test_resample_high_low_bound_every_open_and_close(prices):
    frame = minutes(15)
    frame["open"] = frame["close"] = prices
    frame["high"], frame["low"] = frame["open"] + 1, frame["open"] - 0.005

    bar = resample(frame, "1m", "15m").iloc[0]

    assert bar["low"] <= min(prices) <= max(prices) <= bar["high"]


def test_to_decimal_strings_sums_lose_float_noise_and_keep_prices():
    frame = pd.DataFrame({"open_time_ms": [T0], "open": [96466.11], "volume": [6.6158 + 7.0222],
                          "trades": [3577.0], "taker_buy_base": [np.nan]})

    out = to_decimal_strings(frame).iloc[0].to_dict()

    assert out == {"open_time_ms": T0, "open": "96466.11", "volume": "13.638", "trades": "3577",
                   "taker_buy_base": None}


def _load(market_data_dir, name, timeframe):
    return parse_candles((market_data_dir / name).read_bytes(), name, timeframe).numbers


@pytest.mark.parametrize(
    "minute_file, exchange_file, timeframe, at_least",
    [
        # USD-M: 10 days of 1m against the exchange's 1h candles
        ("binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz",
         "binance_usdm_BTCUSDT_1h_2025-05-06_2025-06-17.csv.gz", "1h", 200),
        # spot: a month of 1m against 15m and against the 2018-2025 1h series
        ("binance_spot_BTCUSDT_1m_2024-11-30_2024-12-29.csv.gz",
         "binance_spot_BTCUSDT_15m_2023-12-31_2025-02-28.csv.gz", "15m", 2500),
        ("binance_spot_BTCUSDT_1m_2024-11-30_2024-12-29.csv.gz",
         "binance_spot_BTCUSDT_1h_2018-02-09_2025-02-28.csv.gz", "1h", 600),
    ],
)
def test_resample_real_minutes_match_exchange_candles(market_data_dir, minute_file, exchange_file, timeframe,
                                                      at_least):
    built = resample(_load(market_data_dir, minute_file, "1m"), "1m", timeframe)
    exchange = _load(market_data_dir, exchange_file, timeframe)

    both = built.merge(exchange, on="open_time_ms", suffixes=("_built", "_exchange"))

    assert len(both) > at_least
    for column in ("open", "high", "low", "close"):
        assert (both[f"{column}_built"] == both[f"{column}_exchange"]).all(), column
    for column in ("volume", "quote_volume", "trades"):
        present = both[f"{column}_exchange"].notna()
        ratio = both.loc[present, f"{column}_built"] / both.loc[present, f"{column}_exchange"]
        assert np.allclose(ratio, 1, rtol=0, atol=1e-6), column


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=0, max_size=400), st.sampled_from(["1h", "4h", "1d", "1w"]))
def test_resample_columns_equals_the_frame_resample_bit_for_bit(gaps, target):
    # The live snapshot's views use the array form; the importer and the backtester the frame form.
    step = 15 * 60_000
    times = np.cumsum(np.array(gaps, dtype="int64")) * step + 1_751_000_400_000 // step * step
    rng = np.random.default_rng(len(gaps))
    columns = {c: rng.random(len(times)) * 1000 for c in ("open", "high", "low", "close", "volume")}

    open_time, out = resample_columns(times, columns, "15m", target)
    frame = resample(pd.DataFrame({"open_time_ms": times, **columns}), "15m", target)

    assert open_time.tolist() == frame["open_time_ms"].tolist()
    for name, values in out.items():
        assert values.tobytes() == frame[name].to_numpy(dtype="float64").tobytes(), name
