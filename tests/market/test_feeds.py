"""Tests of the offline feeds: replay of a recorded file, the simulated feed, and their frames."""
import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from market.feeds import (
    CSV_HEADER, Feed, ReplayBar, ReplayFeed, SimulatedFeed, bars_to_frame, choose_replay_file,
    parse_candle_file_name, read_candle_file,
)
from market.ingest import candles_upsert
from market.models import Candle, DataSource
from market.services import instrument_ensure
from market.simfeed import LABEL, Bar, SimConfig, SimulatedMarket

FIVE_MIN_MS = 300_000
T0 = 1_751_628_900_000  # 2025-07-04 11:35 UTC, on the 5m grid
ROWS = [
    # Trailing zeros and empty cells must survive the replay untouched.
    f"{T0},108989.40,108989.4,108941.4,108953.4,219.412,,,,",
    f"{T0 + FIVE_MIN_MS},108953.5,109008.0,108953.4,108994.3,89.449,9750000.25,1234,40.1,4371234.5",
    f"{T0 + 2 * FIVE_MIN_MS},108994.3,109004.6,108960.8,108970.3,80.48,,,,",
]


def write_candles(path: Path, rows: list[str], header: str = ",".join(CSV_HEADER)) -> Path:
    with gzip.open(path, "wt", newline="") as handle:
        handle.write("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def candle_file(tmp_path) -> Path:
    return write_candles(tmp_path / "binance_usdm_BTCUSDT_5m_2025-07-04_2025-07-04.csv.gz", ROWS)


# --- file names ---------------------------------------------------------------------------------

def test_parse_candle_file_name_reads_fields():
    info = parse_candle_file_name("binance_usdm_BTCUSDT_5m_2025-07-04_2025-12-31.csv.gz")

    assert (info.market, info.symbol, info.timeframe) == ("usdm", "BTCUSDT", "5m")
    assert info.span_days == 180


@pytest.mark.parametrize("name", [
    "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz",  # not candles
    "binance_usdm_BTCUSDT_7m_2025-07-04_2025-12-31.csv.gz",       # unknown interval
    "README.md",
])
def test_parse_candle_file_name_other_files_return_none(name):
    assert parse_candle_file_name(name) is None


def test_choose_replay_file_picks_longest_matching(tmp_path):
    for name in [
        "binance_usdm_BTCUSDT_5m_2025-01-01_2025-01-31.csv.gz",
        "binance_usdm_BTCUSDT_5m_2025-03-01_2025-06-30.csv.gz",   # the longest match
        "binance_spot_BTCUSDT_5m_2020-01-01_2025-01-01.csv.gz",   # longer, but spot
        "binance_usdm_ETHUSDT_5m_2020-01-01_2025-01-01.csv.gz",   # longer, other symbol
        "binance_usdm_BTCUSDT_15m_2020-01-01_2025-01-01.csv.gz",  # longer, other interval
    ]:
        (tmp_path / name).touch()

    chosen = choose_replay_file(tmp_path)

    assert chosen.name == "binance_usdm_BTCUSDT_5m_2025-03-01_2025-06-30.csv.gz"


def test_choose_replay_file_real_directory_picks_usdm_5m(market_data_dir):
    chosen = choose_replay_file(market_data_dir, "BTCUSDT", "usdm", "5m")

    assert chosen.name == "binance_usdm_BTCUSDT_5m_2025-07-04_2025-12-31.csv.gz"


def test_choose_replay_file_no_match_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no usdm DOGEUSDT 5m candle file"):
        choose_replay_file(tmp_path, "DOGEUSDT")


def test_read_candle_file_wrong_header_raises(tmp_path):
    path = write_candles(tmp_path / "x.csv.gz", ROWS, header="time,o,h,l,c,v")

    with pytest.raises(ValueError, match="is not open_time_ms,open"):
        read_candle_file(path)


# --- replay -------------------------------------------------------------------------------------

def test_replay_feed_bar_released_only_once_closed(candle_file):
    feed = ReplayFeed(candle_file)

    before_close = feed.next_bars(T0 + FIVE_MIN_MS - 1)
    at_close = feed.next_bars(T0 + FIVE_MIN_MS)

    assert before_close == []
    assert [b.open_time_ms for b in at_close] == [T0]


def test_replay_feed_bars_in_order_each_once(candle_file):
    feed = ReplayFeed(candle_file)

    handed_out = [b for clock in range(T0, T0 + 5 * FIVE_MIN_MS, 60_000) for b in feed.next_bars(clock)]

    assert [b.open_time_ms for b in handed_out] == [T0, T0 + FIVE_MIN_MS, T0 + 2 * FIVE_MIN_MS]


def test_replay_feed_strings_preserved_exactly(candle_file):
    bars = ReplayFeed(candle_file).next_bars(T0 + 10 * FIVE_MIN_MS)

    assert bars[0].open == "108989.40"
    assert bars[0].quote_volume == ""
    assert (bars[1].quote_volume, bars[1].trades, bars[1].taker_buy_quote) == ("9750000.25", "1234", "4371234.5")
    assert bars[1].simulated is False


def test_replay_feed_end_of_file_signals_exhaustion(candle_file):
    feed = ReplayFeed(candle_file)

    feed.next_bars(T0 + 3 * FIVE_MIN_MS)

    assert feed.exhausted
    assert feed.next_close_ms is None
    assert feed.next_bars(T0 + 100 * FIVE_MIN_MS) == []


def test_replay_feed_next_close_ms_steps_the_clock(candle_file):
    feed = ReplayFeed(candle_file)
    released = []

    while not feed.exhausted:
        released += feed.next_bars(feed.next_close_ms)

    assert len(released) == 3


def test_replay_feed_start_ms_skips_earlier_bars(candle_file):
    feed = ReplayFeed(candle_file, start_ms=T0 + FIVE_MIN_MS)

    assert len(feed) == 2
    assert feed.next_close_ms == T0 + 2 * FIVE_MIN_MS


def test_replay_feed_label_names_source_and_clock(candle_file):
    feed = ReplayFeed(candle_file)

    assert feed.label == (
        "REPLAY of real Binance USD-M BTCUSDT 5m candles from "
        "binance_usdm_BTCUSDT_5m_2025-07-04_2025-07-04.csv.gz, simulated clock"
    )
    assert isinstance(feed, Feed)
    assert feed.is_simulated is True


def test_replay_feed_unparseable_name_needs_timeframe(tmp_path):
    path = write_candles(tmp_path / "candles.csv.gz", ROWS)

    with pytest.raises(ValueError, match="pass timeframe="):
        ReplayFeed(path)
    assert ReplayFeed(path, timeframe="5m").interval_ms == FIVE_MIN_MS


def test_replay_feed_real_file_no_lookahead(market_data_dir):
    feed = ReplayFeed(market_data_dir / "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz")
    clock = feed.next_close_ms + 30 * 60_000 + 59_999

    bars = feed.next_bars(clock)

    assert len(bars) == 31
    assert all(b.open_time_ms + 60_000 <= clock for b in bars)
    assert bars[0].open == "104367.5"


# --- simulated feed -----------------------------------------------------------------------------

START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def test_simulated_feed_releases_only_closed_bars():
    feed = SimulatedFeed(SimulatedMarket(SimConfig(seed=1), START_MS), "1m")

    assert feed.next_bars(START_MS + 59_999) == []
    assert [b.open_time_ms for b in feed.next_bars(START_MS + 3 * 60_000)] == [
        START_MS, START_MS + 60_000, START_MS + 120_000,
    ]


def test_simulated_feed_5m_aggregates_1m_bars():
    minutes = SimulatedMarket(SimConfig(seed=1), START_MS).bars(10)
    feed = SimulatedFeed(SimulatedMarket(SimConfig(seed=1), START_MS), "5m")

    first, second = feed.next_bars(START_MS + 10 * 60_000 + 1)

    assert first.open == minutes["open"][0] and first.close == minutes["close"][4]
    assert first.high == minutes["high"][:5].max() and first.low == minutes["low"][:5].min()
    assert first.volume == pytest.approx(minutes["volume"][:5].sum())
    assert first.trades == minutes["trades"][:5].sum()
    assert second.open_time_ms == START_MS + FIVE_MIN_MS


def test_simulated_feed_labelled_simulated():
    feed = SimulatedFeed(SimulatedMarket(SimConfig(seed=9), START_MS))

    assert feed.label == LABEL
    assert feed.is_simulated is True
    assert isinstance(feed, Feed)
    assert all(b.simulated for b in feed.next_bars(START_MS + 5 * 60_000))


def test_simulated_feed_misaligned_start_raises():
    market = SimulatedMarket(SimConfig(), START_MS + 60_000)

    with pytest.raises(ValueError, match="does not open on a 5m boundary"):
        SimulatedFeed(market, "5m")


# --- frames for candles_upsert ------------------------------------------------------------------

def test_bars_to_frame_replay_keeps_strings(candle_file):
    frame = bars_to_frame(ReplayFeed(candle_file).next_bars(T0 + 10 * FIVE_MIN_MS))

    assert list(frame.columns) == CSV_HEADER
    assert frame["open_time_ms"].dtype == np.int64
    assert frame["open"].tolist() == ["108989.40", "108953.5", "108994.3"]
    assert frame["quote_volume"].isna().tolist() == [True, False, True]


def test_bars_to_frame_simulated_bars_and_array_agree():
    market_a = SimulatedMarket(SimConfig(seed=2), START_MS)
    market_b = SimulatedMarket(SimConfig(seed=2), START_MS)

    from_bars = bars_to_frame([market_a.next_bar() for _ in range(5)])
    from_array = bars_to_frame(market_b.bars(5))

    assert from_bars.equals(from_array)


def test_bars_to_frame_empty_has_columns():
    frame = bars_to_frame([])

    assert frame.empty and list(frame.columns) == CSV_HEADER


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["replay", "simulated"])
def test_bars_to_frame_accepted_by_candles_upsert(source, candle_file):
    instrument = instrument_ensure(exchange="binance", exchange_symbol="BTCUSDT", market_type="swap",
                                   data_source=DataSource(source))
    if source == "replay":
        bars = ReplayFeed(candle_file).next_bars(T0 + 10 * FIVE_MIN_MS)
    else:
        bars = SimulatedFeed(SimulatedMarket(SimConfig(), START_MS), "5m").next_bars(START_MS + 3 * FIVE_MIN_MS)

    added = candles_upsert(instrument_id=instrument.id, timeframe="5m", frame=bars_to_frame(bars))

    assert added == 3
    stored = Candle.objects.filter(instrument=instrument).order_by("open_time").first()
    assert stored.close == Decimal(str(bars[0].close))


def test_replay_bar_fields_match_csv_header():
    assert list(ReplayBar.__dataclass_fields__)[:-1] == CSV_HEADER
    assert list(Bar.__dataclass_fields__)[:-1] == CSV_HEADER
