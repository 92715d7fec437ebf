"""Stored backtests: candles from the database through the live pipeline in memory, results kept as a run.

`backtest_start` loads each instrument's stored candles (every stored timeframe, with the warm-up each
read of the cycle needs), its funding rates, its mark-price klines and the stored gate overrides, runs
`engine.backtest_run` with the trading configuration in force (or one given) on one account for all the
instruments, and stores a `BacktestRun` with the parameters, the symbols, the data range, the code version, the
closed trades (entry, exit, reason, fees, funding, R multiple), the equity at every bar close and
the metrics (`metrics.summarize`, with a per-symbol breakdown). Progress is written to the run as
it goes, so a page or a command can follow it.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from analytics.selectors import MAX_RESAMPLE_SOURCE_BARS
from decisions.audit_services import git_commit
from decisions.models import GateOverride
from decisions.selectors import trading_config_get
from execution.backtest.engine import ApprovalPolicy, BacktestResult, backtest_run
from execution.backtest.metrics import Trade, summarize
from execution.backtest.state import GateOverrideSpec
from execution.backtest.world import (STRUCTURE_SOURCE_MAX_BARS, Candles, FundingRates, InstrumentSpec, MarkPrices,
                                      SymbolData)
from execution.models import BacktestRun
from market.models import Candle, DerivativesKind, DerivativesSample, Instrument
from market.timeframes import timeframe_ms

PROGRESS_EVERY_BARS = 50      # how often the stored run's progress is written
FUNDING_MARGIN = timedelta(hours=8)   # a settlement just outside the run is still booked by the paper venue
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base")
# Reads the run's data: (instruments, config, start, end) -> (SymbolData per instrument, extra parameters).
Loader = Callable[[list[Instrument], object, datetime, datetime], tuple[list[SymbolData], dict]]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def candles_load(*, instrument: Instrument, timeframe: str, since: datetime, until: datetime) -> Candles | None:
    """Return the stored candles of `timeframe` opened in [since, until), or None when there are none."""
    rows = list(Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__gte=since,
                                      open_time__lt=until).order_by("open_time")
                .values_list("open_time", *CANDLE_COLUMNS))
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["open_time", *CANDLE_COLUMNS])
    frame["open_time_ms"] = [_ms(t) for t in frame.pop("open_time")]
    return Candles.from_frame(timeframe, frame)


def lookback_bars(timeframe: str, config) -> int:
    """Return how many bars of `timeframe` before the start every read of the cycle needs.

    The window, a thin view resampled from the decision timeframe, structure bars resampled from
    1m, the views, the flow's candles (the backtest, the CSV source and the drift replay read these).
    """
    wanted = [config.history_bars, 101]
    if timeframe == config.decision_timeframe:
        wanted.append(MAX_RESAMPLE_SOURCE_BARS)
    if timeframe == "1m":
        wanted.append(STRUCTURE_SOURCE_MAX_BARS)
    return max(wanted) + 2


def symbol_load(*, instrument: Instrument, config, start: datetime, end: datetime) -> SymbolData:
    """Return every stored timeframe of `instrument` closed by `end` with its warm-up, and its funding rates."""
    candles = {}
    for timeframe in sorted(set(Candle.objects.filter(instrument=instrument).values_list("timeframe", flat=True)),
                            key=timeframe_ms):
        step = timedelta(milliseconds=timeframe_ms(timeframe))
        loaded = candles_load(instrument=instrument, timeframe=timeframe,
                              since=start - step * lookback_bars(timeframe, config), until=end)
        if loaded is not None:
            candles[timeframe] = loaded
    return SymbolData(InstrumentSpec.of(instrument), candles, funding_load(instrument=instrument, start=start, end=end),
                      marks_load(instrument=instrument, since=start - FUNDING_MARGIN, until=end + FUNDING_MARGIN))


def funding_load(*, instrument: Instrument, start: datetime, end: datetime) -> FundingRates | None:
    """Return the stored funding settlements a run from `start` to `end` could meet, or None.

    FUNDING_MARGIN either side: a settlement just outside the run is still booked by the paper venue.
    """
    rows = list(DerivativesSample.objects.filter(
        instrument=instrument, kind=DerivativesKind.FUNDING, funding_rate__isnull=False,
        ts__gte=start - FUNDING_MARGIN, ts__lte=end + FUNDING_MARGIN).order_by("ts")
        .values_list("ts", "funding_rate", "mark_price"))
    if not rows:
        return None
    return FundingRates.of([_ms(t) for t, _, _ in rows], [r for _, r, _ in rows], [m for _, _, m in rows])


def marks_load(*, instrument: Instrument, since: datetime, until: datetime) -> MarkPrices | None:
    """Return the stored mark-price klines of `instrument` stamped in [since, until], or None when there are none."""
    marks = [(_ms(t), period, mark) for t, period, mark in DerivativesSample.objects.filter(
        instrument=instrument, kind=DerivativesKind.MARK_INDEX, mark_price__isnull=False,
        ts__gte=since, ts__lte=until).values_list("ts", "period", "mark_price")]
    return MarkPrices.of(marks) if marks else None


def overrides_load(*, since: datetime, until: datetime) -> list[GateOverrideSpec]:
    """Return the stored gate overrides that held at some moment of [since, until], with their history."""
    rows = GateOverride.objects.filter(created_at__lte=until, until__gt=since).order_by("created_at", "pk")
    return [GateOverrideSpec(o.gate, _ms(o.created_at), _ms(o.until), o.created_by, o.reason,
                             _ms(o.revoked_at) if o.revoked_at else None) for o in rows]


def closed_trades(result: BacktestResult, symbol: str | None = None) -> list[Trade]:
    """Return the run's closed positions as metrics trades; the risk is the decision's stop distance.

    `symbol` is only a fallback for positions that carry none.
    """
    stops = {(d.symbol, _ms(d.as_of)): d.stop_price for d in result.decisions}
    trades = []
    for p in result.trades:
        if p.status != "closed":
            continue
        stop = stops.get((p.symbol, p.decision_as_of_ms))
        trades.append(Trade(p.symbol or symbol or "", p.side, p.opened_ms, p.closed_ms, p.entry_price, p.exit_price,
                            p.initial_quantity, p.fees_usdt, p.funding_usdt, p.realized_pnl_usdt,
                            abs(p.entry_price - stop) * p.initial_quantity if stop is not None else None,
                            p.exit_reason))
    return trades


def _trade_row(trade: Trade) -> dict:
    r = trade.r_multiple
    return {"symbol": trade.symbol, "side": trade.side, "entry_ms": trade.entry_ms, "exit_ms": trade.exit_ms,
            "entry_price": str(trade.entry_price), "exit_price": str(trade.exit_price),
            "quantity": str(trade.quantity), "fees_usdt": str(trade.fees_usdt),
            "funding_usdt": str(trade.funding_usdt), "pnl_usdt": str(trade.pnl_usdt),
            "r_multiple": None if r is None else round(float(r), 4), "exit_reason": trade.exit_reason}


def _parameters(config) -> dict:
    # JSON text of every configuration value (decimals, times), as the start-up card stores them.
    return json.loads(json.dumps(model_to_dict(config), cls=DjangoJSONEncoder))


def _instruments(instrument, instruments) -> list[Instrument]:
    listed = list(instruments or []) or ([instrument] if instrument is not None else [])
    if not listed:
        raise ValueError("name at least one instrument to backtest")
    symbols = [i.exchange_symbol for i in listed]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise ValueError(f"instrument listed twice: {', '.join(twice)}")
    return listed


def _check_history(data: Sequence[SymbolData], config, timeframe: str, start: datetime, end: datetime) -> None:
    step = timedelta(milliseconds=timeframe_ms(timeframe))
    since = start - step * (config.history_bars + 1)
    for item in data:
        series = item.candles.get(timeframe)
        have = 0 if series is None else int(((series.open_time_ms >= _ms(since)) &
                                             (series.open_time_ms < _ms(end))).sum())
        if have < config.history_bars:
            raise ValueError(f"{item.instrument.exchange_symbol} {timeframe}: {have} stored candles from "
                             f"{since:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}, need {config.history_bars} before "
                             f"the start for the warm-up")


def backtest_start(*, timeframe: str, start: datetime, end: datetime, starting_equity: Decimal,
                   instrument: Instrument | None = None, instruments: Sequence[Instrument] | None = None,
                   progress: Callable[[int, int], None] | None = None, run: BacktestRun | None = None,
                   config=None, approvals: ApprovalPolicy | None = None, workers: int = 1,
                   loader: Loader | None = None) -> BacktestRun:
    """Run the live pipeline over the stored candles from `start` to `end` (bar closes, UTC) and store the run.

    One `instrument`, or several `instruments` traded on one account with shared risk limits.
    `config` is a TradingConfig to run with (default: a copy of the one in force; it is not saved);
    its decision timeframe becomes `timeframe`. `run` is an existing QUEUED (or RUNNING, claimed by
    a worker) row to fill instead of a new one. `progress(done, total)` is called after each bar
    close. `workers` > 1 analyses on that many forked processes (engine.backtest_run). `loader` reads
    the symbols' data elsewhere than the database (csv_source): `loader(instruments, config, start, end)`
    returns (SymbolData per instrument, what to add to the stored parameters). Raises ValueError,
    before anything is written, when the input is bad or the range holds too few candles for the
    warm-up. A failure during the run is stored on the run (status failed, with the error) and raised.
    """
    if end <= start:
        raise ValueError(f"end {end:%Y-%m-%d %H:%M} is not after start {start:%Y-%m-%d %H:%M}")
    if run is not None and run.status not in (BacktestRun.Status.QUEUED, BacktestRun.Status.RUNNING):
        raise ValueError(f"backtest {run.pk} is {run.status}: only a queued or running row is filled")
    listed = _instruments(instrument, instruments)
    config = copy.copy(config if config is not None else trading_config_get())     # read only
    config.decision_timeframe = timeframe
    data, source = (loader or _stored)(listed, config, start, end)
    _check_history(data, config, timeframe, start, end)
    overrides = overrides_load(since=start, until=end)
    step = timedelta(milliseconds=timeframe_ms(timeframe))
    run = _run_begin(run, listed, config, timeframe, start, end, starting_equity, int((end - start) / step) + 1,
                     source)

    def advance(done: int, of: int) -> None:
        if done % PROGRESS_EVERY_BARS == 0 or done == of:
            BacktestRun.objects.filter(pk=run.pk).update(bars_done=done)
        if progress is not None:
            progress(done, of)

    try:
        result = backtest_run(symbols=data, config=config, starting_equity=starting_equity, start=start, end=end,
                              approvals=approvals, overrides=overrides, workers=workers, progress=advance)
    except Exception as exc:
        BacktestRun.objects.filter(pk=run.pk).update(status=BacktestRun.Status.FAILED, error=repr(exc)[:2000],
                                                     finished_at=timezone.now())
        raise
    return _store(run, result, data[0].candles[timeframe], start, end, starting_equity)


def _stored(listed: list[Instrument], config, start: datetime, end: datetime) -> tuple[list[SymbolData], dict]:
    """Return every instrument's stored candles, funding and mark klines (the default loader), no extra parameters."""
    return [symbol_load(instrument=i, config=config, start=start, end=end) for i in listed], {}


