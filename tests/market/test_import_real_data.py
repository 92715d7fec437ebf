"""Import every recorded file of MARKET_DATA_DIR through the importer service (runs in CI)."""
import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from market.csvformat import FileKind, parse_candles, parse_file_name
from market.importer import market_file_import, resample_missing
from market.models import Candle, DerivativesSample, Instrument

IMPORTED_KINDS = (FileKind.CANDLES, FileKind.FUNDING, FileKind.OPEN_INTEREST)
DATA_DIR = Path(settings.MARKET_DATA_DIR)
FILES = sorted(p.name for p in DATA_DIR.glob("*.csv.gz") if parse_file_name(p.name).kind in IMPORTED_KINDS)


def data_lines(path: Path) -> int:
    lines = gzip.decompress(path.read_bytes()).splitlines()
    return sum(1 for line in lines[1:] if line.strip())


def test_market_data_dir_holds_the_recordings():
    kinds = [parse_file_name(name).kind for name in FILES]

    assert (kinds.count(FileKind.CANDLES), kinds.count(FileKind.FUNDING), kinds.count(FileKind.OPEN_INTEREST)) == (
        82, 5, 8)


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("name", FILES)
def test_market_file_import_real_file_stores_every_line(name):
    path = DATA_DIR / name

    result = market_file_import(path)

    expected = data_lines(path)
    assert (result.rows_read, result.rows_new) == (expected, expected)
    spec = parse_file_name(name)
    if spec.kind == FileKind.CANDLES:
        stored = Candle.objects.filter(timeframe=spec.interval)
    else:
        stored = DerivativesSample.objects.filter(period=spec.interval)
    assert stored.filter(instrument__exchange_symbol=spec.symbol).count() == expected


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("name", [
    "binance_spot_SOLUSDT_1m_2023-12-01_2024-02-16.csv.gz",
    "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz",
])
def test_market_file_import_real_file_twice_adds_nothing(name):
    first = market_file_import(DATA_DIR / name)

    second = market_file_import(DATA_DIR / name)

    assert first.rows_new == first.rows_read > 0
    assert (second.rows_read, second.rows_new) == (first.rows_read, 0)


@pytest.mark.django_db(transaction=False)
def test_resample_missing_real_usdm_minutes_match_exchange_hours():
    market_file_import(DATA_DIR / "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz")
    instrument = Instrument.objects.get(exchange="binanceusdm", exchange_symbol="BTCUSDT")

    added = resample_missing(instrument, "1h")

    name = "binance_usdm_BTCUSDT_1h_2025-05-06_2025-06-17.csv.gz"
    exchange = parse_candles((DATA_DIR / name).read_bytes(), name, "1h").frame.set_index("open_time_ms")
    built = Candle.objects.filter(instrument=instrument, timeframe="1h").order_by("open_time")
    compared = 0
    for candle in built:
        key = int(candle.open_time.timestamp() * 1000)
        if key in exchange.index:
            row = exchange.loc[key]
            ohlc = [Decimal(row[c]) for c in ("open", "high", "low", "close")]
            assert [candle.open, candle.high, candle.low, candle.close] == ohlc
            assert np.isclose(float(candle.volume), float(row["volume"]), rtol=1e-9)
            compared += 1
    assert added == built.count() == 239
    assert compared > 200
