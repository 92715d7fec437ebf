"""The backtester: the live cycle's steps over the in-memory world, on a simulated clock, for one or more symbols.

Each bar close of the decision timeframe is one cycle in the order of `execution.engine.cycle_run`, for
every symbol in instrument order on one account: the resting limit entries (fills from the bars, the
chase), the open position's exits on the bars since the last check (`ladder_step`, filled by the
paper broker, funding settled at 00/08/16 UTC bars), then the decision (`decide.decision_step`:
snapshot, flow, packet, `decide_bar` with every gate on the combined account, sizing, routing, the
entry); after the symbols, the funding still due and the equity point. Only the reads differ: the
world (`execution.backtest.world`) answers them from candle and funding arrays and the ledger
(`execution.backtest.ledger`) from the simulated account.

What the live path has and this does not: order books (spread gate), derivatives other than funding
rates and mark-price klines (which trigger stops under MARK_PRICE and mark funding, as in the paper
venue), ETF flows, liquidation zones and sentiment uploads (the flow sees candles only) and the
venue's own resting exits (paper simulates exits bar by bar, as here).
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal

from analytics.snapshot import min_bars
from decisions.params import packet_params, snapshot_params
from execution.backtest.analysis import AnalysesAhead, FlowRow
from execution.backtest.decide import ApprovalPolicy, decision_step
from execution.backtest.exits import exits_check, funding_apply
from execution.backtest.entries import entries_work
from execution.backtest.ledger import Ledger, SimPosition
from execution.backtest.quiet import QuietBars, QuietParams
from execution.backtest.records import (BacktestResult, DecisionRecord, EquityRecord, FillRecord, FundingRecord,
                                        OrderRecord)
from execution.backtest.state import GateOverrideSpec, Run, SymbolRun, dt, ms_of
from execution.backtest.world import Candles, FundingRates, InstrumentSpec, Market, SymbolData

__all__ = ["ApprovalPolicy", "BacktestResult", "DecisionRecord", "EquityRecord", "FillRecord", "FlowRow",
           "FundingRecord", "GateOverrideSpec", "OrderRecord", "SimPosition", "backtest_run"]

logger = logging.getLogger(__name__)
UNREALIZED_PLACES = Decimal("0.00000001")     # execution.services.equity_record


def backtest_run(*, config, starting_equity: Decimal, start: datetime, end: datetime | None = None,
                 symbols: Sequence[SymbolData] | None = None, candles: dict[str, Candles] | None = None,
                 instrument: InstrumentSpec | None = None, funding: FundingRates | None = None,
                 account_name: str = "paper", first_position_id: int = 1,
                 approvals: ApprovalPolicy | None = None, overrides: Sequence[GateOverrideSpec] = (),
                 skip_quiet_bars: bool = True, workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Return the decisions, orders, fills, funding, trades and equity of the live cycle run at every bar close.

    `symbols` lists each instrument's data (`SymbolData`); one symbol may instead be given as
    `candles` + `instrument` (+ `funding`). Each symbol's candles map timeframes to arrays; the
    decision timeframe's must be there, finer ones (1m) make the exits finer as in the live path.
    The clock stops at each close of the decision timeframe from `start` to `end` (default: the
    last bar's close of any symbol), aware UTC. `config` is a TradingConfig (only read).
    `account_name` and `first_position_id` give the intent ids the live account would (entries hash
    the account name, exits the position id). `approvals` answers HYBRID decisions (default: reject
    them all); `overrides` are stored gate overrides. `skip_quiet_bars` takes the short way on bars
    where the rule is FLAT without a snapshot (same records; see execution.backtest.quiet).
    `workers` > 1 analyses the other bars (snapshot and flow: market data only) on that many forked
    processes while the run goes on (same records; a daemonic process, such as a django-q2 worker,
    cannot fork and analyses in turn).
    `progress(done, total)` is called after each bar close.
    """
    if symbols is None:
        if candles is None or instrument is None:
            raise ValueError("give `symbols`, or `candles` and `instrument` for one symbol")
        symbols = [SymbolData(instrument, candles, funding)]
    if not symbols:
        raise ValueError("no symbol to backtest")
    run = _run_new(config, symbols, starting_equity, account_name, first_position_id,
                   approvals or ApprovalPolicy(), tuple(overrides), skip_quiet_bars)
    series = [c for c in (s.market.candles.get(config.decision_timeframe) for s in run.symbols)
              if c is not None and len(c.open_time_ms)]
    if not series:
        raise ValueError(f"no {config.decision_timeframe} candles to decide on")
    step = series[0].step_ms
    last = ms_of(end) if end is not None else max(int(c.open_time_ms[-1]) + step for c in series)
    closes = range(ms_of(start), last + 1, step)
    if workers > 1 and multiprocessing.current_process().daemon:
        logger.warning("backtest in a daemonic process cannot fork workers: analysing every bar in turn")
        workers = 1
    if workers > 1 and threading.current_thread() is not threading.main_thread():
        # A fork copies the locks other threads hold at that instant, held, into a child that has
        # none of those threads to release them: a worker can hang for ever. Only the main thread forks.
        logger.info("backtest outside the main thread does not fork workers: analysing every bar in turn")
        workers = 1
    with AnalysesAhead(run, closes, workers) if workers > 1 else nullcontext() as ahead:
        run.analyses = ahead
        for done, now_ms in enumerate(closes, 1):
            _cycle(run, now_ms)
            if progress is not None:
                progress(done, len(closes))
    run.analyses = None
    return BacktestResult(tuple(run.decisions), tuple(o.record() for o in run.orders), tuple(run.fills),
                          tuple(run.ledger.positions), tuple(run.equity), tuple(run.funding),
                          tuple(s.spec.exchange_symbol for s in run.symbols))


