"""The market analysis of a decision bar: its snapshot and its flow, which read the market and nothing else.

`analysis` is what `decisions.services.decision_run` builds before the packet (`build_snapshot` over
the window and its context, `flow_run`'s `build_flow`, stored and read back through JSON). It
depends on the candles and funding rates only, never on the account, so the bars that need it
(every bar the quiet-bar search leaves to the full pipeline) can be analysed ahead of the run on
several processes (`analyses_ahead`); the run then takes each bar's analysis when it reaches it.
The functions and inputs are the same, so are the results.
"""
from __future__ import annotations

import json
import multiprocessing
import signal
from dataclasses import asdict, dataclass

import numpy as np

from analytics.flow import DEFAULT_PARAMS, build_flow
from analytics.flow.types import _json_safe
from analytics.services import without_gappy_series
from analytics.snapshot import Bars, MarketSnapshot, build_snapshot
from execution.backtest.state import Run, SymbolRun
from market.timeframes import timeframe_ms

FLOW_CONTEXT = ("derivatives", "etf", "liquidations", "sentiment")     # analytics.flow.types.FlowResult.parts_json
CHUNK_BARS = 16


@dataclass(frozen=True, slots=True)
class FlowRow:
    """The fields of a stored analytics.models.Flow the decision reads, after the JSON round trip."""

    crowd_bias: float
    trap_index: float
    global_risk_score: float
    warnings: list
    parts: dict


def flow_row(run: Run, sym: SymbolRun, as_of_ms: int) -> FlowRow:
    """Return the flow as of the decision's bar, as the stored Flow row reads back."""
    config = run.config
    inputs = sym.market.flow_inputs(asset=sym.spec.base, as_of_ms=as_of_ms, params=DEFAULT_PARAMS,
                                    candle_timeframe=config.decision_timeframe)
    gap_warnings = []
    if not config.allow_data_gaps:
        inputs, gap_warnings = without_gappy_series(inputs, timeframe_ms(config.decision_timeframe))
    flow = build_flow(inputs, DEFAULT_PARAMS, None)
    # Through JSON as the stored row's fields are, so the rule reads the same lists and floats. The
    # decision reads only the context of the stored parts (FlowResult.parts_json builds it this way);
    # the explained outputs' parts are for the journal.
    context = {name: _json_safe(asdict(getattr(flow, name))) for name in FLOW_CONTEXT}
    warnings, parts = json.loads(json.dumps([*flow.warnings_json(), *gap_warnings])), json.loads(
        json.dumps({"context": context}))
    return FlowRow(flow.crowd_bias.value, flow.trap_index.value, flow.global_risk.value, warnings, parts)


def analysis(run: Run, sym: SymbolRun, now_ms: int, bars: Bars) -> tuple[MarketSnapshot, FlowRow]:
    """Return the snapshot of the window `bars` closed by `now_ms` and the flow as of its last close."""
    context = sym.market.context_load(timeframe=run.config.decision_timeframe, now_ms=now_ms,
                                      structure_timeframes=run.structure_timeframes)
    snapshot = build_snapshot(bars, run.snapshot_params, context)
    return snapshot, flow_row(run, sym, int(bars.open_time_ms[-1]) + bars.timeframe_ms)


def full_bars(run: Run, sym: SymbolRun, closes: range) -> list[int]:
    """Return the closes at which `sym`'s decision takes the full pipeline (see decide.decision_step)."""
    series = sym.market.candles.get(run.config.decision_timeframe)
    if series is None or not len(series.open_time_ms):
        return []
    gaps = np.concatenate(([0], np.cumsum(np.diff(series.open_time_ms) != series.step_ms)))
    out = []
    for now_ms in closes:
        end = series.closed_until(now_ms)
        start = max(0, end - run.config.history_bars)
        if end - start < run.min_bars or int(series.open_time_ms[end - 1]) + series.step_ms != now_ms:
            continue
        if not run.config.allow_data_gaps and gaps[end - 1] != gaps[start]:
            continue                    # a window with a gap is refused before any analysis
        if sym.quiet is None or not run.skip_quiet_bars or sym.quiet.reason(end) is None:
            out.append(now_ms)
    return out


_AHEAD: Run | None = None        # the run, inherited by the forked workers


def analysis_pool(workers: int):
    """Return a pool of `workers` forked processes (they inherit the run's candles) that terminate() stops."""
    return multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start)


def _worker_start() -> None:
    """Give a forked worker the default SIGTERM: the pool's terminate() stops its workers with it.

    A fork inherits the parent's handlers; one that does not exit (a command's graceful-stop flag)
    would leave an idle worker waiting for work for ever, and the run waiting for it in __exit__.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _analyse(keys: list[tuple[int, int]]) -> list:
    out = []
    for index, now_ms in keys:
        sym = _AHEAD.symbols[index]
        bars = sym.market.bars_load(timeframe=_AHEAD.config.decision_timeframe, now_ms=now_ms,
                                    count=_AHEAD.config.history_bars)
        out.append(((sym.spec.exchange_symbol, now_ms), analysis(_AHEAD, sym, now_ms, bars)))
    return out


class AnalysesAhead:
    """The full-pipeline bars' analyses, made on `workers` forked processes while the run goes on.

    The bars are handed out in the run's order (close, then symbol), so `take` rarely waits: by the
    time the run reaches a bar the workers have usually analysed it.
    """

    def __init__(self, run: Run, closes: range, workers: int):
        keys = sorted(((now_ms, i) for i, sym in enumerate(run.symbols) for now_ms in full_bars(run, sym, closes)))
        self.expected = {(run.symbols[i].spec.exchange_symbol, now_ms) for now_ms, i in keys}
        self.ready: dict = {}
        self.run, self.workers = run, workers
        self.chunks = [[(i, now_ms) for now_ms, i in keys[k:k + CHUNK_BARS]] for k in range(0, len(keys), CHUNK_BARS)]
        self.pool = self.results = None

    def __enter__(self) -> AnalysesAhead:
        global _AHEAD
        _AHEAD = self.run
        # Fork: the workers inherit the candles instead of receiving them.
        self.pool = analysis_pool(self.workers)
        self.results = self.pool.imap(_analyse, self.chunks)
        return self

    def __exit__(self, *exc) -> None:
        global _AHEAD
        self.pool.terminate()
        self.pool.join()
        _AHEAD = None

    def take(self, key: tuple[str, int]):
        """Return the (snapshot, flow) of `key`, waiting for the workers if needed; None if it was not planned."""
        if key not in self.expected:
            return None
        while key not in self.ready:
            self.ready.update(next(self.results))
        self.expected.discard(key)
        return self.ready.pop(key)