def _run_begin(run: BacktestRun | None, listed: list[Instrument], config, timeframe: str, start: datetime,
               end: datetime, starting_equity: Decimal, total: int, source: dict | None = None) -> BacktestRun:
    """Create the run's row, or fill the given one, with what is about to run (status running)."""
    fields = dict(instrument=listed[0], symbols=[i.exchange_symbol for i in listed], timeframe=timeframe,
                  start=start, end=end, starting_equity_usdt=starting_equity,
                  parameters={**_parameters(config), **(source or {})},
                  code_version=git_commit()[:64], bars_total=total, bars_done=0, status=BacktestRun.Status.RUNNING)
    if run is None:
        return BacktestRun.objects.create(created_at=timezone.now(), **fields)
    with transaction.atomic():
        for name, value in fields.items():
            setattr(run, name, value)
        run.save(update_fields=list(fields))
    return run


def _store(run: BacktestRun, result: BacktestResult, series: Candles, start: datetime, end: datetime,
           starting_equity: Decimal) -> BacktestRun:
    trades = closed_trades(result, run.instrument.exchange_symbol)
    ts = [_ms(e.ts) for e in result.equity]
    equity = [e.equity_usdt for e in result.equity]
    # Buy and hold of the first symbol, from the close before the first decision to the last one.
    closes = [Decimal(repr(float(c))) for t, c in zip(series.open_time_ms, series.close)
              if _ms(start) <= t + series.step_ms <= _ms(end)]
    metrics = summarize(trades, ts, equity, start_ms=_ms(start) - series.step_ms, end_ms=_ms(end),
                        starting_equity=starting_equity, benchmark_prices=closes or None)
    run.trades = [_trade_row(t) for t in trades]
    run.equity = [[t, str(e)] for t, e in zip(ts, equity)]
    run.metrics = metrics.as_dict()
    run.final_equity_usdt = equity[-1] if equity else starting_equity
    run.status, run.bars_done, run.finished_at = BacktestRun.Status.DONE, run.bars_total, timezone.now()
    run.save()
    return run
