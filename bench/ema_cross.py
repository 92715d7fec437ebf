"""Benchmark an EMA-cross backtest: our event-driven engine vs backtesting.py vs vectorbt, same bars, one run.

Usage: .venv/bin/python bench/ema_cross.py [--bars 525600] [--repeat 5] [--bt-repeat 2]
       (needs bench/requirements.txt: .venv/bin/pip install -r bench/requirements.txt)

Data: every BTCUSDT 1m recording of MARKET_DATA_DIR (spot and USD-M), read with
market.csvformat.parse_candles and concatenated in open-time order (the files do not overlap; the
gaps between them stay as price jumps between two consecutive bars). That series is repeated from
its start until there are --bars bars, then re-timed as one gap-free minute series from
2024-01-01 00:00 UTC: backtesting.py wants a sorted time index, the engines use bar order only.

The rules, the same in all three: EMA(12) and EMA(26) of the close, alpha = 2 / (n + 1), seeded with
the first close (execution.backtest.fast.ema_from_first); target +1 while EMA12 > EMA26, -1 while
below, a tie keeps the target; each change filled at the next bar's open, a flip closing and
reversing at that open; 1 BTC a trade; fee 0.04 % of every fill's notional. A change decided on the
last bar is not filled, and the position open at the end is not closed (not counted as a trade).

- ours: ema_cross_positions + backtest_signal(FastConfig(quantity=1)), best of --repeat.
- backtesting.py: Backtest(cash=1e8, commission=0.0004, exclusive_orders=True,
  trade_on_close=False, finalize_trades=False); next() buys (sells) 1 unit when EMA12 > (<) EMA26
  and the position is not already long (short); EMAs through self.I(ema_from_first). Time of
  Backtest(...) + run(), best of --bt-repeat; tqdm progress bar off.
- vectorbt (numba engine): Portfolio.from_signals(close, entries / short_entries = the target
  decided on the previous close, price=open, size=1, fees=0.0004, upon_opposite_entry="reverse")
  and its trade records, after the same ema_cross_positions. The first run compiles ("cold");
  then best of --repeat warm runs.

Checks: our closed trades equal backtesting.py's exactly (EntryBar, ExitBar, side, entry and exit
price, PnL and Commission compared as floats); vectorbt's closed trades have the same bars, sides
and prices, PnL within 1e-6 USDT. Memory: growth of the resident set over its level before each
timed run (Linux VmHWM, reset through /proc/self/clear_refs after malloc_trim). Results are written
to bench/ema_cross.json.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")   # backtesting.py wraps its bar loop in a tqdm progress bar

import numpy as np   # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backtesting   # noqa: E402
import vectorbt as vbt  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402

from execution.backtest.fast import FastConfig, backtest_signal, ema_cross_positions, ema_from_first  # noqa: E402
from market.csvformat import parse_candles  # noqa: E402

YEAR_BARS = 525_600
MINUTE_MS = 60_000
START_MS = 1_704_067_200_000   # 2024-01-01 00:00 UTC
FEE_FRACTION = 0.0004
CASH_USDT = 100_000_000.0      # backtesting.py sizes in whole units: enough cash for 1 BTC at any price
TARGET_BARS_PER_S = 1_000_000
TARGET_RATIO_BT = 5.0
FAST, SLOW = 12, 26


def market_data_dir() -> Path:
    return Path(os.environ.get("MARKET_DATA_DIR", REPO.parent / "shared" / "data" / "market"))


def load_bars(bars: int) -> tuple[pd.DataFrame, list[dict]]:
    """Return `bars` 1m BTCUSDT bars (Open/High/Low/Close, minute index) and the files they came from."""
    paths = sorted(market_data_dir().glob("binance_*_BTCUSDT_1m_*.csv.gz"))
    if not paths:
        sys.exit(f"no BTCUSDT 1m files in {market_data_dir()}")
    tables = [(p.name, parse_candles(p.read_bytes(), p.name, "1m").numbers) for p in paths]
    tables.sort(key=lambda item: int(item[1]["open_time_ms"].iloc[0]))
    recorded = pd.concat([t for _, t in tables], ignore_index=True)
    if not (np.diff(recorded["open_time_ms"].to_numpy()) > 0).all():
        sys.exit("the BTCUSDT 1m files overlap in time; pick one file per period")
    # np.resize repeats the series from its start until it has `bars` values.
    columns = {name.title(): np.resize(recorded[name].to_numpy(float), bars)
               for name in ("open", "high", "low", "close")}
    index = pd.to_datetime(START_MS + np.arange(bars, dtype=np.int64) * MINUTE_MS, unit="ms")
    sources = [{"file": name, "bars": len(t), "first_open_ms": int(t["open_time_ms"].iloc[0]),
                "last_open_ms": int(t["open_time_ms"].iloc[-1])} for name, t in tables]
    return pd.DataFrame(columns, index=index), sources


class EmaCross(Strategy):
    """The plain EMA cross in backtesting.py: always in the market, 1 unit a trade."""

    fast = FAST
    slow = SLOW

    def init(self):
        self.ema_fast = self.I(ema_from_first, self.data.Close, self.fast)
        self.ema_slow = self.I(ema_from_first, self.data.Close, self.slow)

    def next(self):
        fast, slow = self.ema_fast[-1], self.ema_slow[-1]
        if fast > slow:
            if not self.position.is_long:
                self.buy(size=1)
        elif fast < slow and not self.position.is_short:
            self.sell(size=1)


def run_ours(frame: pd.DataFrame):
    target = ema_cross_positions(frame["Close"].to_numpy(), FAST, SLOW)
    return backtest_signal(frame["Open"].to_numpy(), target, FastConfig(FEE_FRACTION, CASH_USDT, quantity=1.0))


def run_ours_engine_only(frame: pd.DataFrame, target: np.ndarray):
    return backtest_signal(frame["Open"].to_numpy(), target, FastConfig(FEE_FRACTION, CASH_USDT, quantity=1.0))


def run_backtesting(frame: pd.DataFrame) -> pd.DataFrame:
    bt = Backtest(frame, EmaCross, cash=CASH_USDT, commission=FEE_FRACTION, exclusive_orders=True,
                  trade_on_close=False, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # "Some trades remain open": the open position, by design
        return bt.run()._trades


def run_vectorbt(frame: pd.DataFrame) -> np.ndarray:
    target = ema_cross_positions(frame["Close"].to_numpy(), FAST, SLOW)
    in_force = np.concatenate(([0], target[:-1]))     # decided on the previous close, filled at this open
    pf = vbt.Portfolio.from_signals(
        frame["Close"], entries=in_force == 1, short_entries=in_force == -1, price=frame["Open"],
        size=1.0, size_type="amount", fees=FEE_FRACTION, init_cash=CASH_USDT,
        upon_opposite_entry="reverse", freq="1min", engine="numba")
    return pf.trades.values


def measured(run, repeat: int) -> tuple[object, float, float]:
    """Return the last result, the best wall time in s, and the peak RSS growth in MiB of the first run."""
    best, peak_mib, result = float("inf"), 0.0, None
    for k in range(repeat):
        result = None
        gc.collect()
        baseline = _reset_peak_rss()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
        if k == 0:
            peak_mib = (_status_kib("VmHWM") - baseline) / 1024
    return result, best, peak_mib


def _reset_peak_rss() -> int:
    """Return the RSS in KiB after handing freed heap back and resetting the high-water mark."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                       # not Linux: the peak then covers the whole process
    return _status_kib("VmRSS")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def compare_backtesting(ours, theirs: pd.DataFrame) -> dict:
    """Return the trade counts and, per field, how many trades differ from backtesting.py's (floats exact)."""
    fields = {
        "entry_bar": (ours.entry_bar, theirs["EntryBar"].to_numpy()),
        "exit_bar": (ours.exit_bar, theirs["ExitBar"].to_numpy()),
        "side": (ours.side, np.sign(theirs["Size"].to_numpy())),
        "entry_price": (ours.entry_price, theirs["EntryPrice"].to_numpy()),
        "exit_price": (ours.exit_price, theirs["ExitPrice"].to_numpy()),
        "pnl_usdt": (ours.pnl_usdt, theirs["PnL"].to_numpy()),
        "fees_usdt": (ours.fees_usdt, theirs["Commission"].to_numpy()),
    }
    return _compare(len(ours), len(theirs), fields, exact=True)


