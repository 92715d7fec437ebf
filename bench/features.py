"""Benchmark the feature library: one year of 1m bars, vectorised and bar by bar.

Usage: .venv/bin/python bench/features.py [--bars 525600] [--live-bars 50000] [--warmup 2000] [--repeat 3]

The year is built from the real BTCUSDT 1m recordings of MARKET_DATA_DIR (spot and USD-M, in
date order). Each file is scaled so its first open continues the previous file's last close, the
files are repeated until there are enough minutes, and the result is re-timed into one gap-free
minute series from 2024-01-01 00:00 UTC.

Vectorised: each feature's whole-history function over the year, best of `--repeat` runs, and the sum.
Live: every feature's State fed bar by bar; after `--warmup` bars, the cost of one new bar
through all States (the multi-timeframe State includes the 15m..1w views) is timed for
`--live-bars` bars (mean and p99, microseconds). Flow: build_flow per evaluation.

To add a feature, append a `Feature` to FEATURES: a name, the vectorised call on `Bars`, and a
factory returning a step function that takes one bar (`Bar`) and returns that bar's value.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analytics.features import fvg, indicators, momentum, mtf, sessions, structure, volatility  # noqa: E402
from analytics.snapshot import Bars  # noqa: E402

YEAR_BARS = 525_600
MINUTE_MS = 60_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
TARGET_VECTORISED_S = 5.0      # every feature, both helpers' halves
TARGET_LIVE_US = 2_000.0       # per new bar, every feature and every view 15m..1w


class Bar(NamedTuple):
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class Feature:
    name: str
    vectorised: Callable[[Bars], Any]
    live: Callable[[int], Callable[[Bar], Any]]     # bar length in ms -> step(bar) -> value


def _live(factory: Callable[[int], Any], *fields: str) -> Callable[[int], Callable[[Bar], Any]]:
    """Return a live factory: a fresh State (factory(bar_ms)) fed the named fields of each bar."""
    def make(bar_ms: int) -> Callable[[Bar], Any]:
        update, get = factory(bar_ms).update, attrgetter(*fields)
        return (lambda b: update(get(b))) if len(fields) == 1 else (lambda b: update(*get(b)))
    return make


def _after_atr(factory: Callable[[], Any], *fields: str) -> Callable[[int], Callable[[Bar], Any]]:
    """Return a live factory feeding the bar's fields and a fresh ATR(14) into a State."""
    def make(bar_ms: int) -> Callable[[Bar], Any]:
        atr_update, update = volatility.AtrState(14).update, factory().update
        if not fields:
            return lambda b: update(atr_update(b.high, b.low, b.close))
        get = attrgetter(*fields)
        return lambda b: update(*get(b), atr_update(b.high, b.low, b.close))
    return make


def _atr(bars: Bars):
    return volatility.atr(bars.high, bars.low, bars.close, 14)


