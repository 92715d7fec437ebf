import numpy as np
import pytest

from market.csvformat import parse_candles
from market.gaps import Gap, find_gaps, format_summary, summarize

HOUR = 3_600_000
T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC


def test_find_gaps_regular_series_has_none():
    assert find_gaps(T0 + np.arange(10) * HOUR, "1h") == ()


def test_find_gaps_missing_bars_are_counted_per_break():
    times = T0 + np.array([0, 1, 4, 5, 7]) * HOUR

    assert find_gaps(times, "1h") == (
        Gap(start_ms=T0 + 2 * HOUR, end_ms=T0 + 4 * HOUR, missing_bars=2),
        Gap(start_ms=T0 + 6 * HOUR, end_ms=T0 + 7 * HOUR, missing_bars=1),
    )


def test_find_gaps_unsorted_times_raise():
    with pytest.raises(ValueError, match="sorted"):
        find_gaps(np.array([T0 + HOUR, T0]), "1h")


def test_summarize_empty_series_has_no_first_or_last():
    summary = summarize(np.array([], dtype="int64"), "1h")

    assert (summary.first_ms, summary.last_ms, summary.rows, summary.missing_bars) == (None, None, 0, 0)
    assert format_summary(summary).startswith("first -, last -, rows 0, gaps 0")


def test_summary_biggest_orders_by_size_then_time():
    times = T0 + np.array([0, 2, 3, 6, 8]) * HOUR

    biggest = summarize(times, "1h").biggest(2)

    assert [(g.start_ms, g.missing_bars) for g in biggest] == [(T0 + 4 * HOUR, 2), (T0 + HOUR, 1)]


@pytest.mark.parametrize(
    "name, timeframe, gaps, missing",
    [
        # counts from the table in MARKET_DATA_DIR/README.md
        ("binance_spot_BTCUSDT_1h_2018-02-09_2025-02-28.csv.gz", "1h", 25, 88),
        ("binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz", "1m", 2, 434),
        ("binance_spot_BTCUSDT_15m_2017-08-17_2018-03-15.csv.gz", "15m", 7, 176),
        ("binance_spot_ETHUSDT_1m_2022-12-01_2023-01-28.csv.gz", "1m", 0, 0),
    ],
)
def test_summarize_real_files_match_readme_counts(market_data_dir, name, timeframe, gaps, missing):
    table = parse_candles((market_data_dir / name).read_bytes(), name, timeframe)

    summary = summarize(table.frame["open_time_ms"].to_numpy(), timeframe)

    assert (len(summary.gaps), summary.missing_bars) == (gaps, missing)
    assert summary.rows == table.rows