def compare_vectorbt(ours, records: np.ndarray) -> dict:
    """Return the closed-trade counts and, per field, how many trades differ from vectorbt's."""
    closed = records[records["status"] == 1]       # TradeStatus.Closed; the open position is status 0
    fields = {
        "entry_bar": (ours.entry_bar, closed["entry_idx"]),
        "exit_bar": (ours.exit_bar, closed["exit_idx"]),
        "side": (ours.side, 1 - 2 * closed["direction"]),        # Direction: 0 long, 1 short
        "entry_price": (ours.entry_price, closed["entry_price"]),
        "exit_price": (ours.exit_price, closed["exit_price"]),
        "pnl_usdt": (ours.pnl_usdt, closed["pnl"]),
    }
    report = _compare(len(ours), len(closed), fields, exact=False)
    still_open = records[records["status"] == 0]
    report["open_trade_same"] = bool(ours.open_trade and len(still_open) == 1
                                     and ours.open_trade.entry_bar == int(still_open["entry_idx"][0]))
    return report


def _compare(ours_count: int, theirs_count: int, fields: dict, exact: bool) -> dict:
    report = {"ours": ours_count, "theirs": theirs_count, "same": ours_count == theirs_count}
    if not report["same"]:
        return report
    # Prices and bars must match exactly; vectorbt's PnL comes from its own float order of operations.
    differ = {name: (a != b) if exact or name != "pnl_usdt" else ~np.isclose(a, b, rtol=0, atol=1e-6)
              for name, (a, b) in fields.items()}
    report["differing"] = {name: int(mask.sum()) for name, mask in differ.items()}
    if not exact:
        a, b = fields["pnl_usdt"]
        report["pnl_max_abs_diff_usdt"] = float(np.abs(a - b).max()) if len(a) else 0.0
    report["same"] = not any(report["differing"].values())
    return report