def _quiet(config, data: SymbolData, names: list[str], rules) -> QuietBars | None:
    """Return the symbol's quiet bars when the rule strategy decides alone, else None."""
    series = data.candles.get(config.decision_timeframe)
    if names != ["rules"] or series is None or not len(series.open_time_ms):
        return None
    params = QuietParams(config.history_bars, config.atr_period, config.momentum_period, config.pivot_length,
                         min_bars(snapshot_params(config)), tuple(rules.structure_timeframes))
    views = {tf: data.candles[tf] for tf in params.structure_timeframes if tf in data.candles}
    return QuietBars(series.open_time_ms, series.high, series.low, series.close, params,
                     {tf: (c.open_time_ms, c.high, c.low) for tf, c in views.items()}, series.step_ms,
                     {tf: c.step_ms for tf, c in views.items()})


def _run_new(config, symbols: Sequence[SymbolData], starting_equity: Decimal, account_name: str,
             first_position_id: int, approvals: ApprovalPolicy, overrides: tuple, skip_quiet_bars: bool) -> Run:
    names = [d.instrument.exchange_symbol for d in symbols]
    if len(set(names)) != len(names):
        raise ValueError(f"symbol listed twice: {', '.join(sorted(n for n in set(names) if names.count(n) > 1))}")
    packet = packet_params(config)
    strategy_names = [s.name for s in packet.strategies]
    ordered = sorted(symbols, key=lambda d: d.instrument.instrument_id)    # the live cycle's instrument order
    runs = [SymbolRun(d.instrument, Market(d.candles, d.funding, d.marks),
                      _quiet(config, d, strategy_names, packet.rules) if skip_quiet_bars else None)
            for d in ordered]
    run = Run(config, runs, Ledger(starting_equity, starting_equity), account_name, first_position_id, approvals,
              overrides, skip_quiet_bars)
    run.packet_params, run.snapshot_params = packet, snapshot_params(config)
    run.min_bars = min_bars(run.snapshot_params)
    run.structure_timeframes = tuple(config.structure_timeframe_list())
    return run


def _cycle(run: Run, now_ms: int) -> None:
    # As the live cycle: per symbol the resting entries, the exits, then the decision sized from the
    # balance after them; then the funding the bars did not reach, then the equity point.
    _breaker_lift(run, now_ms)
    run.account_balance_seen = run.ledger.balance_usdt
    for sym in run.symbols:
        entries_work(run, sym, now_ms)
        exits_check(run, sym, now_ms)
        run.account_balance_seen = run.ledger.balance_usdt
        decision_step(run, sym, now_ms)
    funding_apply(run, now_ms)
    _equity(run, now_ms)
    run.last_now_ms = now_ms


def _breaker_lift(run: Run, now_ms: int) -> None:
    """Lift the circuit breaker as an override of daily_loss does when it is created (decisions.overrides)."""
    since = run.last_now_ms if run.last_now_ms is not None else now_ms - 1
    for override in run.overrides:
        if override.gate == "daily_loss" and since < override.created_ms <= now_ms:
            if run.safe_until_ms is not None and run.safe_until_ms > override.created_ms:
                run.safe_until_ms = None


def _equity(run: Run, now_ms: int) -> None:
    ledger = run.ledger
    unrealized = ledger.unrealized_pnl(run.marks(now_ms)).quantize(UNREALIZED_PLACES)
    point = EquityRecord(dt(now_ms), ledger.balance_usdt, unrealized, ledger.balance_usdt + unrealized)
    ledger.equity_add(now_ms, point.equity_usdt)
    run.equity.append(point)
