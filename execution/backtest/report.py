"""What a backtest report shows, as plain data: the dashboard page and the standalone file render the same dict.

`report_data(run)` gives the equity curve and its drawdown (from the starting equity, downsampled
with LTTB to at most `MAX_POINTS` points per series while keeping both shapes), for each symbol of
the run the candles it decided on (at most `MAX_CANDLES`, neighbouring bars merged when there are
more) with a marker on them for each of that symbol's trade entries and exits, the metrics table
(metrics.summarize's figures, formatted), the per-symbol and per-session breakdowns, the
buy-and-hold comparison and the trades. Chart times are epoch seconds (UTC), as lightweight-charts
takes them. A walk-forward reports its stitched out-of-sample run; a sweep has no curve of its own
(its points do).
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import numpy as np

from dashboard.downsample import lttb_indices
from execution.backtest import jobs
from execution.backtest.metrics import drawdown_series
from execution.models import BacktestRun
from market.models import Candle
from market.timeframes import timeframe_ms

MAX_POINTS = 2000
MAX_CANDLES = 1500
MAX_TRADES = 1000
HOUR_MS = 3_600_000

# (key, label, kind): how each figure of metrics.summarize reads in the table.
METRIC_ROWS = (
    ("net_pnl_usdt", "Net PnL", "usdt"),
    ("final_equity_usdt", "Final equity", "usdt"),
    ("return_fraction", "Return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("calmar", "Calmar", "ratio"),
    ("max_drawdown_fraction", "Max drawdown", "pct"),
    ("max_drawdown_usdt", "Max drawdown (USDT)", "usdt"),
    ("max_drawdown_duration_ms", "Max drawdown duration", "duration"),
    ("exposure_fraction", "Exposure", "pct"),
    ("trade_count", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("average_r", "Average R", "ratio"),
    ("expectancy_usdt", "Expectancy per trade", "usdt"),
    ("expectancy_r", "Expectancy (R)", "ratio"),
    ("trades_per_day", "Trades per day", "ratio"),
    ("fees_usdt", "Fees", "usdt"),
    ("funding_usdt", "Funding", "usdt"),
    ("stop_hits", "Stops hit", "int"),
    ("target_hits", "Targets hit", "int"),
    ("liquidation_hits", "Liquidations", "int"),
    ("buy_and_hold_return_fraction", "Buy and hold return", "pct"),
    ("excess_return_fraction", "Excess over buy and hold", "pct"),
)
METRIC_LABELS = {key: label for key, label, _ in METRIC_ROWS}


def fmt(value, kind: str) -> str:
    """Return a stored figure as the report prints it: "—" for none, "∞" for infinity."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str) and value.endswith("inf"):
        return "-∞" if value.startswith("-") else "∞"
    if kind == "usdt":
        return f"{Decimal(str(value)):,.2f}"
    if kind == "pct":
        return f"{float(value) * 100:.2f} %"
    if kind == "int":
        return str(int(value))
    if kind == "duration":
        hours = int(value) // HOUR_MS
        return f"{hours // 24} d {hours % 24} h"
    return f"{float(value):.2f}"


def metric_rows(metrics: dict | None) -> list[dict]:
    """Return the metrics table: key, label, printed value and the raw stored value."""
    metrics = metrics or {}
    return [{"key": key, "label": label, "value": fmt(metrics.get(key), kind), "raw": metrics.get(key)}
            for key, label, kind in METRIC_ROWS if key in metrics]


def breakdown_rows(groups: dict | None) -> list[dict]:
    """Return a per-symbol or per-session breakdown as rows: name, trades, net PnL, win rate."""
    return [{"name": name, "count": g["count"], "net_pnl": fmt(g["net_pnl_usdt"], "usdt"),
             "win_rate": fmt(g["win_rate"], "pct")} for name, g in (groups or {}).items()]


def summary_of(run: BacktestRun) -> dict | None:
    """Return the summarize figures a run reports: its own, a walk-forward's stitched ones, none for a sweep."""
    if run.kind == BacktestRun.Kind.SWEEP:
        return None
    if run.kind == BacktestRun.Kind.WALK_FORWARD:
        return (run.metrics or {}).get("stitched")
    return run.metrics or None