def machine() -> dict:
    """Return what the figures depend on: CPU, memory, load and library versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    import numba
    return {
        "nproc": os.cpu_count(), "cpu": model or platform.processor(),
        "mem_total_gib": round(_status_meminfo_kib("MemTotal") / 2**20, 1),
        "load_average_1m_start": os.getloadavg()[0], "python": platform.python_version(),
        "numpy": np.__version__, "pandas": pd.__version__, "backtesting": backtesting.__version__,
        "vectorbt": vbt.__version__, "numba": numba.__version__,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


def _status_meminfo_kib(field: str) -> int:
    meminfo = Path("/proc/meminfo")
    lines = meminfo.read_text().splitlines() if meminfo.exists() else []
    return next((int(line.split()[1]) for line in lines if line.startswith(field + ":")), 0)


def run_all(frame: pd.DataFrame, repeat: int, bt_repeat: int) -> tuple[dict, dict]:
    """Return per-engine figures and the trade-list checks, every engine on the same frame."""
    bars = len(frame)
    ours, ours_s, ours_mib = measured(lambda: run_ours(frame), repeat)
    target = ema_cross_positions(frame["Close"].to_numpy(), FAST, SLOW)
    _, engine_s, _ = measured(lambda: run_ours_engine_only(frame, target), repeat)
    started = time.perf_counter()
    run_vectorbt(frame)                                   # compiles the numba functions
    vbt_cold_s = time.perf_counter() - started
    vbt_records, vbt_s, vbt_mib = measured(lambda: run_vectorbt(frame), repeat)
    bt_trades, bt_s, bt_mib = measured(lambda: run_backtesting(frame), bt_repeat)
    engines = {
        "ours": {"seconds": ours_s, "peak_rss_growth_mib": ours_mib, "trades": len(ours),
                 "engine_only_seconds": engine_s, "fills": ours.fills},
        "backtesting": {"seconds": bt_s, "peak_rss_growth_mib": bt_mib, "trades": len(bt_trades)},
        "vectorbt": {"seconds": vbt_s, "peak_rss_growth_mib": vbt_mib, "cold_seconds": vbt_cold_s,
                     "trades": int((vbt_records["status"] == 1).sum())},
    }
    for figures in engines.values():
        figures["bars_per_s"] = bars / figures["seconds"]
    engines["ours"]["engine_only_bars_per_s"] = bars / engine_s
    checks = {"backtesting": compare_backtesting(ours, bt_trades), "vectorbt": compare_vectorbt(ours, vbt_records)}
    return engines, checks


def report(engines: dict, checks: dict, bars: int) -> dict:
    """Print the figures and return the ratios of wall times (theirs / ours)."""
    ours, bt, vb = engines["ours"], engines["backtesting"], engines["vectorbt"]
    ratios = {"backtesting_s_over_ours_s": bt["seconds"] / ours["seconds"],
              "vectorbt_s_over_ours_s": vb["seconds"] / ours["seconds"]}
    print(f"\n{'engine':<34} {'seconds':>9} {'bars/s':>13} {'trades':>7} {'peak RSS +MiB':>14}")
    rows = [("ours: signal + engine", ours["seconds"], ours["trades"], ours["peak_rss_growth_mib"]),
            ("ours: engine only (signal given)", ours["engine_only_seconds"], ours["trades"], None),
            ("backtesting.py", bt["seconds"], bt["trades"], bt["peak_rss_growth_mib"]),
            ("vectorbt, warm", vb["seconds"], vb["trades"], vb["peak_rss_growth_mib"]),
            ("vectorbt, cold (JIT compile)", vb["cold_seconds"], vb["trades"], None)]
    for name, seconds, trades, mib in rows:
        memory = f"{mib:14.1f}" if mib is not None else ""
        print(f"{name:<34} {seconds:9.3f} {bars / seconds:13,.0f} {trades:7,} {memory}")
    bt_ratio, vbt_ratio = ratios["backtesting_s_over_ours_s"], ratios["vectorbt_s_over_ours_s"]
    print(f"\nbacktesting.py time / ours: {bt_ratio:.1f}x "
          f"(target >= {TARGET_RATIO_BT:.0f}x: {_met(bt_ratio >= TARGET_RATIO_BT)})")
    print(f"vectorbt warm time / ours: {vbt_ratio:.2f}x")
    print(f"ours: {ours['bars_per_s']:,.0f} bars/s (target {TARGET_BARS_PER_S:,}: "
          f"{_met(ours['bars_per_s'] >= TARGET_BARS_PER_S)})")
    for name, check in checks.items():
        print(f"trade list vs {name}: {'same' if check['same'] else 'DIFFERENT'} {json.dumps(check)}")
    return ratios


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=YEAR_BARS, help="bars to backtest (default: a year of minutes)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of ours and of warm vectorbt (best kept)")
    parser.add_argument("--bt-repeat", type=int, default=2, help="timed runs of backtesting.py (best kept)")
    parser.add_argument("--output", default=str(REPO / "bench" / "ema_cross.json"))
    args = parser.parse_args()
    host = machine()
    started = time.perf_counter()
    frame, sources = load_bars(args.bars)
    recorded = sum(s["bars"] for s in sources)
    data = (f"{len(sources)} BTCUSDT 1m files ({recorded:,} recorded bars) concatenated in open-time order, "
            f"repeated from the start to {args.bars:,} bars, re-timed as minutes from 2024-01-01 UTC")
    print(f"{data}; loaded in {time.perf_counter() - started:.1f} s")
    engines, checks = run_all(frame, args.repeat, args.bt_repeat)
    ratios = report(engines, checks, args.bars)
    host["load_average_1m_end"] = os.getloadavg()[0]
    result = {"machine": host, "bars": args.bars, "data": data, "sources": sources, "engines": engines,
              "ratios": ratios, "checks": checks, "repeat": args.repeat, "bt_repeat": args.bt_repeat}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
