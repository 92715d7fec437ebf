"""Benchmark the whole decision packet and every risk gate per bar, as the backtest path runs them.

Usage: .venv/bin/python bench/decision_gates.py [--bars 100000] [--warmup 600]
           [--strategies rules,ema_cross,rsi,bollinger,atr_breakout] [--aggregation weighted]
           [--no-gc] [--profile 5000]

Bars: real BTCUSDT 1m recordings of MARKET_DATA_DIR chained into one gap-free series
(`bench/features.py: year_of_minutes`). The snapshot features are computed vectorised once (ATR 14,
ATR percentile 200, structure pivot 3, momentum 12, fair-value gaps `fvg_series`, multi-timeframe
view `mtf_series`); each bar's `MarketSnapshot` is built from them just before the bar, untimed (the
feature cost is `bench/features.py`'s). `extra` carries atr_percentile, fvg_below/fvg_above,
mtf_state/mtf_score; no "obi": 1m candles have no order book, so the edge leaves it out and
renormalises the other weights, as it does live without a depth snapshot.

One-off, timed separately: `Strategy.votes(bars)` of every configured strategy over the whole
history (causal), plus turning the arrays into Python lists the per-bar loop indexes.

Timed per bar (perf_counter_ns; mean and p99 in microseconds; the whole bar also in process CPU
time, which a busy shared machine does not inflate):
1. decide: the rule signal, `decide(snapshot, params.rules, flow)`;
2. votes: a `Vote` per configured strategy from the precomputed side/strength at bar i. Its reason
   is the strategy's name only: the backtest does not need the live path's sentence (the
   aggregation reason and the rationale are still built from it inside `packet_from_votes`). A
   strategy without a side on the bar gets its one shared no-side Vote (frozen, so equal to a new
   one): most bars have no side, and a new Vote costs about 1 us of validation;
3. packet: `packet_from_votes` (aggregation, flow filters, levels, edge, fusion, calibrated
   probability, risk level, entry zone);
4. gates: the packet's levels on the tick grid (`decisions.pipeline.signal_on_tick_grid`), a
   `RiskState` for the bar, `evaluate_gates` (all 18 gates), then `check_rr_min` and
   `check_costs_vs_target` on LONG/SHORT, and `combine`;
5. sizing: `size_detail` with the shrink factor on the risk, margin in use, the margin cap, open
   positions and their cap and the tick size (`decisions.pipeline.sizing_for`, as live), on
   LONG/SHORT bars.
The gates run on every bar, FLAT ones included (the journal records them), with the packet's side
or LONG. The account templates rotate through calm, busy (10 trades today, 3 losses in a row,
2 open positions, 8 recent orders) and tripped-breaker days. The packet's `Context` changes every
hour (seeded): a `FlowView` with typical funding, open interest, liquidation magnet, ETF flows and
global risk, crowd bias and trap index, news/whale/onchain readings, a `Calibrator` fitted on 100
synthetic (confidence, won) pairs and tick size 0.1; building it is the flow's cost, not timed here.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import sys
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analytics.features.fvg import fvg_series  # noqa: E402
from analytics.features.momentum import MOMENTUM_STATES, momentum_series  # noqa: E402
from analytics.features.mtf import mtf_series  # noqa: E402
from analytics.features.structure import HIGH_LABELS, LOW_LABELS, TREND_NAMES, structure_series  # noqa: E402
from analytics.features.volatility import atr, atr_percentile  # noqa: E402
from analytics.snapshot import Bars, MarketSnapshot  # noqa: E402
from bench.features import year_of_minutes  # noqa: E402
from decisions.engine.calibration import Calibrator  # noqa: E402
from decisions.engine.packet import Context, Packet, PacketParams, packet_from_votes  # noqa: E402
from decisions.engine.rules import FlowView, Signal, decide  # noqa: E402
from decisions.engine.strategies import Vote, strategies_from_names  # noqa: E402
from decisions import pipeline  # noqa: E402
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState  # noqa: E402
from decisions.risk.sizing import SizeResult  # noqa: E402
from decisions.risk.wall import Verdict, combine, day_bounds  # noqa: E402

TARGET_US = 200.0
HOUR_MS = 3_600_000
ALL_STRATEGIES = "rules,ema_cross,rsi,bollinger,atr_breakout"
PARTS = ("decide", "votes", "packet", "gates", "sizing")
OUTCOMES = ("no side", "flow refused", "edge refused", "traded")
GAP_STATES = {1: "fresh", 2: "partially filled"}
MTF_STATES = {1: "agree", 0: "neither", -1: "conflict"}
# The admin defaults of TradingConfig and a BTCUSDT perpetual's venue filters.
TICK, STEP, MIN_NOTIONAL_USDT = Decimal("0.1"), Decimal("0.001"), Decimal("100")
RISK_FRACTION, MAX_LEVERAGE, MAX_MARGIN_FRACTION = Decimal("0.005"), Decimal("3"), Decimal("0.5")
RR_MIN, FEE_FRACTION, SLIPPAGE_BPS, COST_SHARE = Decimal("1.3"), Decimal("0.0004"), Decimal("1"), Decimal("0.25")
TRADE = pipeline.TradeLimits(RR_MIN, FEE_FRACTION, SLIPPAGE_BPS, COST_SHARE, RISK_FRACTION, MAX_LEVERAGE,
                             MAX_MARGIN_FRACTION, max_open_positions=3, configured_mode="ON", paused=False,
                             auto_approve_confidence=0.8)
MARKET = pipeline.MarketRules("BTCUSDT", TICK, STEP, MIN_NOTIONAL_USDT)


class Features:
    """The vectorised features of every bar; `snapshot(i)` turns bar i into a MarketSnapshot."""

    def __init__(self, bars: Bars):
        self.bars = bars
        self.atr = atr(bars.high, bars.low, bars.close, 14)
        self.percentile = atr_percentile(self.atr, 200)
        self.structure = structure_series(bars.high, bars.low, bars.close, 3)
        self.momentum = momentum_series(bars.close, bars.high, bars.low, bars.volume, self.atr, 12)
        self.fvg = fvg_series(bars.high, bars.low, bars.close, 14)
        self.mtf = mtf_series(bars.open_time_ms, bars.open, bars.high, bars.low, bars.close, bars.volume)

    def _gap(self, side: str, i: int) -> dict | None:
        g = self.fvg
        state = int(getattr(g, f"{side}_state")[i])
        if state == 0:
            return None
        return {"bottom": float(getattr(g, f"{side}_bottom")[i]), "top": float(getattr(g, f"{side}_top")[i]),
                "size_atr": float(getattr(g, f"{side}_size_atr")[i]), "age_bars": int(getattr(g, f"{side}_age")[i]),
                "state": GAP_STATES[state]}

    def snapshot(self, i: int) -> MarketSnapshot:
        bars, st, mom = self.bars, self.structure, self.momentum
        close, atr_now = float(bars.close[i]), float(self.atr[i])
        labels = tuple(x for x in (HIGH_LABELS[int(st.high_label[i])], LOW_LABELS[int(st.low_label[i])]) if x)
        extra = {"atr_percentile": float(self.percentile[i]), "fvg_below": self._gap("below", i),
                 "fvg_above": self._gap("above", i), "mtf_state": MTF_STATES[int(self.mtf.state[i])],
                 "mtf_score": float(self.mtf.score[i])}
        return MarketSnapshot(
            as_of_ms=int(bars.open_time_ms[i]) + bars.timeframe_ms, close=close, atr=atr_now,
            atr_fraction=atr_now / close, trend=TREND_NAMES[int(st.trend[i])], structure_labels=labels,
            last_swing_high=float(st.last_high[i]), last_swing_low=float(st.last_low[i]),
            break_of_structure="", momentum=MOMENTUM_STATES[int(mom.state_code[i])],
            roc_atr=float(mom.roc_atr[i]), range_expansion=float(mom.range_expansion[i]),
            volume_ratio=float(mom.volume_ratio[i]), extra=extra)


def vote_columns(params: PacketParams, bars: Bars) -> tuple[list[tuple[str, list, list, Vote]], float]:
    """Return (name, sides, strengths, its no-side vote) of every strategy over the history, and the seconds."""
    started = time.perf_counter()
    columns = []
    for strategy in params.strategies:
        side, strength = strategy.votes(bars)
        # Python lists: indexing one is several times cheaper than a numpy scalar plus int()/float().
        columns.append((strategy.name, side.tolist(), strength.tolist(), Vote(strategy.name, 0, 0.0, strategy.name)))
    return columns, time.perf_counter() - started


def contexts(hours: int, seed: int = 7) -> list[Context]:
    """Return one packet context per hour: typical flow, crowd, sentiment, a fitted calibrator, tick 0.1."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.3, 0.95, 100)
    won = rng.random(100) < 0.1 + 0.8 * confidence
    calibrator = Calibrator.fit(list(zip(confidence.tolist(), won.tolist())), min_trades=30)
    out = []
    for _ in range(hours):
        flow = FlowView(funding_rate=float(rng.normal(1e-4, 1.5e-4)), oi_change_4h_pct=float(rng.normal(0.5, 1.0)),
                        liquidation_magnet=str(rng.choice(["", "", "", "above", "below"])),
                        etf_5d_usd=float(rng.normal(5e7, 2e8)), global_risk=float(rng.uniform(15, 65)),
                        warnings=("oi_spike",) if rng.random() < 0.02 else ())
        news, whale, onchain = rng.uniform(-0.6, 0.6, 3).tolist()
        out.append(Context(flow, crowd_bias=float(rng.uniform(-0.5, 0.5)), trap_index=float(rng.uniform(0, 0.6)),
                           news=news, whale=whale, onchain=onchain, calibrator=calibrator, tick_size=TICK))
    return out


