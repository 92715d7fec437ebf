"""manage.py backtest --source csv: the recordings give the run the database gives over the same candles."""
import gzip
import shutil
from datetime import datetime, timezone
from decimal import Decimal as D
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from decisions.models import Mode
from decisions.selectors import trading_config_get
from execution.backtest.csv_source import csv_symbols_load
from execution.backtest.engine import backtest_run
from execution.backtest.runs import symbol_load
from execution.models import BacktestRun
from market.models import Instrument
from market.services import instrument_ensure

# Real spot BTCUSDT 15m (decision) and 5m (structure) candles of April 2025 and the USD-M funding
# rates of the same days: 300 warm-up bars from the 15m file's first bar, then two days.
FILES = ("binance_spot_BTCUSDT_5m_2025-04-01_2025-05-02.csv.gz",
         "binance_spot_BTCUSDT_15m_2025-04-14_2025-05-14.csv.gz")
FUNDING_FILE = "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz"
START = datetime(2025, 4, 18, 0, 0, tzinfo=timezone.utc)
END = datetime(2025, 4, 20, 0, 0, tzinfo=timezone.utc)
BARS = 2 * 96 + 1


def _config_trades():
    # Mode ON with the edge bar at 0.5, as the parity tests, so that the two days trade.
    config = trading_config_get()
    config.mode, config.edge_threshold, config.structure_timeframes = Mode.ON, 0.5, "5m,15m"
    config.save()
    return config


