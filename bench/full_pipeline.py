"""Benchmark the full backtester: one year of 1m BTCUSDT bars through every stage of the live pipeline.

Usage: .venv/bin/python bench/full_pipeline.py [--days 365] [--warmup-days 0] [--workers 1]
           [--max-drawdown 0.5] [--no-funding] [--tracemalloc] [--profile 40]
           [--json bench/full_pipeline.json] [--label year]

Data. The year is the real BTCUSDT 1m recordings of MARKET_DATA_DIR (every spot and USD-M file, in
date order, about 451,000 minutes), chained as `bench/features.py` does: each file is scaled so its
first open continues the previous file's last close, the files repeat until the minutes are
filled, and the series is re-timed as one gap-free minute series from 2024-01-01 00:00 UTC.
`quote_volume` is scaled with the prices; `taker_buy_base` is kept where a file has it (NaN
elsewhere). The 5m, 15m, 1h, 4h, 1d and 1w candles are resampled from those minutes
(`market.resample`, complete buckets only), as `manage.py resample` would store them; the
resampling is inside the timed run. Funding: the real BTCUSDT 8-hourly rates of the
2024-07-19..2025-06-17 recording, in order, re-timed onto the 00/08/16 UTC settlements of the
year and repeated to fill it (`--no-funding`: none).

Run. `execution.backtest.engine.backtest_run` with the default trading configuration (decision
timeframe 15m, 300 bars of history, the rule strategy confirmed on 5m structure, every gate), mode
ON with the edge threshold at 0.5 (as the parity test: trades happen) and the all-time drawdown
pause at 50 % (`--max-drawdown`; the default 10 % stops this losing rule for good after about 90
days), 10,000 USDT, from the first 15m close after the warm-up (`--warmup-days` of data before the
first decision; 0: just the 300-bar history) to the last bar. Every stage runs: snapshot features,
flow, packet, the 18 gates, sizing, routing, OMS precision, the paper broker's fills, exits on the
1m bars, funding, equity. `--workers 2` analyses the full-pipeline bars on two forked processes.

Figures: wall time (perf_counter) and CPU time (this process, and the worker processes), 1m bars
per second, decision bars per second, the process's peak resident set
(`resource.getrusage(...).ru_maxrss`; of one worker too) and its growth over the level before the
run (Linux VmHWM after a reset), and with `--tracemalloc` the peak of Python allocations
(tracemalloc slows the run about 2x, so its wall time is not the figure). Results go to the JSON
file (one entry per label, kept across runs) and to stdout.
"""
from __future__ import annotations

import argparse
import cProfile
import ctypes
import json
import os
import platform
import pstats
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
os.environ.setdefault("SECRET_KEY", "bench-full-pipeline")

import django  # noqa: E402

django.setup()

from decisions.models import Mode, TradingConfig  # noqa: E402
from execution.backtest.engine import backtest_run  # noqa: E402
from execution.backtest.world import Candles, FundingRates, InstrumentSpec, SymbolData  # noqa: E402
from market.resample import resample  # noqa: E402
from market.services import KNOWN_FILTERS  # noqa: E402

MINUTE_MS = 60_000
DAY_MINUTES = 1440
START_MS = 1_704_067_200_000        # 2024-01-01 00:00 UTC
FUNDING_MS = 8 * 3_600_000
FUNDING_FILE = "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz"
VIEWS = ("5m", "15m", "1h", "4h", "1d", "1w")
YEAR_DECISION_BARS = 525_600 // 15 - 300    # 15m closes of a year after the 300-bar history
TARGET_S = 30.0
TARGET_PEAK_MIB = 1536.0


def market_data_dir() -> Path:
    return Path(os.environ.get("MARKET_DATA_DIR", REPO.parent / "shared" / "data" / "market"))


