"""Stored backtests: candles from the database through the live pipeline in memory, results kept as a run.

`backtest_start` loads the instrument's stored candles (the decision timeframe with its warm-up, and
1m bars for finer exits when stored), runs `engine.backtest_run` with the trading configuration in
force, and stores a `BacktestRun` with the parameters, the data range, the code version, the closed
trades (entry, exit, reason, fees, funding, R multiple), the equity at every bar close and the
metrics (`metrics.summarize`). Progress is written to the run as it goes, so a page or a command
can follow it.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
from django.core.serializers.json import DjangoJSONEncoder
from django.forms.models import model_to_dict
from django.utils import timezone

from decisions.audit_services import git_commit
from decisions.selectors import trading_config_get
from execution.backtest.engine import BacktestResult, backtest_run
from execution.backtest.metrics import Trade, summarize
from execution.backtest.world import Candles, InstrumentSpec
from execution.models import BacktestRun
from market.models import Candle, Instrument
from market.timeframes import timeframe_ms

PROGRESS_EVERY_BARS = 50      # how often the stored run's progress is written


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def candles_load(*, instrument: Instrument, timeframe: str, since: datetime, until: datetime) -> Candles | None:
    """Return the stored candles of `timeframe` opened in [since, until), or None when there are none."""
    rows = list(Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__gte=since,
                                      open_time__lt=until).order_by("open_time")
                .values_list("open_time", "open", "high", "low", "close", "volume"))
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    frame["open_time_ms"] = [_ms(t) for t in frame.pop("open_time")]
    return Candles.from_frame(timeframe, frame)


def closed_trades(result: BacktestResult, symbol: str) -> list[Trade]:
    """Return the run's closed positions as metrics trades; the risk is the decision's stop distance."""
    stops = {_ms(d.as_of): d.stop_price for d in result.decisions}
    trades = []
    for p in result.trades:
        if p.status != "closed":
            continue
        stop = stops.get(p.decision_as_of_ms)
        trades.append(Trade(symbol, p.side, p.opened_ms, p.closed_ms, p.entry_price, p.exit_price,
                            p.initial_quantity, p.fees_usdt, Decimal(0), p.realized_pnl_usdt,
                            abs(p.entry_price - stop) * p.initial_quantity if stop is not None else None,
                            p.exit_reason))
    return trades


def _trade_row(trade: Trade) -> dict:
    r = trade.r_multiple
    return {"side": trade.side, "entry_ms": trade.entry_ms, "exit_ms": trade.exit_ms,
            "entry_price": str(trade.entry_price), "exit_price": str(trade.exit_price),
            "quantity": str(trade.quantity), "fees_usdt": str(trade.fees_usdt),
            "funding_usdt": str(trade.funding_usdt), "pnl_usdt": str(trade.pnl_usdt),
            "r_multiple": None if r is None else round(float(r), 4), "exit_reason": trade.exit_reason}


def _parameters(config) -> dict:
    # JSON text of every configuration value (decimals, times), as the start-up card stores them.
    return json.loads(json.dumps(model_to_dict(config), cls=DjangoJSONEncoder))


def backtest_start(*, instrument: Instrument, timeframe: str, start: datetime, end: datetime,
                   starting_equity: Decimal, progress: Callable[[int, int], None] | None = None) -> BacktestRun:
    """Run the live pipeline over the stored candles from `start` to `end` (bar closes, UTC) and store the run.

    Raises ValueError, before anything is stored, when the range holds no candles or too few for the
    warm-up. A failure during the run is stored on the run (status failed, with the error) and raised.
    """
    if end <= start:
        raise ValueError(f"end {end:%Y-%m-%d %H:%M} is not after start {start:%Y-%m-%d %H:%M}")
    config = copy.copy(trading_config_get())      # read only; the run may decide on another timeframe
    config.decision_timeframe = timeframe
    step = timedelta(milliseconds=timeframe_ms(timeframe))
    since = start - step * (config.history_bars + 1)
    series = candles_load(instrument=instrument, timeframe=timeframe, since=since, until=end)
    if series is None or len(series.open_time_ms) < config.history_bars:
        have = 0 if series is None else len(series.open_time_ms)
        raise ValueError(f"{instrument} {timeframe}: {have} stored candles from {since:%Y-%m-%d %H:%M} to "
                         f"{end:%Y-%m-%d %H:%M}, need {config.history_bars} before the start for the warm-up")
    candles = {timeframe: series}
    minutes = candles_load(instrument=instrument, timeframe="1m", since=since, until=end) if timeframe != "1m" else None
    if minutes is not None:
        candles["1m"] = minutes
    total = int((end - start) / step) + 1
    run = BacktestRun.objects.create(instrument=instrument, timeframe=timeframe, start=start, end=end,
                                     starting_equity_usdt=starting_equity, parameters=_parameters(config),
                                     code_version=git_commit()[:64], bars_total=total, created_at=timezone.now())

    def advance(done: int, of: int) -> None:
        if done % PROGRESS_EVERY_BARS == 0 or done == of:
            BacktestRun.objects.filter(pk=run.pk).update(bars_done=done)
        if progress is not None:
            progress(done, of)

    try:
        result = backtest_run(candles=candles, instrument=InstrumentSpec.of(instrument), config=config,
                              starting_equity=starting_equity, start=start, end=end, progress=advance)
    except Exception as exc:
        BacktestRun.objects.filter(pk=run.pk).update(status=BacktestRun.Status.FAILED, error=repr(exc)[:2000],
                                                     finished_at=timezone.now())
        raise
    return _store(run, result, series, start, end, starting_equity)


def _store(run: BacktestRun, result: BacktestResult, series: Candles, start: datetime, end: datetime,
           starting_equity: Decimal) -> BacktestRun:
    trades = closed_trades(result, run.instrument.exchange_symbol)
    ts = [_ms(e.ts) for e in result.equity]
    equity = [e.equity_usdt for e in result.equity]
    closes = [Decimal(repr(float(c))) for t, c in zip(series.open_time_ms, series.close)
              if _ms(start) <= t + series.step_ms]
    metrics = summarize(trades, ts, equity, start_ms=_ms(start) - series.step_ms, end_ms=_ms(end),
                        starting_equity=starting_equity, benchmark_prices=closes or None)
    run.trades = [_trade_row(t) for t in trades]
    run.equity = [[t, str(e)] for t, e in zip(ts, equity)]
    run.metrics = metrics.as_dict()
    run.final_equity_usdt = equity[-1] if equity else starting_equity
    run.status, run.bars_done, run.finished_at = BacktestRun.Status.DONE, run.bars_total, timezone.now()
    run.save()
    return run