def _backtest(*args: str) -> str:
    out = StringIO()
    call_command("backtest", "--symbol", "BTCUSDT", "--timeframe", "15m", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def spot_btc(db):
    """The spot BTCUSDT instrument the recordings are read for (nothing stored of it)."""
    _config_trades()
    return instrument_ensure(exchange="binance", exchange_symbol="BTCUSDT", market_type="spot")


@pytest.fixture
def data_dir(market_data_dir, tmp_path):
    """A directory of just these recordings (the full one also has the 15m file of Jan-Feb 2025, which the
    warm-up window of the decision timeframe reaches across the March holdout)."""
    for name in (*FILES, FUNDING_FILE):
        (tmp_path / name).symlink_to(market_data_dir / name)
    return tmp_path


@pytest.fixture
def imported(data_dir, spot_btc):
    """The same files imported with the project's importer; the funding rates go to the spot instrument traded."""
    call_command("import_candles", *(str(data_dir / f) for f in FILES), verbosity=0, stdout=StringIO())
    call_command("import_candles", str(data_dir / FUNDING_FILE), "--exchange-market", "spot", verbosity=0,
                 stdout=StringIO())
    assert Instrument.objects.count() == 1
    return spot_btc


def _same_candles(a, b) -> None:
    assert a.timeframe == b.timeframe
    assert np.array_equal(a.open_time_ms, b.open_time_ms)
    for name in ("open", "high", "low", "close", "volume", "taker_buy_base", "quote_volume"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def test_csv_run_over_two_real_days_equals_the_run_over_the_same_candles_imported(imported, data_dir):
    config = trading_config_get()
    config.decision_timeframe = "15m"
    from_files = csv_symbols_load(instruments=[imported], config=config, start=START, end=END,
                                  directory=data_dir, market="spot")
    from_db = symbol_load(instrument=imported, config=config, start=START, end=END)

    # The data read: the same candles of both timeframes (values, open times, warm-up) and the same funding.
    csv_data, db_data = from_files.data[0], from_db
    assert sorted(csv_data.candles) == sorted(db_data.candles) == ["15m", "5m"]
    for timeframe in csv_data.candles:
        _same_candles(csv_data.candles[timeframe], db_data.candles[timeframe])
    assert csv_data.funding is not None and len(csv_data.funding.ts_ms) >= 6
    assert np.array_equal(csv_data.funding.ts_ms, db_data.funding.ts_ms)
    assert csv_data.funding.rates == db_data.funding.rates and csv_data.instrument == db_data.instrument
    assert from_files.files == [*FILES, FUNDING_FILE]

    # The pipeline over each: decisions, orders, fills, funding, positions and equity field by field.
    runs = [backtest_run(symbols=[data], config=config, starting_equity=D("10000"), start=START, end=END)
            for data in (csv_data, db_data)]
    csv_result, db_result = runs
    assert len(csv_result.decisions) == BARS and csv_result.orders and csv_result.fills
    for name in ("decisions", "orders", "fills", "funding", "trades", "equity"):
        assert getattr(csv_result, name) == getattr(db_result, name), name

    # The stored runs: the command over the files and over the database store the same run.
    csv_out = _backtest("--source", "csv", "--market", "spot", "--data-dir", str(data_dir),
                        "--start", START.isoformat(), "--end", END.isoformat())
    db_out = _backtest("--start", START.isoformat(), "--end", END.isoformat())
    csv_run, db_run = BacktestRun.objects.order_by("pk")
    assert f"] {BARS}/{BARS} bars" in csv_out and f"backtest {csv_run.pk}:" in csv_out
    assert f"funding rates from {FUNDING_FILE}" in csv_out and f"backtest {db_run.pk}:" in db_out
    assert csv_run.parameters.pop("source") == "csv" and csv_run.parameters.pop("market") == "spot"
    assert csv_run.parameters.pop("source_files") == [*FILES, FUNDING_FILE]
    for name in ("status", "instrument_id", "symbols", "timeframe", "start", "end", "starting_equity_usdt",
                 "parameters", "code_version", "bars_total", "bars_done", "trades", "equity", "metrics",
                 "final_equity_usdt"):
        assert getattr(csv_run, name) == getattr(db_run, name), name
    assert csv_run.status == "done" and csv_run.trades and len(csv_run.equity) == BARS


def test_csv_source_without_a_funding_file_runs_without_funding_and_says_so(spot_btc, market_data_dir, tmp_path):
    for name in FILES:
        shutil.copy(market_data_dir / name, tmp_path / name)

    out = _backtest("--source", "csv", "--data-dir", str(tmp_path), "--start", START.isoformat(),
                    "--end", END.isoformat())

    assert "BTCUSDT: no funding file (binance_usdm_BTCUSDT_funding_*.csv.gz) covers 2025-04-17 16:00 to " \
           "2025-04-20 08:00: no funding is charged" in out
    run = BacktestRun.objects.get()
    assert run.status == "done" and run.parameters["source_files"] == list(FILES)
    assert all(D(t["funding_usdt"]) == 0 for t in run.trades)


def test_csv_source_missing_file_names_it_and_stores_nothing(spot_btc, market_data_dir):
    config = trading_config_get()
    config.structure_timeframes = "30m"
    config.save()

    with pytest.raises(CommandError) as error:
        _backtest("--source", "csv", "--market", "spot", "--data-dir", str(market_data_dir),
                  "--start", START.isoformat(), "--end", END.isoformat())

    assert f"no file binance_spot_BTCUSDT_30m_*.csv.gz in {market_data_dir} (needed: BTCUSDT 30m from " \
           "2025-04-11 18:00 to 2025-04-19 23:30 (bar opens))" in str(error.value)
    assert not BacktestRun.objects.exists()


def test_csv_source_range_outside_the_files_names_the_range_and_stores_nothing(spot_btc, market_data_dir):
    with pytest.raises(CommandError) as error:
        _backtest("--source", "csv", "--data-dir", str(market_data_dir), "--start", "2025-05-14T00:00",
                  "--end", "2025-05-15T00:00")

    message = str(error.value)
    # USD-M has no BTCUSDT 15m file in May 2025; spot's 15m file stops on 2025-05-14 18:00.
    assert "no usdm file covers BTCUSDT 15m from 2025-05-10 21:00 to 2025-05-14 23:45 (bar opens)" in message
    assert "the spot files cover BTCUSDT 15m only from 2025-04-14 18:30 to 2025-05-14 18:00 within the range, " \
           "needed BTCUSDT 15m from 2025-05-10 21:00 to 2025-05-14 23:45 (bar opens); files: " in message
    assert "binance_spot_BTCUSDT_15m_2025-04-14_2025-05-14.csv.gz (2025-04-14 to 2025-05-14)" in message
    assert not BacktestRun.objects.exists()


def test_csv_source_malformed_file_names_the_file_and_line_and_stores_nothing(spot_btc, market_data_dir, tmp_path):
    structure, decision = FILES
    shutil.copy(market_data_dir / structure, tmp_path / structure)
    lines = gzip.decompress((market_data_dir / decision).read_bytes()).decode().splitlines()
    fields = lines[400].split(",")
    fields[2] = str(float(fields[3]) - 1000)          # high below low
    lines[400] = ",".join(fields)
    (tmp_path / decision).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    with pytest.raises(CommandError) as error:
        _backtest("--source", "csv", "--market", "spot", "--data-dir", str(tmp_path), "--start", START.isoformat(),
                  "--end", END.isoformat())

    assert f"{decision}: line 401: high " in str(error.value)
    assert not BacktestRun.objects.exists()