def curve(run: BacktestRun) -> dict:
    """Return the equity and drawdown (%, <= 0) series from the starting equity, each downsampled to MAX_POINTS."""
    if not run.equity:
        return {"equity": [], "drawdown": [], "points": 0, "downsampled": False}
    step = timeframe_ms(run.timeframe)
    ts = np.array([int(run.equity[0][0]) - step, *(int(t) for t, _ in run.equity)], dtype=np.int64)
    values = np.array([float(run.starting_equity_usdt), *(float(v) for _, v in run.equity)])
    drawdown = -100 * drawdown_series(values)[0]
    keep = np.union1d(lttb_indices(ts, values, MAX_POINTS), lttb_indices(ts, drawdown, MAX_POINTS))
    seconds = ts // 1000
    return {"equity": [[int(seconds[i]), round(float(values[i]), 2)] for i in keep],
            "drawdown": [[int(seconds[i]), round(float(drawdown[i]), 4)] for i in keep],
            "points": len(ts), "downsampled": len(keep) < len(ts)}


def _merge(times: np.ndarray, ohlc: np.ndarray, per: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, len(times), per)
    merged = np.column_stack([ohlc[starts, 0], np.maximum.reduceat(ohlc[:, 1], starts),
                              np.minimum.reduceat(ohlc[:, 2], starts), ohlc[np.append(starts[1:], len(times)) - 1, 3]])
    return times[starts], merged


def candles(run: BacktestRun, instrument_id: int) -> dict:
    """Return one instrument's bars over the run's curve (opens from the first to the last bar decided on).

    At most MAX_CANDLES: with more, `per_bar` neighbouring bars are merged into one candle.
    """
    if not run.equity:
        return {"bars": [], "per_bar": 1}
    step = timedelta(milliseconds=timeframe_ms(run.timeframe))
    first, last = (datetime.fromtimestamp(int(run.equity[i][0]) / 1000, tz=dt_timezone.utc) - step for i in (0, -1))
    rows = list(Candle.objects.filter(instrument_id=instrument_id, timeframe=run.timeframe, open_time__gte=first,
                                      open_time__lte=last).order_by("open_time")
                .values_list("open_time", "open", "high", "low", "close"))
    if not rows:
        return {"bars": [], "per_bar": 1}
    times = np.array([int(r[0].timestamp()) for r in rows], dtype=np.int64)
    ohlc = np.array([[float(v) for v in r[1:]] for r in rows])
    per = math.ceil(len(rows) / MAX_CANDLES)
    if per > 1:
        times, ohlc = _merge(times, ohlc, per)
    return {"bars": [{"time": int(t), "open": o, "high": h, "low": lo, "close": c}
                     for t, (o, h, lo, c) in zip(times, ohlc.tolist())], "per_bar": per}


