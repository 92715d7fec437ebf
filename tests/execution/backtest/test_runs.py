"""Stored backtests: manage.py backtest over real stored candles keeps parameters, trades, equity and metrics."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone as django_timezone

from decisions.models import Mode
from decisions.selectors import trading_config_get
from execution.backtest.engine import backtest_run
from execution.backtest.runs import backtest_start, candles_load
from execution.backtest.world import InstrumentSpec
from execution.models import BacktestRun
from tests.market_fixtures import DAY_BARS, WARMUP_BARS

STEP = timedelta(minutes=15)


@pytest.fixture
def day(btc_15m):
    """The real day after the warm-up, mode ON with the edge bar at 0.5 (trades happen), as the parity test."""
    instrument, frame = btc_15m
    config = trading_config_get()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    config.save()
    first = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[WARMUP_BARS]) / 1000, tz=timezone.utc) + STEP
    return instrument, first, first + STEP * (DAY_BARS - 1)


def test_backtest_command_stores_the_run_with_progress_trades_equity_and_metrics(day):
    instrument, start, end = day
    out = StringIO()

    call_command("backtest", "--symbol", instrument.exchange_symbol, "--timeframe", "15m", "--start",
                 start.isoformat(), "--end", end.isoformat(), "--equity", "10000", stdout=out)

    run = BacktestRun.objects.get()
    assert (run.status, run.bars_total, run.bars_done) == ("done", DAY_BARS, DAY_BARS)
    assert f"] {DAY_BARS}/{DAY_BARS} bars" in out.getvalue() and f"backtest {run.pk}:" in out.getvalue()
    assert run.parameters["edge_threshold"] == 0.5 and run.parameters["decision_timeframe"] == "15m"
    assert len(run.code_version) == 40 or run.code_version == "unknown"
    assert len(run.equity) == DAY_BARS and run.equity[0][0] == int(start.timestamp() * 1000)
    assert run.trades and run.metrics["trade_count"] == len(run.trades)
    for trade in run.trades:
        assert trade["exit_reason"] in ("stop", "target") and trade["entry_ms"] < trade["exit_ms"]
        assert trade["r_multiple"] is not None


def test_backtest_trade_pnl_adds_up_to_the_equity_change(day):
    instrument, start, end = day
    since = start - STEP * (trading_config_get().history_bars + 1)
    candles = {"15m": candles_load(instrument=instrument, timeframe="15m", since=since, until=end)}

    result = backtest_run(candles=candles, instrument=InstrumentSpec.of(instrument), config=trading_config_get(),
                          starting_equity=D("10000"), start=start, end=end)
    run = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"))

    # Accounting to the cent: every position's realised PnL (fees, partial exits) is the balance change,
    # and the equity is the balance plus what is still open.
    last = result.equity[-1]
    assert last.balance_usdt == D("10000") + sum((p.realized_pnl_usdt for p in result.trades), D(0))
    assert last.equity_usdt == last.balance_usdt + last.unrealized_pnl_usdt
    # The stored run keeps the closed trades of that same run and their sum.
    closed = [p for p in result.trades if p.status == "closed"]
    assert [D(t["pnl_usdt"]) for t in run.trades] == [p.realized_pnl_usdt for p in closed]
    assert D(run.metrics["net_pnl_usdt"]) == sum((p.realized_pnl_usdt for p in closed), D(0))
    assert run.final_equity_usdt == last.equity_usdt


def test_backtest_same_run_twice_gives_identical_results(day):
    instrument, start, end = day

    first = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"))
    second = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"))

    assert (first.trades, first.equity, first.metrics) == (second.trades, second.equity, second.metrics)


@pytest.mark.parametrize(("args", "message"), [
    (["--symbol", "DOGEUSDT"], "no instrument 'DOGEUSDT'; stored: BTCUSDT"),
    (["--start", "yesterday"], "'yesterday' is not an ISO date"),
    (["--equity", "lots"], "--equity 'lots' is not a number"),
    (["--start", "2020-01-01", "--end", "2020-01-02"], "stored candles from 2019-12-28"),
    (["--approve", "maybe"], "--approve 'maybe': use approve, reject or a confidence such as 0.7"),
    (["--symbols", "BTCUSDT,BTCUSDT"], "instrument listed twice: BTCUSDT"),
])
def test_backtest_command_bad_input_names_the_problem_and_stores_nothing(day, args, message):
    _, start, end = day
    base = {"--symbol": "BTCUSDT", "--start": start.isoformat(), "--end": end.isoformat(), "--equity": "10000"}
    base.update(dict(zip(args[::2], args[1::2])))
    if "--symbols" in base:
        del base["--symbol"]

    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("backtest", *[x for pair in base.items() for x in pair], stdout=StringIO())

    assert not BacktestRun.objects.exists()


def test_backtest_runs_are_read_only_in_the_admin(day, admin_client):
    instrument, start, end = day
    run = backtest_start(instrument=instrument, timeframe="15m", start=start, end=start + STEP * 4,
                         starting_equity=D("10000"))
    run.refresh_from_db()

    listing = admin_client.get("/admin/execution/backtestrun/")
    detail = admin_client.get(f"/admin/execution/backtestrun/{run.pk}/change/")

    assert listing.status_code == 200 and str(run.final_equity_usdt) in listing.content.decode()
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert admin_client.get("/admin/execution/backtestrun/add/").status_code == 403


def _queued(instrument, start, end) -> BacktestRun:
    return BacktestRun.objects.create(instrument=instrument, timeframe="15m", start=start, end=end,
                                      starting_equity_usdt=D("10000"), code_version="",
                                      status=BacktestRun.Status.QUEUED, created_at=django_timezone.now(),
                                      requested_by="alice", label="queued by a job")


def test_backtest_start_fills_an_existing_queued_run_with_progress(day):
    instrument, start, end = day
    queued = _queued(instrument, start, end)
    seen = []

    run = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"),
                         run=queued, progress=lambda done, total: seen.append((done, total)))

    run.refresh_from_db()
    assert run.pk == queued.pk and BacktestRun.objects.count() == 1
    assert (run.status, run.symbols, run.bars_done, run.requested_by) == ("done", ["BTCUSDT"], DAY_BARS, "alice")
    assert seen[0] == (1, DAY_BARS) and seen[-1] == (DAY_BARS, DAY_BARS)
    assert run.metrics["trade_count"] == len(run.trades) and run.equity


def test_backtest_start_with_a_given_configuration_stores_it(day):
    instrument, start, end = day
    config = trading_config_get()
    config.risk_per_trade_fraction = D("0.002")        # not saved: only this run uses it

    run = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"),
                         config=config)
    default = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"))

    assert run.parameters["risk_per_trade_fraction"] == "0.002"
    assert default.parameters["risk_per_trade_fraction"] != "0.002"
    assert [t["quantity"] for t in run.trades] != [t["quantity"] for t in default.trades]


def test_backtest_start_refuses_a_finished_run_and_writes_nothing(day):
    instrument, start, end = day
    done = _queued(instrument, start, end)
    BacktestRun.objects.filter(pk=done.pk).update(status=BacktestRun.Status.DONE)
    done.refresh_from_db()

    with pytest.raises(ValueError, match=f"backtest {done.pk} is done"):
        backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"),
                       run=done)

    done.refresh_from_db()
    assert (done.status, done.trades, done.bars_done) == ("done", [], 0)
