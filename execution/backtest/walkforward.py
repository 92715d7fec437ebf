"""Walk-forward: rolling train/test windows; each fold picks its parameters in sample and trades them out of sample.

Over a range of bar closes, fold k trains on `train` days from start + k * test and tests on the
`test` days right after; the windows step by the test span, so the test windows follow one another
without overlapping. In each fold the grid's combinations (admin-editable parameters, checked as
in a sweep) run over the training window as POINT children of the fold; the one with the best
in-sample objective (ties: the first in grid order) then runs over the test window as the FOLD
itself. Each fold is one django-q2 task, so folds spread over workers; the last fold to finish
stitches the out-of-sample results into the WALK_FORWARD parent under its row lock: every fold
trades the same starting equity and their PnL adds up.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from decisions.audit_services import git_commit
from execution.backtest import jobs, sweeps
from execution.backtest.jobs import BacktestRefused
from execution.backtest.metrics import Trade, summarize
from execution.models import BacktestRun
from market.models import Candle, Timeframe
from market.timeframes import timeframe_ms

DAY_MS = 86_400_000
MAX_FOLDS = 52
MAX_CANDIDATES = 16
# Per-window figures the report sets side by side, besides the objective.
FIGURES = ("net_pnl_usdt", "return_fraction", "sharpe", "max_drawdown_fraction", "trade_count", "win_rate")


@dataclass(frozen=True, slots=True)
class FoldWindow:
    """One fold's windows as bar closes (epoch ms), each end included."""

    train_start_ms: int
    train_end_ms: int
    test_start_ms: int
    test_end_ms: int


def fold_windows(start_ms: int, end_ms: int, *, train_ms: int, test_ms: int, step_ms: int) -> list[FoldWindow]:
    """Return the folds that fit in [start_ms, end_ms]: train, then test right after, stepping by the test span."""
    folds = []
    train_start = start_ms
    while train_start + train_ms + test_ms - step_ms <= end_ms:
        test_start = train_start + train_ms
        folds.append(FoldWindow(train_start, test_start - step_ms, test_start, test_start + test_ms - step_ms))
        train_start += test_ms
    return folds


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=dt_timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def span_ms(days, timeframe: str, field: str, errors: dict) -> int | None:
    """Return `days` in ms when positive and a whole number of bars, noting a bad value in errors."""
    try:
        value = Decimal(str(days).strip())
    except (InvalidOperation, ValueError):
        errors[field] = f"{days!r} is not a number of days"
        return None
    if not value.is_finite() or value <= 0:
        errors[field] = "must be more than 0 days"
        return None
    ms = value * DAY_MS
    if timeframe in Timeframe.values and ms % timeframe_ms(timeframe):
        errors[field] = f"{value} days is not a whole number of {timeframe} bars"
        return None
    return int(ms)


def walkforward_submit(*, symbols: list[str], timeframe: str, start, end, starting_equity: Decimal,
                       parameters: dict | None, grid: dict, train_days, test_days, objective: str, actor: str,
                       now: datetime, source: str = jobs.DB, market: str = "") -> BacktestRun:
    """Check the walk-forward, store it with its folds and their in-sample candidates, and queue the folds."""
    errors: dict[str, str] = {}
    sweeps.metric_check(objective, "objective", errors)
    train_ms = span_ms(train_days, timeframe, "train_days", errors)
    test_ms = span_ms(test_days, timeframe, "test_days", errors)
    request = jobs.request_check_with(errors, symbols=symbols, timeframe=timeframe, start=start, end=end,
                                      starting_equity=starting_equity, parameters=parameters, source=source,
                                      market=market, data=False)
    points = sweeps.grid_check(request.config, grid, max_points=MAX_CANDIDATES)
    windows = fold_windows(_ms(request.start), _ms(request.end), train_ms=train_ms, test_ms=test_ms,
                           step_ms=timeframe_ms(timeframe))
    if not windows:
        errors["end"] = (f"the range holds no fold: it needs {train_days} training and {test_days} test days "
                         f"from {request.start:%Y-%m-%d %H:%M}")
    elif len(windows) > MAX_FOLDS:
        errors["test_days"] = f"{len(windows)} folds; at most {MAX_FOLDS}: lengthen the test window"
    else:
        jobs.data_check(request, (config for _, config in points), errors)
    if errors:
        raise BacktestRefused(errors)
    plan = {"base": jobs.parameters_json(request.config), "grid": sweeps.grid_json(points), "objective": objective,
            "train_days": str(Decimal(str(train_days))), "test_days": str(Decimal(str(test_days)))}
    with transaction.atomic():
        parent = _rows_create(request, windows, points, plan, actor=actor, now=now)
        jobs.progress_send(parent)
        jobs.enqueue_on_commit("execution.tasks_backtest.walkforward_fold_execute",
                               list(parent.children.order_by("pk").values_list("pk", flat=True)))
    return parent