def markers(trades: list[dict], bar_times: list[int], symbol: str) -> list[dict]:
    """Return an entry and an exit marker per trade of `symbol`, each on the bar that holds its time."""
    if not bar_times:
        return []
    times = np.array(bar_times, dtype=np.int64)

    def on_bar(ms: int) -> int:
        return int(times[max(0, int(np.searchsorted(times, ms // 1000, side="right")) - 1)])
    out = []
    for trade in trades:
        if trade.get("symbol", symbol) != symbol:
            continue
        long = trade["side"] == "LONG"
        pnl = Decimal(trade["pnl_usdt"])
        # The arrow says the side; only the exit carries text (its PnL), so busy charts stay legible.
        out.append({"time": on_bar(trade["entry_ms"]), "position": "belowBar" if long else "aboveBar",
                    "color": "#16a34a" if long else "#dc2626", "shape": "arrowUp" if long else "arrowDown",
                    "text": ""})
        out.append({"time": on_bar(trade["exit_ms"]), "position": "aboveBar" if long else "belowBar",
                    "color": "#16a34a" if pnl > 0 else "#dc2626", "shape": "circle", "text": f"{pnl:+.2f}"})
    return sorted(out, key=lambda m: m["time"])


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=dt_timezone.utc).strftime("%Y-%m-%d %H:%M")


def plain(value) -> str:
    """Return a stored decimal without its padding zeros: 110749.1000000000 reads 110749.1."""
    return f"{Decimal(str(value)).normalize():f}"


def trade_rows(trades: list[dict], symbol: str) -> list[dict]:
    """Return the first MAX_TRADES trades as table rows."""
    return [{**t, "symbol": t.get("symbol", symbol), "entry_at": _when(t["entry_ms"]), "exit_at": _when(t["exit_ms"]),
             "entry_price": plain(t["entry_price"]), "exit_price": plain(t["exit_price"]),
             "quantity": plain(t["quantity"]),
             "pnl": fmt(t["pnl_usdt"], "usdt"), "fees": fmt(t["fees_usdt"], "usdt"), "win": Decimal(t["pnl_usdt"]) > 0,
             "r": "—" if t.get("r_multiple") is None else f"{t['r_multiple']:.2f}"} for t in trades[:MAX_TRADES]]


def chart_instruments(run: BacktestRun) -> list[tuple[str, int]]:
    """Return (venue symbol, instrument id) of every symbol the run traded, its first instrument first.

    The other symbols are found as the worker found them (jobs.instruments_find); one no longer
    stored is left out of the charts rather than failing the whole report.
    """
    first = run.instrument.exchange_symbol
    not_found: dict[str, str] = {}      # named in no error: the run's own page already lists its symbols
    others = jobs.instruments_find([s for s in run.symbols if s != first], not_found) if len(run.symbols) > 1 else ()
    return [(first, run.instrument_id), *((i.exchange_symbol, i.pk) for i in others)]


def chart_data(run: BacktestRun) -> dict:
    """Return what the charts draw: equity and drawdown, and per symbol its candles with its trades' markers."""
    symbols = []
    for symbol, instrument_id in chart_instruments(run):
        bars = candles(run, instrument_id)
        symbols.append({"symbol": symbol, "candles": bars["bars"], "per_bar": bars["per_bar"],
                        "markers": markers(run.trades, [b["time"] for b in bars["bars"]], symbol)})
    return {"timeframe": run.timeframe, **curve(run), "symbols": symbols}


def report_data(run: BacktestRun) -> dict:
    """Return everything the report of a finished run shows."""
    summary = summary_of(run)
    symbol = run.instrument.exchange_symbol
    return {
        "summary": summary,
        "metrics": metric_rows(summary),
        "by_symbol": breakdown_rows((summary or {}).get("by_symbol")),
        "by_session": breakdown_rows((summary or {}).get("by_session")),
        "buy_and_hold": fmt((summary or {}).get("buy_and_hold_return_fraction"), "pct"),
        "trades": trade_rows(run.trades, symbol),
        "trades_total": len(run.trades),
        "chart": chart_data(run) if summary is not None else None,
    }


def _shown(value) -> str:
    if value is None:
        return "—"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def parameter_rows(run: BacktestRun) -> list[tuple[str, str]]:
    """Return the configuration a run used, by name; a walk-forward's or sweep's plan first, then its base."""
    params = run.parameters or {}
    if run.kind not in (BacktestRun.Kind.WALK_FORWARD, BacktestRun.Kind.SWEEP):
        return [(name, _shown(value)) for name, value in sorted(params.items())]
    plan = [(f"grid: {name}", " | ".join(map(str, values))) for name, values in params.get("grid", {}).items()]
    plan += [(key, str(params[key])) for key in ("objective", "metric", "train_days", "test_days", "source", "market")
             if key in params]
    return plan + [(name, _shown(value)) for name, value in sorted(params.get("base", {}).items())]


def progress_state(run: BacktestRun) -> dict:
    """Return the run's progress and its children's and grandchildren's, as the live events carry them."""
    light = BacktestRun.objects.defer("trades", "equity", "metrics", "parameters").order_by("pk")
    rows = [jobs.progress_payload(r) for r in (*light.filter(parent=run), *light.filter(parent__parent=run))]
    return {"run": jobs.progress_payload(run), "children": rows}


# Walk-forward and sweep tables.

FIGURE_COLUMNS = (("net_pnl_usdt", "Net PnL", "usdt"), ("return_fraction", "Return", "pct"),
                  ("sharpe", "Sharpe", "ratio"), ("max_drawdown_fraction", "Max DD", "pct"),
                  ("trade_count", "Trades", "int"))


def _kind_of(metric: str) -> str:
    return next((kind for key, _, kind in METRIC_ROWS if key == metric), "ratio")


def figure_columns(objective: str) -> list[tuple[str, str, str]]:
    """Return the columns of a window's figures: the objective first, then the others of FIGURE_COLUMNS."""
    return [(objective, METRIC_LABELS.get(objective, objective), _kind_of(objective)),
            *(c for c in FIGURE_COLUMNS if c[0] != objective)]


def figure_cells(figures: dict | None, objective: str) -> list[str]:
    """Return one window's figures in `figure_columns` order, printed ("—" for a window without figures)."""
    return [fmt((figures or {}).get(key), kind) for key, _, kind in figure_columns(objective)]


def _window(start_iso: str | None, end_iso: str | None) -> str:
    if not start_iso:
        return "—"
    start, end = (datetime.fromisoformat(v) for v in (start_iso, end_iso))
    return f"{start:%m-%d %H:%M} → {end:%m-%d %H:%M}"      # the year is in the run's facts above


def _values(values: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (values or {}).items()) or "—"


def walkforward_view(run: BacktestRun) -> dict:
    """Return the walk-forward's folds (in sample against out of sample) and the overall comparison, printed."""
    metrics, plan = run.metrics or {}, run.parameters or {}
    objective = metrics.get("objective") or plan.get("objective", "sharpe")
    folds = [{"fold": row["fold"], "run_id": row["run_id"], "status": row["status"], "error": row["error"],
              "train": _window(row["train_start"], row["train_end"]),
              "test": _window(row["test_start"], row["test_end"]),
              "values": _values(row["values"]), "chosen_run_id": row["chosen_run_id"],
              "in_sample": figure_cells(row["in_sample"], objective),
              "out_of_sample": figure_cells(row["out_of_sample"], objective)} for row in metrics.get("folds", [])]

    def side(summary: dict | None) -> dict:
        summary = summary or {}
        return {"folds": summary.get("folds", 0),
                "objective_mean": fmt(summary.get("objective_mean"), _kind_of(objective)),
                "net_pnl": fmt(summary.get("net_pnl_usdt"), "usdt"),
                "return_per_day": fmt(summary.get("return_per_day"), "pct")}
    return {"objective": objective, "objective_label": METRIC_LABELS.get(objective, objective),
            "columns": [label for _, label, _ in figure_columns(objective)], "folds": folds,
            "in_sample": side(metrics.get("in_sample")), "out_of_sample": side(metrics.get("out_of_sample")),
            "efficiency": fmt(metrics.get("efficiency"), "ratio"),
            "plan": {"train_days": plan.get("train_days"), "test_days": plan.get("test_days"),
                     "grid": plan.get("grid", {})}}


def sweep_view(run: BacktestRun) -> dict:
    """Return the sweep's results table, best first, printed."""
    metrics, plan = run.metrics or {}, run.parameters or {}
    metric = metrics.get("metric") or plan.get("metric", "sharpe")
    names = list(plan.get("grid", {}))
    rows = [{"rank": rank, "run_id": row["run_id"], "status": row["status"], "error": row["error"],
             "values": [row["values"].get(name) for name in names], "value": fmt(row["value"], _kind_of(metric)),
             "cells": figure_cells(row, metric)[1:], "best": row["run_id"] == metrics.get("best_run_id")}
            for rank, row in enumerate(metrics.get("results", []), 1)]
    return {"metric": metric, "metric_label": METRIC_LABELS.get(metric, metric),
            "names": names, "columns": [label for _, label, _ in figure_columns(metric)[1:]], "rows": rows,
            "grid": plan.get("grid", {})}
