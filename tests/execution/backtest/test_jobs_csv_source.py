"""Backtest jobs over the recorded CSV files: a dashboard or API request naming the csv source is checked against
the files before anything is stored, and its worker reads them as `manage.py backtest --source csv` does."""
from datetime import timedelta
from decimal import Decimal as D

import pytest

from execution.backtest.csv_source import csv_backtest_start
from execution.backtest.jobs import BacktestRefused, backtest_execute, backtest_submit
from execution.backtest.sweeps import point_execute, sweep_submit
from execution.backtest.walkforward import walkforward_submit
from execution.models import BacktestRun
from tests.execution.backtest.test_backtest_csv_source import (  # noqa: F401  (fixtures)
    BARS, END, FILES, FUNDING_FILE, START, data_dir, spot_btc)
from tests.execution.backtest.jobs_fixtures import NOW
from tests.execution.backtest.test_jobs import numbers

STEP = timedelta(minutes=15)


@pytest.fixture
def recordings(settings, data_dir):  # noqa: F811
    """MARKET_DATA_DIR is the directory of just the April recordings (the setting a web request reads)."""
    settings.MARKET_DATA_DIR = data_dir
    return data_dir


def submit(**overrides) -> BacktestRun:
    request = dict(symbols=["BTCUSDT"], timeframe="15m", start=START, end=END, starting_equity=D("10000"),
                   parameters=None, actor="olga", now=NOW, source="csv", market="spot")
    return backtest_submit(**(request | overrides))


def test_csv_job_runs_what_the_command_runs_over_the_same_files(spot_btc, recordings):  # noqa: F811
    queued = submit()
    assert queued.status == "queued" and (queued.parameters["source"], queued.parameters["market"]) == ("csv", "spot")

    run = backtest_execute(queued.pk)

    command = csv_backtest_start(timeframe="15m", start=START, end=END, starting_equity=D("10000"),
                                 instruments=[spot_btc], directory=recordings, market="spot")
    assert (run.status, run.bars_done, run.bars_total, run.error) == ("done", BARS, BARS, "")
    assert run.parameters["source_files"] == [*FILES, FUNDING_FILE]
    for name in ("instrument_id", "symbols", "timeframe", "start", "end", "starting_equity_usdt",
                 "final_equity_usdt"):
        assert getattr(run, name) == getattr(command, name), name
    # The job starts from the stored equity (10000.0000000000), the command from 10000: the same numbers.
    assert numbers(run.trades, run.equity, run.metrics) == numbers(command.trades, command.equity, command.metrics)
    # The same configuration; the job's is rebuilt from the stored values, so it carries no row id.
    assert run.parameters == command.parameters | {"id": None}
    assert run.trades and run.metrics["trade_count"] == len(run.trades)


def test_csv_job_without_a_market_reads_spot_where_usdm_has_no_files(spot_btc, recordings):  # noqa: F811
    run = backtest_execute(submit(market="").pk)

    assert run.status == "done" and run.parameters["market"] == ""
    assert run.parameters["source_files"] == [*FILES, FUNDING_FILE]


def test_csv_request_missing_file_is_refused_under_source_and_stores_nothing(spot_btc, settings,
                                                                           market_data_dir, tmp_path):
    (tmp_path / FILES[1]).symlink_to(market_data_dir / FILES[1])      # the 15m file, not the 5m one
    settings.MARKET_DATA_DIR = tmp_path

    with pytest.raises(BacktestRefused) as refused:
        submit()

    assert list(refused.value.errors) == ["source"]
    assert f"no file binance_spot_BTCUSDT_5m_*.csv.gz in {tmp_path}" in refused.value.errors["source"]
    assert not BacktestRun.objects.exists()


def test_csv_request_range_outside_the_files_is_refused(spot_btc, recordings):  # noqa: F811
    with pytest.raises(BacktestRefused) as refused:
        submit(start=END + 30 * 96 * STEP, end=END + 31 * 96 * STEP)

    assert "the spot files cover BTCUSDT" in refused.value.errors["source"]
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"source": "parquet"}, "source", "unknown source 'parquet'; use db or csv"),
    ({"source": "db"}, "market", "a market chooses among the CSV files: it needs the csv source"),
    ({"market": "coinm"}, "market", "unknown market 'coinm'; use usdm or spot (or none for either)"),
])
def test_csv_request_bad_source_or_market_is_named(spot_btc, recordings, change, field, message):  # noqa: F811
    with pytest.raises(BacktestRefused) as refused:
        submit(**change)

    assert refused.value.errors == {field: message}
    assert not BacktestRun.objects.exists()


def test_csv_sweep_points_read_the_files(spot_btc, recordings):  # noqa: F811
    parent = sweep_submit(symbols=["BTCUSDT"], timeframe="15m", start=START, end=START + 8 * STEP,
                          starting_equity=D("10000"), parameters=None, grid={"edge_threshold": ["0.5", "0.6"]},
                          metric="net_pnl_usdt", actor="olga", now=NOW, source="csv", market="spot")

    points = list(parent.children.order_by("pk"))
    assert (parent.parameters["source"], parent.parameters["market"]) == ("csv", "spot")
    assert [(p.parameters["source"], p.parameters["market"]) for p in points] == [("csv", "spot")] * 2
    for point in points:
        point_execute(point.pk)
    parent.refresh_from_db()
    assert parent.status == "done"
    assert all(p.status == "done" and p.parameters["source_files"] == [*FILES, FUNDING_FILE]
               for p in parent.children.all())


def test_csv_walkforward_folds_and_candidates_carry_the_source(spot_btc, recordings):  # noqa: F811
    parent = walkforward_submit(symbols=["BTCUSDT"], timeframe="15m", start=START, end=END,
                                starting_equity=D("10000"), parameters=None, grid={"edge_threshold": ["0.5", "0.6"]},
                                train_days=1, test_days="0.5", objective="net_pnl_usdt", actor="olga", now=NOW,
                                source="csv", market="spot")

    runs = BacktestRun.objects.exclude(pk=parent.pk)
    assert runs.count() == 2 * 3          # two folds, each with its two in-sample candidates
    assert {(r.parameters["source"], r.parameters["market"]) for r in runs} == {("csv", "spot")}
    assert parent.parameters["source"] == "csv"


def test_csv_walkforward_checks_the_files_for_every_grid_timeframe(spot_btc, recordings):  # noqa: F811
    # A point that reads 30m structure needs a 30m file: none is recorded.
    with pytest.raises(BacktestRefused) as refused:
        walkforward_submit(symbols=["BTCUSDT"], timeframe="15m", start=START, end=END, starting_equity=D("10000"),
                           parameters=None, grid={"structure_timeframes": ["5m,15m", "30m"]}, train_days=1,
                           test_days="0.5", objective="net_pnl_usdt", actor="olga", now=NOW, source="csv",
                           market="spot")

    assert "no file binance_spot_BTCUSDT_30m_*.csv.gz" in refused.value.errors["source"]
    assert not BacktestRun.objects.exists()
