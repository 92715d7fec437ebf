"""Benchmark the decision and every risk gate per bar, as the backtest path runs them.

Usage: .venv/bin/python bench/decision_gates.py [--bars 100000] [--warmup 600]

Bars: real BTCUSDT 1m recordings of MARKET_DATA_DIR chained into one gap-free series
(`bench/features.py: year_of_minutes`). The features are computed vectorised once (ATR 14, ATR
percentile 200, structure pivot 3, momentum 12); each bar's `MarketSnapshot` is built from them
just before the bar is timed (the feature cost is `bench/features.py`'s).

Timed per bar (perf_counter_ns; mean and p99 in microseconds; the whole bar also in process CPU
time, which a busy shared machine does not inflate):
1. decide: `decisions.engine.rules.decide` on the bar's snapshot;
2. gates: a `RiskState` for the bar (the account template of the day with the bar's equity mark
   and ATR percentile), `evaluate_gates` (all 18 gates) + `check_costs_vs_target` + `combine`;
3. sizing: `size_position` times the combined size factor, on bars with a LONG/SHORT signal.
The gates run on every bar, FLAT ones included (the journal records them), with the signal's side
or LONG. The account templates rotate through calm, busy (10 trades today, 3 losses in a row,
2 open positions, 8 recent orders) and tripped-breaker days, so block paths and their "paused
until" texts are costed too.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analytics.features.momentum import MOMENTUM_STATES, momentum_series  # noqa: E402
from analytics.features.structure import HIGH_LABELS, LOW_LABELS, TREND_NAMES, structure_series  # noqa: E402
from analytics.features.volatility import atr, atr_percentile  # noqa: E402
from analytics.snapshot import Bars, MarketSnapshot  # noqa: E402
from bench.features import year_of_minutes  # noqa: E402
from decisions.engine.rules import RuleParams, decide  # noqa: E402
from decisions.risk.gates import check_costs_vs_target  # noqa: E402
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState  # noqa: E402
from decisions.risk.sizing import SizingInput, round_to_step, size_position  # noqa: E402
from decisions.risk.wall import combine, day_bounds, evaluate_gates  # noqa: E402

TARGET_US = 200.0
HOUR_MS = 3_600_000


class Features:
    """The vectorised features of every bar; `snapshot(i)` turns bar i into a MarketSnapshot."""

    def __init__(self, bars: Bars):
        self.bars = bars
        self.atr = atr(bars.high, bars.low, bars.close, 14)
        self.percentile = atr_percentile(self.atr, 200)
        self.structure = structure_series(bars.high, bars.low, bars.close, 3)
        self.momentum = momentum_series(bars.close, bars.high, bars.low, bars.volume, self.atr, 12)

    def snapshot(self, i: int) -> MarketSnapshot:
        bars, st, mom = self.bars, self.structure, self.momentum
        close, atr_now = float(bars.close[i]), float(self.atr[i])
        labels = tuple(x for x in (HIGH_LABELS[int(st.high_label[i])], LOW_LABELS[int(st.low_label[i])]) if x)
        return MarketSnapshot(
            as_of_ms=int(bars.open_time_ms[i]) + bars.timeframe_ms, close=close, atr=atr_now,
            atr_fraction=atr_now / close, trend=TREND_NAMES[int(st.trend[i])], structure_labels=labels,
            last_swing_high=float(st.last_high[i]), last_swing_low=float(st.last_low[i]),
            break_of_structure="", momentum=MOMENTUM_STATES[int(mom.state_code[i])],
            roc_atr=float(mom.roc_atr[i]), range_expansion=float(mom.range_expansion[i]),
            volume_ratio=float(mom.volume_ratio[i]), extra={"atr_percentile": float(self.percentile[i])})


def day_templates(day_start_ms: int) -> list[RiskState]:
    """Return the account states a day rotates through: calm, busy and a tripped breaker."""
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
    return [calm, busy, tripped]


def run(features: Features, warmup: int, limits: RiskLimits) -> dict[str, np.ndarray]:
    """Return ns per bar for decide, the gates and sizing after `warmup` bars, and the signal counts."""
    n = len(features.bars) - warmup
    timings = {part: np.zeros(n, np.int64) for part in ("decide", "gates", "sizing", "cpu")}
    params, clock, cpu_clock = RuleParams(), time.perf_counter_ns, time.process_time_ns
    fee, slip, cost_share = Decimal("0.0004"), Decimal("1"), Decimal("0.25")
    day_end, templates, allowed, signals = -1, [], 0, 0
    for i in range(n):
        snap = features.snapshot(warmup + i)   # built here, not timed: the backtest has it from its States
        if snap.as_of_ms >= day_end:   # a new local day: the simulated account's day (not timed)
            day_start, day_end = day_bounds(snap.as_of_ms, limits)
            templates = day_templates(day_start)
        c0 = cpu_clock()
        t0 = clock()
        signal = decide(snap, params)
        t1 = clock()
        side = "LONG" if signal.action == "FLAT" else signal.action
        state = replace(templates[i % 3], equity_now=Decimal(9950 + i % 100),
                        atr_percentile=snap.extra["atr_percentile"])
        results = evaluate_gates(state, limits, snap.as_of_ms, side, "BTCUSDT")
        if signal.action != "FLAT":
            results.append(check_costs_vs_target(signal.entry_price, signal.target_price, fee, slip, cost_share))
        verdict = combine(results)
        t2 = clock()
        if signal.action != "FLAT":
            quantity = size_position(SizingInput(state.equity_now, Decimal("0.005"), signal.entry_price,
                                                 signal.stop_price, Decimal("0.00001"), Decimal("5")))
            quantity = round_to_step(quantity * Decimal(repr(verdict.size_factor)), Decimal("0.00001"))
            allowed += verdict.allowed and quantity > 0
            signals += 1
        t3 = clock()
        timings["cpu"][i] = cpu_clock() - c0
        timings["decide"][i], timings["gates"][i], timings["sizing"][i] = t1 - t0, t2 - t1, t3 - t2
    timings["counts"] = np.array([signals, allowed])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=600, help="bars before the first timed one (ATR pct 200)")
    parser.add_argument("--no-gc", action="store_true", help="disable the garbage collector while timing")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    features = Features(year_of_minutes(args.bars + args.warmup))
    print(f"{args.bars + args.warmup:,} real BTCUSDT 1m bars and their features "
          f"in {time.perf_counter() - started:.1f} s")
    if args.no_gc:
        gc.disable()
    timings = run(features, args.warmup, RiskLimits())
    gc.enable()
    total = timings["decide"] + timings["gates"] + timings["sizing"]
    signals, allowed = (int(x) for x in timings["counts"])
    print(f"{len(total):,} bars timed, {signals:,} LONG/SHORT signals, {allowed:,} entries allowed by the gates")
    for part in ("decide", "gates", "sizing"):
        values = timings[part]
        print(f"  {part:<8} {values.mean() / 1e3:8.2f} us mean, {np.percentile(values, 99) / 1e3:8.2f} us p99")
    mean_us, p99_us = total.mean() / 1e3, np.percentile(total, 99) / 1e3
    print(f"  {'per bar':<8} {mean_us:8.2f} us mean, {p99_us:8.2f} us p99 (target {TARGET_US:.0f} us: "
          f"{'met' if p99_us < TARGET_US else 'mean ' + ('met' if mean_us < TARGET_US else 'missed')})")
    # CPU time of the process: what a shared machine's preemption does not inflate.
    cpu = timings["cpu"]
    print(f"  {'per bar':<8} {cpu.mean() / 1e3:8.2f} us mean, {np.percentile(cpu, 99) / 1e3:8.2f} us p99 "
          f"of process CPU time (the same three parts and two clock reads)")


if __name__ == "__main__":
    main()
