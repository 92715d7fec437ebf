"""Real-candle fixtures shared by the pipeline tests; registered in tests/conftest.py."""
import pandas as pd
import pytest

from market.ingest import candles_upsert
from market.services import instrument_ensure

BTC_15M_FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
WARMUP_BARS = 300
DAY_BARS = 96


def real_frame(market_data_dir, name: str, rows: int) -> pd.DataFrame:
    """Return the first `rows` rows of a recorded candle CSV, open times as int64 ms."""
    frame = pd.read_csv(market_data_dir / name, dtype=str, nrows=rows)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    return frame


@pytest.fixture
def btc_15m(market_data_dir, db):
    """Store warm-up plus one day of real USD-M BTCUSDT 15m candles; return (active instrument, frame)."""
    frame = real_frame(market_data_dir, BTC_15M_FILE, WARMUP_BARS + DAY_BARS)
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    return instrument, frame
