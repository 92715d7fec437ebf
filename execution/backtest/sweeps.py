"""Parameter sweeps: every combination of a grid of admin-editable parameters, each point a django-q2 task.

A SWEEP run keeps its plan in `parameters` ({"base": configuration, "grid": {name: [values]},
"metric": name}); each combination is a POINT child over the whole range with its own
configuration (the base with the point's values), validated like a single run's parameters
before anything is stored. Points spread over the workers; the last one to finish ranks them by
the metric into the parent's `metrics["results"]`, under the parent's row lock.
"""
from __future__ import annotations

import itertools
import math
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from decisions.audit_services import git_commit
from decisions.models import TradingConfig
from execution.backtest import jobs
from execution.backtest.jobs import BacktestRefused
from execution.models import BacktestRun

# name: (label, direction); +1 when more is better, -1 when less is.
METRICS: dict[str, tuple[str, int]] = {
    "sharpe": ("Sharpe", 1),
    "sortino": ("Sortino", 1),
    "calmar": ("Calmar", 1),
    "net_pnl_usdt": ("net PnL", 1),
    "return_fraction": ("return", 1),
    "profit_factor": ("profit factor", 1),
    "win_rate": ("win rate", 1),
    "expectancy_usdt": ("expectancy per trade", 1),
    "max_drawdown_fraction": ("max drawdown", -1),
}
MAX_POINTS = 64
MAX_VALUES = 16
# What the results table shows of each point besides the chosen metric.
RESULT_FIGURES = ("net_pnl_usdt", "return_fraction", "sharpe", "max_drawdown_fraction", "trade_count", "win_rate",
                  "profit_factor")


def as_float(raw) -> float | None:
    """Return a stored figure (a number, decimal text, "inf" or "-inf") as a float, None for none."""
    if raw is None:
        return None
    return {"inf": math.inf, "-inf": -math.inf}.get(raw) if isinstance(raw, str) and "inf" in raw else float(raw)


def json_number(value: float | None):
    """Return a float as a JSON field can hold it: infinities as "inf" / "-inf" text (as metrics store them)."""
    if value is None or math.isnan(value):
        return None
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def metric_value(metrics: dict, name: str) -> float | None:
    """Return a stored metric as a float ("inf" as infinity), None when the run has none."""
    return as_float((metrics or {}).get(name))


def metric_check(name, field: str, errors: dict) -> None:
    """Note in errors a metric that cannot rank runs."""
    if name not in METRICS:
        errors[field] = f"unknown metric {name!r}; use {', '.join(METRICS)}"


def rank_key(metric: str):
    """Return the sort key that puts the best run first: done before failed, no value last, then by id."""
    direction = METRICS[metric][1]

    def key(row: dict):
        value = as_float(row["value"])
        return (row["status"] != BacktestRun.Status.DONE, value is None, -direction * (value or 0.0), row["run_id"])
    return key


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Return every combination of the grid, the last parameter varying fastest."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def _point_text(point: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in point.items())


def grid_check(base: TradingConfig, grid, *, max_points: int, prefix: str = "grid") -> list[tuple[dict, TradingConfig]]:
    """Return each combination (as stored values) with its validated configuration; BacktestRefused names faults."""
    if not isinstance(grid, dict) or not grid:
        raise BacktestRefused({prefix: "give at least one parameter and its values"})
    errors = {}
    for name, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            errors[f"{prefix}.{name}"] = "give a list of values"
        elif len(values) > MAX_VALUES:
            errors[f"{prefix}.{name}"] = f"{len(values)} values; at most {MAX_VALUES}"
    count = math.prod(len(v) for v in grid.values() if isinstance(v, list | tuple))
    if not errors and count > max_points:
        errors[prefix] = f"{count} combinations; at most {max_points}"
    if errors:
        raise BacktestRefused(errors)
    checked, seen = [], set()
    for point in grid_points(grid):
        try:
            config = jobs.config_with(base, point, prefix=prefix)
        except BacktestRefused as exc:
            raise BacktestRefused({key: f"{_point_text(point)}: {message}"
                                   for key, message in exc.errors.items()}) from None
        stored = jobs.parameters_json(config)
        values = {name: stored[name] for name in point}
        if repr(values) in seen:
            raise BacktestRefused({prefix: f"{_point_text(values)} appears twice"})
        seen.add(repr(values))
        checked.append((values, config))
    return checked