FEATURES: list[Feature] = [
    Feature("ema(20)", lambda b: indicators.ema(b.close, 20), _live(lambda ms: indicators.EmaState(20), "close")),
    Feature("rsi(14)", lambda b: indicators.rsi(b.close, 14), _live(lambda ms: indicators.RsiState(14), "close")),
    Feature("macd(12,26,9)", lambda b: indicators.macd(b.close), _live(lambda ms: indicators.MacdState(), "close")),
    Feature("bollinger(20,2)", lambda b: indicators.bollinger(b.close),
            _live(lambda ms: indicators.BollingerState(), "close")),
    Feature("volume_zscore(20)", lambda b: indicators.volume_zscore(b.volume),
            _live(lambda ms: indicators.VolumeZScoreState(), "volume")),
    Feature("atr(14)", _atr, _live(lambda ms: volatility.AtrState(14), "high", "low", "close")),
    Feature("atr_percentile(500) incl. atr(14)", lambda b: volatility.atr_percentile(_atr(b), 500),
            _after_atr(lambda: volatility.AtrPercentileState(500))),
    Feature("realised_volatility(30)", lambda b: volatility.realised_volatility(b.close, 30, b.timeframe_ms),
            _live(lambda ms: volatility.RealisedVolatilityState(30, ms), "close")),
    Feature("momentum(12) incl. atr(14)",
            lambda b: momentum.momentum_series(b.close, b.high, b.low, b.volume, _atr(b)),
            _after_atr(lambda: momentum.MomentumState(12), "close", "high", "low", "volume")),
    Feature("sessions", lambda b: sessions.sessions(b.open_time_ms, b.high, b.low),
            _live(lambda ms: sessions.SessionsState(), "open_time_ms", "high", "low")),
    Feature("structure(pivot 3)", lambda b: structure.structure_series(b.high, b.low, b.close, 3),
            _live(lambda ms: structure.StructureState(3), "high", "low", "close")),
    Feature("fvg(atr 14, cap 50)", lambda b: fvg.fvg_series(b.high, b.low, b.close),
            _live(lambda ms: fvg.FvgState(), "high", "low", "close")),
    # The multi-timeframe view builds 15m, 1h, 4h, 1d and 1w bars from the 1m bars and runs
    # structure on each: its live cost is the "15m..1w views" part of the per-bar target.
    Feature("mtf view 15m..1w (aggregation + structure)",
            lambda b: mtf.mtf_series(b.open_time_ms, b.open, b.high, b.low, b.close, b.volume),
            _live(lambda ms: mtf.MtfState(), "open_time_ms", "open", "high", "low", "close", "volume")),
]


def market_data_dir() -> Path:
    return Path(os.environ.get("MARKET_DATA_DIR", REPO.parent / "shared" / "data" / "market"))


def year_of_minutes(rows: int) -> Bars:
    """Return `rows` real BTCUSDT 1m bars chained into one continuous, gap-free minute series."""
    paths = sorted(market_data_dir().glob("binance_*_BTCUSDT_1m_*.csv.gz"), key=lambda p: p.name.split("_")[4])
    frames = [pd.read_csv(p, usecols=["open", "high", "low", "close", "volume"]) for p in paths]
    if not frames:
        sys.exit(f"no BTCUSDT 1m files in {market_data_dir()}")
    chained, total, last_close = [], 0, None
    while total < rows:
        for frame in frames:
            # Scale the file so it opens where the previous one closed: no jump at the seam.
            scale = 1.0 if last_close is None else last_close / float(frame["open"].iloc[0])
            prices = frame[["open", "high", "low", "close"]].to_numpy(float) * scale
            chained.append(np.column_stack([prices, frame["volume"].to_numpy(float)]))
            last_close, total = prices[-1, 3], total + len(frame)
    values = np.concatenate(chained)[:rows]
    open_time = START_MS + np.arange(rows, dtype=np.int64) * MINUTE_MS
    return Bars(open_time, *(np.ascontiguousarray(values[:, k]) for k in range(5)), MINUTE_MS)


def bench_vectorised(bars: Bars, repeat: int) -> dict[str, float]:
    """Return the best of `repeat` runs, in seconds, per feature over the whole history."""
    seconds = dict.fromkeys((f.name for f in FEATURES), float("inf"))
    for _ in range(repeat):
        for feature in FEATURES:
            started = time.perf_counter()
            feature.vectorised(bars)
            seconds[feature.name] = min(seconds[feature.name], time.perf_counter() - started)
    return seconds


def bench_live(bars: Bars, warmup: int, count: int) -> tuple[np.ndarray, dict[str, float]]:
    """Return ns per bar through all States, and mean microseconds per feature."""
    steps = [feature.live(bars.timeframe_ms) for feature in FEATURES]
    columns = (bars.open_time_ms.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
               bars.close.tolist(), bars.volume.tolist())
    rows = [Bar(*values) for values in zip(*(c[:warmup + count] for c in columns))]
    for bar in rows[:warmup]:
        for step in steps:
            step(bar)
    per_bar = np.empty(count, np.int64)
    per_feature = np.zeros(len(steps), np.int64)
    clock = time.perf_counter_ns
    for i, bar in enumerate(rows[warmup:]):
        started = clock()
        for k, step in enumerate(steps):
            before = clock()
            step(bar)
            per_feature[k] += clock() - before
        per_bar[i] = clock() - started
    return per_bar, {f.name: per_feature[k] / count / 1e3 for k, f in enumerate(FEATURES)}


