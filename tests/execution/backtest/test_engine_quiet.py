"""Quiet bars: the rule's FLAT verdict found for a whole run at once equals the snapshot's, and skipping the
analysis on those bars changes no record of a run."""
import multiprocessing
import os
import signal
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal as D

import numpy as np
import pytest

from analytics.features.volatility import atr
from analytics.snapshot import build_snapshot, min_bars
from decisions.engine.rules import decide
from decisions.models import Mode, TradingConfig
from decisions.params import rule_params, snapshot_params
from execution.backtest.analysis import analysis_pool
from execution.backtest.engine import backtest_run
from execution.backtest.quiet import QuietBars, QuietParams, window_atr
from execution.backtest.world import Candles, InstrumentSpec, Market, SymbolData
from market.services import KNOWN_FILTERS
from tests.market_fixtures import BTC_15M_FILE, WARMUP_BARS, real_frame

BTC_5M_FILE = "binance_usdm_BTCUSDT_5m_2025-07-04_2025-12-31.csv.gz"
ETH_15M_FILE = "binance_usdm_ETHUSDT_15m_2025-07-04_2025-12-31.csv.gz"
BARS = 600


@pytest.fixture
def btc(market_data_dir):
    return (Candles.from_frame("15m", real_frame(market_data_dir, BTC_15M_FILE, BARS)),
            Candles.from_frame("5m", real_frame(market_data_dir, BTC_5M_FILE, 3 * BARS + 3)))


def _quiet(c15: Candles, c5: Candles, config: TradingConfig) -> QuietBars:
    params = QuietParams(config.history_bars, config.atr_period, config.momentum_period, config.pivot_length,
                         min_bars(snapshot_params(config)), rule_params(config).structure_timeframes)
    return QuietBars(c15.open_time_ms, c15.high, c15.low, c15.close, params,
                     {"5m": (c5.open_time_ms, c5.high, c5.low)}, c15.step_ms, {"5m": c5.step_ms})


@pytest.mark.parametrize("history_bars", [300, 60])
def test_quiet_bars_give_the_rule_verdict_of_every_window(btc, history_bars):
    c15, c5 = btc
    config = TradingConfig(history_bars=history_bars)
    quiet, market = _quiet(c15, c5, config), Market({"15m": c15, "5m": c5})
    checked = quiet_count = 0

    for end in range(min_bars(snapshot_params(config)), BARS + 1):
        now = int(c15.open_time_ms[end - 1]) + c15.step_ms
        bars = market.bars_load(timeframe="15m", now_ms=now, count=history_bars)
        context = market.context_load(timeframe="15m", now_ms=now, structure_timeframes=("5m", "15m"))
        snapshot = build_snapshot(bars, snapshot_params(config), context)
        signal = decide(snapshot, rule_params(config), None)
        reason = quiet.reason(end)
        if reason is not None:
            quiet_count += 1
            assert (signal.action, signal.reason) == ("FLAT", reason)
        if quiet.ready[end - 1]:
            checked += 1
            assert ("range", "up", "down")[int(quiet.trend[end - 1])] == snapshot.trend
            assert ("neutral", "up", "down", "fading")[int(quiet.momentum[end - 1])] == snapshot.momentum

    # Most bars are quiet; the rest (aligned and confirmed) go through the whole pipeline.
    assert checked > BARS - WARMUP_BARS and 0.6 * checked < quiet_count < checked


def test_window_atr_is_the_atr_of_each_window_bit_for_bit(btc):
    c15, _ = btc
    ends = np.arange(1, BARS + 1)

    got = window_atr(c15.high, c15.low, c15.close, 14, 120, ends)

    for end in ends[13:]:
        start = max(0, end - 120)
        assert got[end - 1] == atr(c15.high[start:end], c15.low[start:end], c15.close[start:end], 14)[-1]


def _spec(pk: int, symbol: str) -> InstrumentSpec:
    base = symbol.removesuffix("USDT")
    filters = {k: D(v) for k, v in KNOWN_FILTERS[symbol].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=pk, symbol=f"{base}/USDT:USDT", exchange_symbol=symbol,
                                                  base=base, **filters)))