def day_templates(day_start_ms: int) -> list[tuple[RiskState, Decimal]]:
    """Return the account states a day rotates through (calm, busy, tripped) with their margin in use."""
    equity = Decimal("10000")
    calm = RiskState(equity, equity, equity, Decimal("10400"), spread_bps=0.5, volume_24h_usdt=Decimal("2e9"),
                     correlations={"ETHUSDT": 0.86, "SOLUSDT": 0.78})
    trades = tuple(ClosedTrade("BTCUSDT", "LONG", Decimal("-12.5") if k >= 7 else Decimal("20"),
                               "stop" if k >= 7 else "target", day_start_ms + k * HOUR_MS,
                               day_start_ms + k * HOUR_MS + 1_800_000) for k in range(10))
    busy = replace(calm, day_low_equity=Decimal("9900"), closed_trades=trades,
                   open_positions=(OpenPosition("ETHUSDT", "LONG", day_start_ms + 11 * HOUR_MS),
                                   OpenPosition("SOLUSDT", "SHORT", day_start_ms + 11 * HOUR_MS)),
                   recent_orders=tuple(RecentOrder(day_start_ms + 11 * HOUR_MS + k * 20_000, Decimal("3000"))
                                       for k in range(8)),
                   last_trade_ms=day_start_ms + 11 * HOUR_MS, last_hard_news_ms=day_start_ms + 9 * HOUR_MS)
    tripped = replace(busy, day_low_equity=Decimal("9790"))
    # Two open positions of 3,000 USDT notional at 3x leverage hold 2,000 USDT of margin.
    return [(calm, Decimal(0)), (busy, Decimal("2000")), (tripped, Decimal("2000"))]