def flow_inputs_year():
    """Return FlowInputs at the end of the real BTCUSDT funding year, with OI, candles and manual inputs."""
    from datetime import date, timedelta

    from analytics.flow import types as t

    funding = pd.read_csv(market_data_dir() / "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz")
    oi = pd.read_csv(market_data_dir() / "binance_usdm_BTCUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz")
    as_of = int(funding["funding_time_ms"].iloc[-1]) + 1
    # The OI recording is from another period: shift it to end at as_of (its shape is what costs).
    shift = as_of - int(oi["timestamp_ms"].iloc[-1])
    hour = 3_600_000
    return t.FlowInputs(
        as_of_ms=as_of,
        funding=tuple(t.FundingPoint(int(ts), float(r)) for ts, r in zip(funding["funding_time_ms"], funding["funding_rate"])),
        open_interest=tuple(t.OpenInterestPoint(int(ts) + shift, float(v), float(u)) for ts, v, u in
                            zip(oi["timestamp_ms"], oi["open_interest"], oi["open_interest_value"])),
        candles=tuple(t.CandlePoint(as_of - (48 - i) * hour, as_of - (47 - i) * hour, 100_000.0 + i, 10.0, 5.5)
                      for i in range(48)),
        etf_flows=tuple(t.EtfFlowPoint(date(2025, 5, 1) + timedelta(days=d), fund, 1e7 * (d % 3 - 1), as_of - hour)
                        for d in range(28) for fund in ("IBIT", "FBTC")),
        liquidation_zones=tuple(t.LiquidationZonePoint("long" if k % 2 else "short", 95_000.0 + 1_000 * k,
                                                       95_500.0 + 1_000 * k, 1e8, as_of - hour) for k in range(10)),
        sentiment=(t.SentimentPoint(0.3, "desk", as_of - 2 * hour),),
        price=100_000.0,
    )


def bench_flow(repeat: int) -> float:
    """Return milliseconds per build_flow call on a year of funding and the other inputs."""
    from analytics.flow import build_flow

    inputs = flow_inputs_year()
    best = float("inf")
    for _ in range(max(repeat, 1) * 20):
        started = time.perf_counter()
        build_flow(inputs)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=YEAR_BARS)
    parser.add_argument("--live-bars", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3, help="vectorised runs; the best counts (shared machines)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    started = time.perf_counter()
    bars = year_of_minutes(args.bars)
    print(f"built {len(bars):,} 1m bars in {time.perf_counter() - started:.1f} s")

    seconds = bench_vectorised(bars, args.repeat)
    print(f"\nvectorised, whole history (best of {args.repeat}):")
    for name, s in seconds.items():
        print(f"  {name:<36} {s * 1e3:8.1f} ms")
    total = sum(seconds.values())
    print(f"  {'total':<36} {total * 1e3:8.1f} ms (target for all features {TARGET_VECTORISED_S:.0f} s)")

    per_bar, per_feature = bench_live(bars, args.warmup, args.live_bars)
    print(f"\nlive, one new bar through every State ({args.live_bars:,} bars after {args.warmup:,} warm-up):")
    for name, us in per_feature.items():
        print(f"  {name:<36} {us:8.2f} us mean")
    mean_us, p99_us = per_bar.mean() / 1e3, np.percentile(per_bar, 99) / 1e3
    print(f"  {'every feature incl. the mtf view':<36} {mean_us:8.2f} us mean, {p99_us:.2f} us p99 "
          f"(target {TARGET_LIVE_US:.0f} us)")
    flow_ms = bench_flow(args.repeat)
    print(f"\nflow view (build_flow) on a year of 8h funding, 4h open interest, 28 ETF days, 10 zones: "
          f"{flow_ms:.2f} ms per evaluation (best of {args.repeat})")


if __name__ == "__main__":
    main()
