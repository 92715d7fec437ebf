"""Benchmark structure, fair-value gaps and the multi-timeframe view on one year of 1m bars.

Usage: .venv/bin/python bench/features_structure.py [--bars 525600]

The year is built from the real BTCUSDT 1m files of MARKET_DATA_DIR (spot and USD-M, in file
order, repeated if needed): each file is scaled so its first open equals the previous file's last
close, so the chain has no price jumps, and the bars are re-timed into one gap-free minute series
from Monday 2024-01-01 00:00 UTC. Then:

1. whole-history (vectorised) paths: `structure_series` (1m, pivot 3), `fvg_series` (1m) and
   `mtf_series` (15m..1w bars built and analysed), best of 3 runs each;
2. live paths, one bar at a time over the whole year: `MtfState`, `StructureState`, `FvgState`;
   per-bar microseconds (mean, p99, max) for each and for the three together.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analytics.features.fvg import FvgState, fvg_series  # noqa: E402
from analytics.features.mtf import MtfState, mtf_series  # noqa: E402
from analytics.features.structure import StructureState, structure_series  # noqa: E402
from market.csvformat import parse_candles  # noqa: E402

START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
YEAR_BARS = 525_600
COLUMNS = ("open", "high", "low", "close", "volume")


def year_of_minutes(bars: int) -> dict[str, np.ndarray]:
    """Return `bars` chained, re-timed real 1m BTCUSDT bars as float64 arrays plus open_time_ms."""
    data_dir = Path(os.environ.get("MARKET_DATA_DIR", REPO.parent / "shared" / "data" / "market"))
    files = sorted(data_dir.glob("binance_*_BTCUSDT_1m_*.csv.gz"))
    chunks, total, last_close = [], 0, None
    while total < bars:
        for path in files:
            numbers = parse_candles(path.read_bytes(), path.name, "1m").numbers
            scale = 1.0 if last_close is None else last_close / numbers["open"].iat[0]
            chunk = {c: numbers[c].to_numpy(np.float64) * (scale if c != "volume" else 1.0) for c in COLUMNS}
            last_close = chunk["close"][-1]
            chunks.append(chunk)
            total += len(chunk["close"])
            if total >= bars:
                break
    out = {c: np.concatenate([chunk[c] for chunk in chunks])[:bars] for c in COLUMNS}
    out["open_time_ms"] = START_MS + np.arange(bars, dtype=np.int64) * 60_000
    out["files"] = len(files)
    return out


def best_of(runs: int, call) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_vectorised(bars: dict) -> dict[str, float]:
    high, low, close = bars["high"], bars["low"], bars["close"]
    arrays = [bars[c] for c in ("open_time_ms", *COLUMNS)]
    return {
        "structure_series (1m, pivot 3)": best_of(3, lambda: structure_series(high, low, close, 3)),
        "fvg_series (1m, ATR 14, cap 50)": best_of(3, lambda: fvg_series(high, low, close)),
        "mtf_series (15m..1w, pivot 3)": best_of(3, lambda: mtf_series(*arrays)),
    }


def bench_incremental(bars: dict) -> dict[str, np.ndarray]:
    mtf, structure, gaps = MtfState(), StructureState(3), FvgState()
    n = len(bars["close"])
    spent = {name: np.empty(n, np.int64) for name in ("MtfState", "StructureState", "FvgState")}
    clock = time.perf_counter_ns
    rows = zip(*(bars[c].tolist() for c in ("open_time_ms", *COLUMNS)))
    for i, (t, o, h, l, c, v) in enumerate(rows):
        a = clock()
        mtf.update(t, o, h, l, c, v)
        b = clock()
        structure.update(h, l, c)
        d = clock()
        gaps.update(h, l, c)
        e = clock()
        spent["MtfState"][i], spent["StructureState"][i], spent["FvgState"][i] = b - a, d - b, e - d
    spent["all three"] = spent["MtfState"] + spent["StructureState"] + spent["FvgState"]
    return spent


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return (f"nproc {os.cpu_count()}, CPU {cpu!r}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=YEAR_BARS)
    args = parser.parse_args()
    start = time.perf_counter()
    bars = year_of_minutes(args.bars)
    print(f"{machine()}\n{args.bars:,} 1m bars from {bars['files']} real files, built in "
          f"{time.perf_counter() - start:.1f} s\n")
    vectorised = bench_vectorised(bars)
    for name, seconds in vectorised.items():
        print(f"{name:34s} {seconds:7.3f} s")
    print(f"{'total':34s} {sum(vectorised.values()):7.3f} s\n")
    for name, ns in bench_incremental(bars).items():
        us = ns / 1000
        print(f"{name:16s} mean {us.mean():7.1f} us  p99 {np.percentile(us, 99):7.1f} us  max {us.max():8.1f} us")


if __name__ == "__main__":
    main()
