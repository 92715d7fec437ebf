"""Backtest jobs: a checked request is stored QUEUED, run by the django-q2 task (sync in tests) with live progress."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from decisions.selectors import trading_config_get
from execution.backtest.jobs import BacktestRefused, backtest_submit, parameter_names
from execution.backtest.runs import backtest_start
from execution.models import BacktestRun
from execution.tasks_backtest import backtest_execute
from market.models import Candle
from tests.execution.backtest.jobs_fixtures import (  # noqa: F401  (fixtures)
    NOW, STEP, backtest_events, close_of, eth_15m, live_messages, market)
from tests.market_fixtures import DAY_BARS, WARMUP_BARS

SHORT_WARMUP = 100          # history_bars for the multi-day runs: more of the stored bars are decided on


def submit(instrument, start, end, **overrides):
    request = dict(symbols=[instrument.exchange_symbol], timeframe="15m", start=start, end=end,
                   starting_equity=D("10000"), parameters=None, actor="olga", now=NOW)
    return backtest_submit(**(request | overrides))


def numbers(*values):
    """Return `values` with every numeric string as a Decimal, so 10000 and 10000.00 compare equal."""
    def convert(value):
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        if isinstance(value, str):
            try:
                return D(value)
            except ArithmeticError:
                return value
        return value
    return convert(list(values))


def test_backtest_submit_runs_days_of_real_candles_to_done_with_progress_events(
        market, live_messages, django_capture_on_commit_callbacks):
    instrument, frame = market
    # Every stored bar after a 100-bar warm-up: three days.
    start, end = close_of(frame, SHORT_WARMUP - 1), close_of(frame, WARMUP_BARS + DAY_BARS - 1)

    with django_capture_on_commit_callbacks(execute=True):
        run = submit(instrument, start, end, parameters={"history_bars": str(SHORT_WARMUP), "max_leverage": "2.5"})
        assert BacktestRun.objects.get().status == "queued"

    run.refresh_from_db()
    events = backtest_events(live_messages(), run.pk)
    total = int((end - start) / STEP) + 1
    assert total == 3 * DAY_BARS + 9
    assert (run.status, run.bars_done, run.bars_total, run.error) == ("done", total, total, "")
    assert (run.kind, run.requested_by, run.label) == ("run", "olga", "history_bars=100, max_leverage=2.50")
    assert run.parameters["history_bars"] == SHORT_WARMUP and run.parameters["max_leverage"] == "2.50"
    assert run.parameters["edge_threshold"] == 0.5 and run.parameters["decision_timeframe"] == "15m"
    assert len(run.equity) == total and run.metrics["trade_count"] == len(run.trades) > 0
    # Progress: queued, running, then bars_done at most every 1 % (each write broadcast), then done.
    assert [e["status"] for e in events[:2]] == ["queued", "running"] and events[-1]["status"] == "done"
    progress = [e for e in events if e["status"] == "running" and e["bars_done"]]
    assert 50 <= len(progress) <= 100
    done = [e["bars_done"] for e in progress]
    assert done == sorted(done) and done[-1] == total and all(b - a <= -(-total // 100) for a, b in zip(done, done[1:]))
    assert events[-1] | {"error": ""} == {"run_id": run.pk, "parent_id": None, "kind": "run", "label": run.label,
                                          "status": "done", "bars_done": total, "bars_total": total, "pct": 100.0,
                                          "error": ""}


def test_backtest_submit_without_parameters_runs_as_backtest_start(market, django_capture_on_commit_callbacks):
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    end = start + STEP * (DAY_BARS - 2)

    with django_capture_on_commit_callbacks(execute=True):
        queued = submit(instrument, start, end)
    direct = backtest_start(instrument=instrument, timeframe="15m", start=start, end=end, starting_equity=D("10000"))

    queued.refresh_from_db()
    # The configuration's round trip through the stored JSON changes nothing the pipeline decides. The
    # queued run reads its starting equity back from the row (10 places), so compare numbers, not their text.
    assert queued.status == "done" and queued.label == "" and queued.trades
    assert numbers(queued.trades, queued.equity, queued.metrics) == numbers(direct.trades, direct.equity,
                                                                             direct.metrics)
    # Every configuration value but the live switches and the row's id (the queued run's copy is never saved).
    assert queued.parameters == direct.parameters | {"paused": False, "safe_until": None, "id": None}


def test_backtest_submit_several_symbols_trade_on_one_account(market, eth_15m, django_capture_on_commit_callbacks):
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)

    with django_capture_on_commit_callbacks(execute=True):
        run = submit(instrument, start, start + STEP * (DAY_BARS - 2), symbols=["btcusdt", "ETHUSDT"])

    run.refresh_from_db()
    assert (run.status, run.error, run.instrument, run.symbols) == ("done", "", instrument, ["BTCUSDT", "ETHUSDT"])
    assert {t["symbol"] for t in run.trades} == {"BTCUSDT", "ETHUSDT"} == set(run.metrics["by_symbol"])
    assert sum(D(b["net_pnl_usdt"]) for b in run.metrics["by_symbol"].values()) == D(run.metrics["net_pnl_usdt"])


def test_backtest_submit_ignores_the_live_pause_and_breaker(market, django_capture_on_commit_callbacks):
    instrument, frame = market
    config = trading_config_get()
    config.paused, config.safe_until = True, NOW + timedelta(days=1)
    config.save()
    start = close_of(frame, WARMUP_BARS)

    with django_capture_on_commit_callbacks(execute=True):
        run = submit(instrument, start, start + STEP * (DAY_BARS - 2))

    run.refresh_from_db()
    assert run.parameters["paused"] is False and run.parameters["safe_until"] is None
    assert run.status == "done" and run.trades


def _valid(instrument, frame):
    start = close_of(frame, WARMUP_BARS)
    return dict(symbols=[instrument.exchange_symbol], timeframe="15m", start=start, end=start + STEP * 8,
                starting_equity=D("10000"), parameters=None)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"symbols": ["DOGEUSDT"]}, "symbols", "unknown symbol DOGEUSDT; stored: BTCUSDT"),
    ({"symbols": []}, "symbols", "give at least one symbol"),
    ({"symbols": [f"S{i}USDT" for i in range(11)]}, "symbols", "11 symbols; at most 10 per run"),
    ({"timeframe": "7m"}, "timeframe", "unknown timeframe '7m'"),
    ({"start": datetime(2025, 7, 8)}, "start", "must carry a time zone"),
    ({"start": datetime(2025, 7, 8, 0, 7, tzinfo=timezone.utc)}, "start", "is not a 15m bar close"),
    ({"end": datetime(2025, 7, 1, tzinfo=timezone.utc)}, "end", "is not after the start"),
    ({"starting_equity": D("0")}, "starting_equity", "must be more than 0"),
    ({"starting_equity": "lots"}, "starting_equity", "'lots' is not a number"),
    ({"start": datetime(2020, 1, 1, tzinfo=timezone.utc), "end": datetime(2020, 1, 2, tzinfo=timezone.utc)},
     "start", "has no stored 15m candles closing from 2020-01-01 00:00"),
    ({"parameters": {"risk_per_trade_fraction": "0.2"}}, "parameters.risk_per_trade_fraction",
     "less than or equal to 0.05"),
    ({"parameters": {"edge_threshold": "high"}}, "parameters.edge_threshold", "must be a float"),
    ({"parameters": {"mode": "TURBO"}}, "parameters.mode", "is not a valid choice"),
    ({"parameters": {"maker_fee_fraction": "0"}}, "parameters.maker_fee_fraction", "not an admin-editable"),
    ({"parameters": {"paused": "true"}}, "parameters.paused", "not an admin-editable"),
    ({"parameters": {"mtf_weight_15m": "0.9"}}, "parameters.mtf_weight_15m", "must sum to 1, they sum to 1.5"),
    ({"parameters": {"history_bars": "1000"}}, "start", "need 1000 before the start for the warm-up"),
    ({"parameters": ["edge_threshold"]}, "parameters", "must be a mapping"),
])
def test_backtest_submit_bad_input_names_the_field_and_stores_nothing(
        market, django_capture_on_commit_callbacks, change, field, message):
    instrument, frame = market

    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(BacktestRefused) as refused:
            backtest_submit(**(_valid(instrument, frame) | change), actor="olga", now=NOW)

    assert message in refused.value.errors[field] and f"{field}: " in str(refused.value)
    assert not BacktestRun.objects.exists() and not callbacks


def test_backtest_submit_names_every_bad_field_at_once(market):
    instrument, frame = market

    with pytest.raises(BacktestRefused) as refused:
        backtest_submit(**(_valid(instrument, frame) | {"symbols": ["XRPUSDT"], "starting_equity": "-5",
                                                        "parameters": {"sl_atr_multiple": "0"}}),
                        actor="olga", now=NOW)

    assert set(refused.value.errors) == {"symbols", "starting_equity", "parameters.sl_atr_multiple"}


def test_parameter_names_are_the_admin_fields_without_the_live_switches():
    names = parameter_names()

    assert {"edge_threshold", "risk_per_trade_fraction", "sl_atr_multiple", "mode", "history_bars"} <= set(names)
    assert not {"paused", "safe_until", "decision_timeframe", "change_reason", "version"} & set(names)


def test_backtest_run_failing_is_stored_failed_with_the_error_and_an_event(
        market, live_messages, django_capture_on_commit_callbacks):
    instrument, frame = market

    with django_capture_on_commit_callbacks(execute=True):
        run = backtest_submit(**_valid(instrument, frame), actor="olga", now=NOW)
        # The candles vanish between the request and the worker (a purge, a restore): the run fails, told why.
        Candle.objects.all().delete()

    run.refresh_from_db()
    assert run.status == "failed" and "ValueError: BTCUSDT 15m: 0 stored candles" in run.error
    assert run.finished_at is not None
    assert backtest_events(live_messages(), run.pk)[-1]["status"] == "failed"


def test_backtest_task_delivered_twice_runs_once(market, django_capture_on_commit_callbacks):
    instrument, frame = market
    with django_capture_on_commit_callbacks(execute=True):
        run = backtest_submit(**_valid(instrument, frame), actor="olga", now=NOW)
    run.refresh_from_db()

    outcome = backtest_execute(run.pk)

    assert outcome == "skipped: another worker has it"
    assert BacktestRun.objects.get().finished_at == run.finished_at