def _rows_create(request, windows, points, plan: dict, *, actor: str, now: datetime) -> BacktestRun:
    code = git_commit()
    label = f"walk-forward: {len(windows)} folds by {sweeps.METRICS[plan['objective']][0]}"
    parent = jobs.run_create(request, kind=BacktestRun.Kind.WALK_FORWARD, actor=actor, now=now, code_version=code,
                             label=label, parameters=plan)
    total = 0
    for number, window in enumerate(windows, 1):
        fold = jobs.run_create(request, kind=BacktestRun.Kind.FOLD, actor=actor, now=now, code_version=code,
                               parent=parent, label=f"fold {number}", start=_dt(window.test_start_ms),
                               end=_dt(window.test_end_ms))
        total += fold.bars_total
        for values, config in points:
            candidate = jobs.run_create(
                request, kind=BacktestRun.Kind.POINT, actor=actor, now=now, code_version=code, parent=fold,
                config=config, label=f"fold {number} in sample: {jobs.overrides_label(values)}",
                start=_dt(window.train_start_ms), end=_dt(window.train_end_ms))
            total += candidate.bars_total
    parent.bars_total = total
    parent.save(update_fields=["bars_total"])
    return parent


def best_of(candidates: list[BacktestRun], objective: str) -> BacktestRun | None:
    """Return the finished candidate with the best objective (the first on ties or without any), else None."""
    direction = sweeps.METRICS[objective][1]
    best, best_value = None, None
    for run in candidates:
        if run.status != BacktestRun.Status.DONE:
            continue
        value = sweeps.metric_value(run.metrics, objective)
        if best is None or (value is not None and (best_value is None or direction * value > direction * best_value)):
            best, best_value = run, value
    return best


def fold_choice(candidates: list[BacktestRun], plan: dict) -> tuple[BacktestRun | None, dict | None]:
    """Return the candidate a fold trades out of sample and its grid values; (None, None) when every one failed."""
    best = best_of(candidates, plan["objective"])
    return best, ({name: best.parameters.get(name) for name in plan["grid"]} if best is not None else None)


def fold_execute(run_id: int) -> BacktestRun | None:
    """Run a queued fold: its candidates in sample, the best out of sample; the last fold aggregates."""
    fold = jobs.run_claim(run_id)
    if fold is None:
        return None
    plan = fold.parent.parameters
    candidates = [jobs.backtest_execute(c.pk) or BacktestRun.objects.get(pk=c.pk)
                  for c in fold.children.order_by("pk")]
    best, values = fold_choice(candidates, plan)
    if best is None:
        errors = "; ".join(c.error for c in candidates if c.error)[:1500]
        fold.status, fold.error, fold.finished_at = BacktestRun.Status.FAILED, \
            f"every in-sample run failed: {errors}", timezone.now()
        fold.save(update_fields=["status", "error", "finished_at"])
        jobs.progress_send(fold)
    else:
        fold.parameters, fold.label = best.parameters, f"{fold.label}: {jobs.overrides_label(values)}"[:64]
        fold.save(update_fields=["parameters", "label"])
        fold = jobs.run_into(fold)
        if fold.status == BacktestRun.Status.DONE:
            fold.metrics["selection"] = {"objective": plan["objective"], "chosen_run_id": best.pk, "values": values,
                                         "in_sample_value": best.metrics.get(plan["objective"]),
                                         "candidates": len(candidates)}
            fold.save(update_fields=["metrics"])
    jobs.children_finish(fold.parent_id, walkforward_aggregate)
    return fold


def _figures(metrics: dict, objective: str) -> dict:
    return {name: metrics.get(name) for name in (*FIGURES, objective)}


def _days(start: datetime, end: datetime, timeframe: str) -> float:
    return (end - start).total_seconds() / 86400 + timeframe_ms(timeframe) / DAY_MS


def fold_row(number: int, fold: BacktestRun, plan: dict) -> dict:
    """Return one fold's line of the report: windows, chosen values, in-sample and out-of-sample figures."""
    objective = plan["objective"]
    candidates = list(fold.children.order_by("pk"))
    # The choice is made again from the stored candidates, not read from the fold's "selection":
    # that is written after the fold is stored done, and another fold's worker may aggregate between.
    chosen, values = fold_choice(candidates, plan) if fold.status == BacktestRun.Status.DONE else (None, None)
    return {
        "fold": number, "run_id": fold.pk, "status": fold.status, "error": fold.error[:300],
        "train_start": candidates[0].start.isoformat() if candidates else None,
        "train_end": candidates[0].end.isoformat() if candidates else None,
        "test_start": fold.start.isoformat(), "test_end": fold.end.isoformat(),
        "values": values, "chosen_run_id": chosen.pk if chosen else None,
        "in_sample": _figures(chosen.metrics, objective) if chosen else None,
        "in_sample_days": _days(chosen.start, chosen.end, chosen.timeframe) if chosen else None,
        "out_of_sample": _figures(fold.metrics, objective) if fold.status == BacktestRun.Status.DONE else None,
        "out_of_sample_days": _days(fold.start, fold.end, fold.timeframe),
    }