def minutes_frame(rows: int) -> pd.DataFrame:
    """Return `rows` real BTCUSDT 1m bars chained into one gap-free minute series (see the module docstring)."""
    paths = sorted(market_data_dir().glob("binance_*_BTCUSDT_1m_*.csv.gz"), key=lambda p: p.name.split("_")[4])
    if not paths:
        sys.exit(f"no BTCUSDT 1m files in {market_data_dir()}")
    columns = ["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base"]
    frames = [pd.read_csv(p, usecols=columns) for p in paths]
    chained, total, last_close = [], 0, None
    while total < rows:
        for frame in frames:
            # Scale the file so it opens where the previous one closed: no jump at the seam.
            scale = 1.0 if last_close is None else last_close / float(frame["open"].iloc[0])
            values = frame[columns].to_numpy(float)
            values[:, [0, 1, 2, 3, 5]] *= scale
            chained.append(values)
            last_close, total = values[-1, 3], total + len(frame)
    values = np.concatenate(chained)[:rows]
    out = pd.DataFrame(values, columns=columns)
    out.insert(0, "open_time_ms", START_MS + np.arange(rows, dtype=np.int64) * MINUTE_MS)
    return out


def funding_rates(first_ms: int, last_ms: int) -> FundingRates:
    """Return the real 8-hourly BTCUSDT rates re-timed onto the settlements from first_ms to last_ms."""
    rates = pd.read_csv(market_data_dir() / FUNDING_FILE)["funding_rate"].to_numpy(float)
    times = np.arange((first_ms // FUNDING_MS + 1) * FUNDING_MS, last_ms + 1, FUNDING_MS, dtype=np.int64)
    return FundingRates.of(times, np.resize(rates, len(times)).tolist())


def candles_of(minutes: pd.DataFrame) -> dict[str, Candles]:
    """Return the 1m candles and every view resampled from them."""
    out = {"1m": Candles.from_frame("1m", minutes)}
    for timeframe in VIEWS:
        out[timeframe] = Candles.from_frame(timeframe, resample(minutes, "1m", timeframe))
    return out


def btc_spec() -> InstrumentSpec:
    filters = {k: Decimal(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    row = type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT", base="BTC", **filters))
    return InstrumentSpec.of(row)


def bench_config(max_drawdown: str = "0.5") -> TradingConfig:
    config = TradingConfig()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    # The 10 % all-time drawdown pause would stop this (losing) rule for good within months; at 50 %
    # it keeps trading all year, so every stage stays busy to the end.
    config.max_drawdown_fraction = Decimal(max_drawdown)
    return config


def run_once(minutes: pd.DataFrame, warmup_days: int, workers: int = 1, max_drawdown: str = "0.5",
             funding: bool = True):
    """Resample, run the backtest from the first close after the warm-up, and return (result, first close ms)."""
    candles = candles_of(minutes)
    config = bench_config(max_drawdown)
    decision = candles[config.decision_timeframe]
    first = max(int(decision.open_time_ms[config.history_bars - 1]) + decision.step_ms,
                START_MS + warmup_days * DAY_MINUTES * MINUTE_MS)
    last_ms = int(minutes["open_time_ms"].iloc[-1]) + MINUTE_MS
    data = SymbolData(btc_spec(), candles, funding_rates(START_MS, last_ms) if funding else None)
    result = backtest_run(symbols=[data], config=config, starting_equity=Decimal("10000"),
                          start=datetime.fromtimestamp(first / 1000, tz=UTC), workers=workers)
    return result, first


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> int:
    """Return the RSS in KiB after handing freed heap back and resetting the high-water mark (Linux)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def machine() -> dict:
    """Return what the figures depend on: CPU, memory, load, versions and the date."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines() if Path("/proc/meminfo").exists() else []
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "mem_total_gib": round(total_kib / 2**20, 1),
            "load_average_1m_start": os.getloadavg()[0], "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pd.__version__,
            "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M")}


def measure(minutes: pd.DataFrame, warmup_days: int, *, trace: bool, profile: int, workers: int = 1,
            max_drawdown: str = "0.5", funding: bool = True) -> dict:
    """Return the run's figures; with `profile`, print the top functions by cumulative time instead of timing."""
    baseline_kib = _reset_peak_rss()
    if trace:
        tracemalloc.start()
    profiler = cProfile.Profile() if profile else None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result, first_ms = run_once(minutes, warmup_days, workers, max_drawdown, funding)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = {"wall_s": seconds, "cpu_s": time.process_time() - cpu_started,
               "cpu_workers_s": (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime),
               "peak_rss_worker_mib": after.ru_maxrss / 1024,
               "load_average_1m_end": os.getloadavg()[0],
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "peak_rss_growth_mib": (_status_kib("VmHWM") - baseline_kib) / 1024}
    if trace:
        figures["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
    last_ms = int(minutes["open_time_ms"].iloc[-1]) + MINUTE_MS
    bars_1m = len(minutes)
    decided = len(result.decisions)
    figures.update({
        "bars_1m": bars_1m, "bars_1m_in_run": int((last_ms - first_ms) // MINUTE_MS),
        "decision_bars": decided, "first_close_ms": first_ms, "last_close_ms": last_ms,
        "bars_1m_per_s": bars_1m / seconds, "decision_bars_per_s": decided / seconds,
        "orders": len(result.orders), "fills": len(result.fills), "positions": len(result.trades),
        "funding_payments": len(getattr(result, "funding", ())),
        "final_equity_usdt": str(result.equity[-1].equity_usdt) if result.equity else None,
    })
    return figures


def report(label: str, figures: dict) -> None:
    print(f"\n{label}: {figures['bars_1m']:,} 1m bars ({figures['decision_bars']:,} decision bars) in "
          f"{figures['wall_s']:.2f} s: {figures['bars_1m_per_s']:,.0f} 1m bars/s, "
          f"{figures['decision_bars_per_s']:,.0f} decision bars/s")
    print(f"peak RSS {figures['peak_rss_mib']:.0f} MiB (growth during the run {figures['peak_rss_growth_mib']:.0f} MiB)"
          + (f", tracemalloc peak {figures['tracemalloc_peak_mib']:.0f} MiB" if "tracemalloc_peak_mib" in figures
             else ""))
    print(f"{figures['orders']} orders, {figures['fills']} fills, {figures['positions']} positions, "
          f"{figures['funding_payments']} funding payments, final equity {figures['final_equity_usdt']}")
    print(f"CPU time {figures['cpu_s']:.2f} s (+ {figures['cpu_workers_s']:.2f} s in worker processes, peak RSS of "
          f"one {figures['peak_rss_worker_mib']:.0f} MiB); load average {figures['load_average_1m_end']:.1f} "
          "at the end")
    if figures["decision_bars"] and figures["bars_1m"] < 525_600:
        per_bar = figures["cpu_s"] / figures["decision_bars"]
        print(f"per decision bar {per_bar * 1e3:.2f} ms CPU: a year ({YEAR_DECISION_BARS:,} decision bars) "
              f"would take about {per_bar * YEAR_DECISION_BARS:.0f} s (target {TARGET_S:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of 1m bars in the data (default a year)")
    parser.add_argument("--warmup-days", type=int, default=0,
                        help="days of data before the first decision (0: only the configured history)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that analyse the full-pipeline bars ahead (backtest_run workers)")
    parser.add_argument("--max-drawdown", default="0.5",
                        help="the all-time drawdown pause (configuration max_drawdown_fraction); default 0.5")
    parser.add_argument("--no-funding", action="store_true", help="run without the funding rates")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--profile", type=int, default=0, help="print this many functions of a cProfile run")
    parser.add_argument("--label", default=None, help="name of this run in the JSON file (default: <days>d)")
    parser.add_argument("--json", default=str(REPO / "bench" / "full_pipeline.json"))
    args = parser.parse_args()
    minutes = minutes_frame(args.days * DAY_MINUTES)
    before = machine()                  # the load average as the run starts
    figures = measure(minutes, args.warmup_days, trace=args.tracemalloc, profile=args.profile, workers=args.workers,
                      max_drawdown=args.max_drawdown, funding=not args.no_funding)
    label = args.label or f"{args.days}d"
    report(label, figures)
    if args.profile:
        return
    path = Path(args.json)
    stored = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    stored["runs"][label] = {"days": args.days, "warmup_days": args.warmup_days, "workers": args.workers,
                             "max_drawdown_fraction": args.max_drawdown, "funding": not args.no_funding,
                             "machine": before, **figures}
    path.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