def on_tick_grid(signal: Signal) -> Signal:
    """Return the signal with its levels on the tick grid: the live cycle's own step (decisions.pipeline)."""
    return pipeline.signal_on_tick_grid(signal, TICK)


@dataclass
class Setup:
    features: Features
    columns: list[tuple[str, list, list, Vote]]
    params: PacketParams
    contexts: list[Context]
    limits: RiskLimits


def outcome(packet: Packet) -> str:
    """Return where the packet ended: no side, refused by the flow or the edge, or LONG/SHORT."""
    if packet.signal.action != "FLAT":
        return "traded"
    if packet.aggregate.side == 0:
        return "no side"
    return "flow refused" if packet.edge is None else "edge refused"


def run(setup: Setup, warmup: int, bars: int | None = None) -> dict:
    """Return ns per bar of each part after `warmup` bars, process CPU ns per bar, and the outcomes."""
    f, params, limits = setup.features, setup.params, setup.limits
    n = (len(f.bars) - warmup) if bars is None else bars
    timings = {part: np.zeros(n, np.int64) for part in (*PARTS, "cpu")}
    outcomes = np.zeros(n, np.int8)     # index into OUTCOMES
    clock, cpu_clock, rules = time.perf_counter_ns, time.process_time_ns, params.rules
    first_hour = int(f.bars.open_time_ms[warmup]) // HOUR_MS
    day_end, templates, allowed, sized_nonzero = -1, [], 0, 0
    for k in range(n):
        i = warmup + k
        snap = f.snapshot(i)   # built here, not timed: the backtest has it from its feature arrays
        if snap.as_of_ms >= day_end:   # a new local day: the simulated account's day (not timed)
            day_start, day_end = day_bounds(snap.as_of_ms, limits)
            templates = day_templates(day_start)
        ctx = setup.contexts[(snap.as_of_ms - 1) // HOUR_MS - first_hour]
        template, margin_usdt = templates[k % 3]
        c0 = cpu_clock()
        t0 = clock()
        rule_signal = decide(snap, rules, ctx.flow)
        t1 = clock()
        votes = tuple([Vote(name, s, strength[i], name) if (s := side[i]) else idle
                       for name, side, strength, idle in setup.columns])
        t2 = clock()
        packet = packet_from_votes(votes, snap, ctx, params, rule_signal)
        t3 = clock()
        trade = packet.signal.action != "FLAT"
        signal = on_tick_grid(packet.signal) if trade else packet.signal
        state = replace(template, equity_now=Decimal(9950 + k % 100), atr_percentile=snap.extra["atr_percentile"])
        verdict = gate_verdict(signal, state, snap.as_of_ms, limits)
        t4 = clock()
        sized = size(signal, state, margin_usdt, verdict.size_factor, limits) if trade else None
        t5 = clock()
        timings["cpu"][k] = cpu_clock() - c0
        for part, start, end in zip(PARTS, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            timings[part][k] = end - start
        outcomes[k] = OUTCOMES.index(outcome(packet))
        if sized is not None and sized.quantity > 0:
            sized_nonzero += 1
            allowed += verdict.allowed
    timings["outcomes"] = outcomes
    timings["sized"], timings["allowed"] = sized_nonzero, allowed
    return timings


def gate_verdict(signal: Signal, state: RiskState, now_ms: int, limits: RiskLimits) -> Verdict:
    """Return the combined verdict of the 18 gates, plus reward/risk and costs on LONG/SHORT (decisions.pipeline)."""
    return combine(pipeline.gates_for(signal, state, limits, TRADE, MARKET, now_ms, {}))


def size(signal: Signal, state: RiskState, margin_usdt: Decimal, size_factor: float,
         limits: RiskLimits) -> SizeResult:
    """Return the size under every cap, the shrink factor scaling the risk (decisions.pipeline, as live)."""
    account = pipeline.AccountFacts(state.equity_now, margin_usdt, len(state.open_positions))
    return pipeline.sizing_for(signal, replace(TRADE, max_open_positions=limits.max_open_positions), MARKET, account,
                               size_factor)


def report(timings: dict, one_off_s: float, warmup: int) -> None:
    """Print mean and p99 per part, the whole bar against the target, and the one-off vote cost."""
    total = sum(timings[part] for part in PARTS)
    bars = len(total)
    print(f"{bars:,} bars timed; {timings['sized']:,} LONG/SHORT sized above 0, "
          f"{timings['allowed']:,} of them allowed by the gates")
    for code, name in enumerate(OUTCOMES):
        chosen = total[timings["outcomes"] == code]
        if len(chosen):
            print(f"  {name:<13} {len(chosen):7,} bars, whole bar {chosen.mean() / 1e3:8.2f} us mean, "
                  f"{np.percentile(chosen, 99) / 1e3:8.2f} us p99")
    for part in PARTS:
        values = timings[part]
        print(f"  {part:<8} {values.mean() / 1e3:8.2f} us mean, {np.percentile(values, 99) / 1e3:8.2f} us p99")
    mean_us, p99_us = total.mean() / 1e3, np.percentile(total, 99) / 1e3
    verdict = "met" if p99_us < TARGET_US else "mean " + ("met" if mean_us < TARGET_US else "missed")
    print(f"  {'per bar':<8} {mean_us:8.2f} us mean, {p99_us:8.2f} us p99 (target {TARGET_US:.0f} us: {verdict})")
    # CPU time of the process: what a shared machine's preemption does not inflate.
    cpu = timings["cpu"]
    print(f"  {'per bar':<8} {cpu.mean() / 1e3:8.2f} us mean, {np.percentile(cpu, 99) / 1e3:8.2f} us p99 "
          f"of process CPU time (the five parts and six clock reads)")
    # What a backtest that journals no gates on FLAT bars would spend: the gates of traded bars only.
    traded = timings["outcomes"] == OUTCOMES.index("traded")
    lean_us = (total - timings["gates"]).mean() / 1e3 + timings["gates"][traded].sum() / bars / 1e3
    print(f"  {'per bar':<8} {lean_us:8.2f} us mean if the gates ran on LONG/SHORT bars only")
    print(f"  one-off: Strategy.votes over {bars + warmup:,} bars {one_off_s * 1e3:.0f} ms "
          f"= {one_off_s * 1e6 / bars:.2f} us per timed bar amortised")


def profile(setup: Setup, warmup: int, bars: int) -> None:
    """Print the top of a cProfile of `bars` bars, by own time and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(run, setup, warmup, bars)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=600, help="bars before the first timed one (ATR pct 200)")
    parser.add_argument("--strategies", default=ALL_STRATEGIES, help="comma-separated registry names, in order")
    parser.add_argument("--aggregation", default="weighted", choices=("first", "vote", "weighted"))
    parser.add_argument("--no-gc", action="store_true", help="disable the garbage collector while timing")
    parser.add_argument("--profile", type=int, default=0, metavar="BARS", help="cProfile this many bars instead")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs; "
          f"strategies {args.strategies}, aggregation {args.aggregation}")
    started = time.perf_counter()
    features = Features(year_of_minutes(args.bars + args.warmup))
    print(f"{args.bars + args.warmup:,} real BTCUSDT 1m bars and their features "
          f"in {time.perf_counter() - started:.1f} s")
    params = PacketParams(strategies=strategies_from_names(args.strategies), aggregation=args.aggregation)
    columns, one_off_s = vote_columns(params, features.bars)
    hours = len(features.bars) // 60 + 2
    setup = Setup(features, columns, params, contexts(hours), RiskLimits())
    if args.profile:
        profile(setup, args.warmup, args.profile)
        return
    if args.no_gc:
        gc.disable()
    timings = run(setup, args.warmup)
    gc.enable()
    report(timings, one_off_s, args.warmup)


if __name__ == "__main__":
    main()