def trade_of(row: dict, symbol: str) -> Trade:
    """Return a stored trade row as a metrics Trade; the risk comes back from its R multiple."""
    pnl, r = Decimal(row["pnl_usdt"]), row.get("r_multiple")
    risk = pnl / Decimal(str(r)) if r else None
    return Trade(row.get("symbol", symbol), row["side"], row["entry_ms"], row["exit_ms"], Decimal(row["entry_price"]),
                 Decimal(row["exit_price"]), Decimal(row["quantity"]), Decimal(row["fees_usdt"]),
                 Decimal(row["funding_usdt"]), pnl, risk, row["exit_reason"])


def stitch(folds: list[BacktestRun], starting_equity: Decimal) -> tuple[list[int], list[Decimal], list[dict]]:
    """Return the out-of-sample equity (each fold's PnL added to the ones before) and the trades, in time order."""
    ts, equity, trades, offset = [], [], [], Decimal(0)
    for number, fold in folds:
        for t, value in fold.equity:
            ts.append(int(t))
            equity.append(Decimal(value) + offset)
        trades.extend({**row, "fold": number} for row in fold.trades)
        offset += (fold.final_equity_usdt or starting_equity) - starting_equity
    return ts, equity, trades


def _closes(parent: BacktestRun, start: datetime, end: datetime) -> list[Decimal] | None:
    step = timedelta(milliseconds=timeframe_ms(parent.timeframe))
    closes = Candle.objects.filter(instrument=parent.instrument, timeframe=parent.timeframe,
                                   open_time__gte=start - step, open_time__lte=end - step).order_by("open_time")
    return list(closes.values_list("close", flat=True)) or None


def _sample_summary(rows: list[dict], side: str, objective: str) -> dict:
    present = [row for row in rows if row[side]]
    values = [sweeps.metric_value(row[side], objective) for row in present]
    values = [v for v in values if v is not None]
    returns = [sweeps.metric_value(row[side], "return_fraction") / row[f"{side}_days"] for row in present]
    mean = sweeps.json_number(sum(values) / len(values)) if values else None
    return {"folds": len(present), "objective_mean": mean,
            "net_pnl_usdt": str(sum((Decimal(row[side]["net_pnl_usdt"]) for row in present), Decimal(0))),
            "return_per_day": sum(returns) / len(returns) if returns else None}


def walkforward_aggregate(parent: BacktestRun, folds: list[BacktestRun]) -> None:
    """Stitch the folds' out-of-sample results into the parent (its caller holds the lock and saves)."""
    objective = parent.parameters["objective"]
    rows = [fold_row(number, fold, parent.parameters) for number, fold in enumerate(folds, 1)]
    done = [(number, fold) for number, fold in enumerate(folds, 1) if fold.status == BacktestRun.Status.DONE]
    in_sample = _sample_summary(rows, "in_sample", objective)
    out_of_sample = _sample_summary(rows, "out_of_sample", objective)
    gained, kept = in_sample["return_per_day"], out_of_sample["return_per_day"]
    # Walk-forward efficiency: how much of the in-sample gain per day survived out of sample.
    ratio = kept / gained if gained and gained > 0 and kept is not None else None
    parent.metrics = {"objective": objective, "folds": rows, "in_sample": in_sample, "out_of_sample": out_of_sample,
                      "efficiency": sweeps.json_number(ratio), "aggregated_at": timezone.now().isoformat()}
    if done:
        ts, equity, trades = stitch(done, parent.starting_equity_usdt)
        step = timeframe_ms(parent.timeframe)
        first, last = done[0][1], done[-1][1]
        summary = summarize([trade_of(row, parent.instrument.exchange_symbol) for row in trades], ts, equity,
                            start_ms=_ms(first.start) - step, end_ms=_ms(last.end),
                            starting_equity=parent.starting_equity_usdt,
                            benchmark_prices=_closes(parent, first.start, last.end))
        parent.metrics["stitched"] = summary.as_dict()
        parent.trades, parent.equity = trades, [[t, str(e)] for t, e in zip(ts, equity)]
        parent.final_equity_usdt = equity[-1] if equity else parent.starting_equity_usdt
    failed = [row["fold"] for row in rows if row["status"] == BacktestRun.Status.FAILED]
    parent.status = BacktestRun.Status.FAILED if failed else BacktestRun.Status.DONE
    parent.error = f"fold {', '.join(map(str, failed))} failed" if failed else ""