def grid_json(points: list[tuple[dict, TradingConfig]]) -> dict[str, list]:
    """Return the grid as stored: each parameter's distinct values in order."""
    grid: dict[str, list] = {}
    for values, _ in points:
        for name, value in values.items():
            if value not in grid.setdefault(name, []):
                grid[name].append(value)
    return grid


def sweep_submit(*, symbols: list[str], timeframe: str, start, end, starting_equity: Decimal,
                 parameters: dict | None, grid: dict, metric: str, actor: str, now: datetime,
                 source: str = jobs.DB, market: str = "") -> BacktestRun:
    """Check the sweep, store it with one QUEUED point per combination and queue the points."""
    errors: dict[str, str] = {}
    metric_check(metric, "metric", errors)
    request = jobs.request_check_with(errors, symbols=symbols, timeframe=timeframe, start=start, end=end,
                                      starting_equity=starting_equity, parameters=parameters, source=source,
                                      market=market, data=False)
    points = grid_check(request.config, grid, max_points=MAX_POINTS)
    jobs.data_check(request, (config for _, config in points), errors)
    if errors:
        raise BacktestRefused(errors)
    plan = {"base": jobs.parameters_json(request.config), "grid": grid_json(points), "metric": metric}
    with transaction.atomic():
        code = git_commit()
        parent = jobs.run_create(request, kind=BacktestRun.Kind.SWEEP, actor=actor, now=now, code_version=code,
                                 label=f"sweep: {len(points)} points by {METRICS[metric][0]}", parameters=plan)
        children = [jobs.run_create(request, kind=BacktestRun.Kind.POINT, actor=actor, now=now, code_version=code,
                                    parent=parent, config=config, label=jobs.overrides_label(values))
                    for values, config in points]
        parent.bars_total = sum(child.bars_total for child in children)
        parent.save(update_fields=["bars_total"])
        jobs.progress_send(parent)
        jobs.enqueue_on_commit("execution.tasks_backtest.sweep_point_execute", [child.pk for child in children])
    return parent


def point_execute(run_id: int) -> BacktestRun | None:
    """Run one queued point, then rank the sweep if it was the last; None when another worker had it."""
    run = jobs.backtest_execute(run_id)
    if run is not None:
        jobs.children_finish(run.parent_id, sweep_aggregate)
    return run


def result_row(point: BacktestRun, names: list[str], metric: str) -> dict:
    """Return one point's line of the results table: its values, status, the metric and the main figures."""
    return {"run_id": point.pk, "label": point.label, "status": point.status, "error": point.error[:300],
            "values": {name: point.parameters.get(name) for name in names},
            "value": json_number(metric_value(point.metrics, metric)) if point.status == BacktestRun.Status.DONE
            else None,
            **{name: point.metrics.get(name) for name in RESULT_FIGURES}}


def sweep_aggregate(parent: BacktestRun, points: list[BacktestRun]) -> None:
    """Rank the finished points by the sweep's metric into the parent (its caller holds the lock and saves)."""
    metric = parent.parameters["metric"]
    rows = sorted((result_row(p, list(parent.parameters["grid"]), metric) for p in points), key=rank_key(metric))
    failed = [row for row in rows if row["status"] == BacktestRun.Status.FAILED]
    best = rows[0] if rows and rows[0]["status"] == BacktestRun.Status.DONE else None
    parent.metrics = {"metric": metric, "direction": METRICS[metric][1], "results": rows,
                      "best_run_id": best["run_id"] if best else None,
                      "aggregated_at": timezone.now().isoformat()}
    parent.status = BacktestRun.Status.FAILED if len(failed) == len(rows) else BacktestRun.Status.DONE
    parent.error = f"{len(failed)} of {len(rows)} points failed" if failed else ""