def test_backtest_skipping_quiet_bars_or_analysing_ahead_records_what_the_full_pipeline_does(market_data_dir,
                                                                                              btc):
    c15, c5 = btc
    eth = Candles.from_frame("15m", real_frame(market_data_dir, ETH_15M_FILE, BARS))
    data = [SymbolData(_spec(1, "BTCUSDT"), {"15m": c15, "5m": c5}), SymbolData(_spec(2, "ETHUSDT"), {"15m": eth})]
    # A tight daily loss limit trips the circuit breaker on these days: the quiet bars' gates must see it.
    config = TradingConfig(mode=Mode.ON, edge_threshold=0.5, daily_loss_limit_fraction=D("0.004"))
    start = datetime.fromtimestamp((int(c15.open_time_ms[WARMUP_BARS]) + c15.step_ms) / 1000, tz=timezone.utc)

    fast = backtest_run(symbols=data, config=config, starting_equity=D("10000"), start=start)
    full = backtest_run(symbols=data, config=config, starting_equity=D("10000"), start=start, skip_quiet_bars=False)
    ahead = backtest_run(symbols=data, config=config, starting_equity=D("10000"), start=start, workers=2)

    assert any(d.mode == Mode.SAFE for d in full.decisions) and full.orders
    assert sum(d.reason.startswith("no alignment") for d in full.decisions) > len(full.decisions) / 2
    assert fast == full
    # The other bars' snapshots and flows analysed ahead on two processes: the same run again.
    assert ahead == full


def test_backtest_outside_the_main_thread_analyses_in_turn_and_records_the_same_run(btc, monkeypatch):
    c15, c5 = btc
    data = [SymbolData(_spec(1, "BTCUSDT"), {"15m": c15, "5m": c5})]
    config = TradingConfig(mode=Mode.ON, edge_threshold=0.5)
    start = datetime.fromtimestamp((int(c15.open_time_ms[WARMUP_BARS]) + c15.step_ms) / 1000, tz=timezone.utc)
    in_turn = backtest_run(symbols=data, config=config, starting_equity=D("10000"), start=start,
                           skip_quiet_bars=False)
    forks = []
    monkeypatch.setattr("execution.backtest.analysis.multiprocessing.get_context",
                        lambda method: forks.append(method))
    got = {}

    # A fork from a thread can copy a lock another thread holds into a worker that then hangs for ever.
    thread = threading.Thread(target=lambda: got.update(run=backtest_run(
        symbols=data, config=config, starting_equity=D("10000"), start=start, workers=2, skip_quiet_bars=False)))
    thread.start()
    thread.join()

    assert forks == [] and got["run"] == in_turn



class _Hung(Exception):
    pass


def _hung(*_):
    raise _Hung("terminate() still waits for a worker that ignored its SIGTERM")


_STARTED = multiprocessing.get_context("fork").Event()     # inherited by the forked worker


def _busy_until_stopped() -> None:
    _STARTED.set()
    time.sleep(3600)


def test_the_analysis_pool_stops_its_workers_when_the_parent_swallows_sigterm():
    """A fork inherits the parent's SIGTERM handler; terminate() must still end the backtest's workers.

    A process whose handler only notes the signal (a command's graceful stop) once left a worker
    running for ever under terminate(), and the run waiting for it in join(). An alarm turns such a
    hang into a failure (a guard, not a speed limit).
    """
    noted = []
    previous_term = signal.signal(signal.SIGTERM, lambda *_: noted.append(True))
    previous_alarm = signal.signal(signal.SIGALRM, _hung)
    _STARTED.clear()
    pool = analysis_pool(1)
    worker, = pool._pool
    signal.alarm(120)
    try:
        pool.apply_async(_busy_until_stopped)
        assert _STARTED.wait(60)
        pool.terminate()
        pool.join()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGTERM, previous_term)
        if worker.exitcode is None:     # failed: end it, or the interpreter's exit would wait for it too
            os.kill(worker.pid, signal.SIGKILL)

    assert worker.exitcode == -signal.SIGTERM
    assert noted == []      # the signal went to the worker, not to this process
