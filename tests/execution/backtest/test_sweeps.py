"""Parameter sweeps: a validated grid, one django-q2 task per point, results ranked by the chosen metric."""
import json
from datetime import timedelta
from decimal import Decimal as D

import pytest

from execution.backtest import jobs
from execution.backtest.jobs import BacktestRefused
from execution.backtest.sweeps import grid_points, rank_key, result_row, sweep_aggregate, sweep_submit
from execution.models import BacktestRun
from tests.execution.backtest.jobs_fixtures import NOW, backtest_events, close_of, live_messages, market  # noqa: F401
from tests.market_fixtures import WARMUP_BARS

STEP = timedelta(minutes=15)
HALF_DAY = 48


def sweep(instrument, start, end, **overrides):
    request = dict(symbols=[instrument.exchange_symbol], timeframe="15m", start=start, end=end,
                   starting_equity=D("10000"), parameters={"mode": "ON"},
                   grid={"edge_threshold": ["0.5", "0.95"], "risk_per_trade_fraction": ["0.005", "0.01"]},
                   metric="net_pnl_usdt", actor="olga", now=NOW)
    return sweep_submit(**(request | overrides))


def test_sweep_runs_every_point_and_ranks_them_by_the_metric(market, live_messages,  # noqa: F811
                                                             django_capture_on_commit_callbacks):
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)

    with django_capture_on_commit_callbacks(execute=True):
        parent = sweep(instrument, start, start + STEP * (HALF_DAY - 1))

    parent.refresh_from_db()
    points = list(parent.children.order_by("pk"))
    assert (parent.kind, parent.status, parent.error) == ("sweep", "done", "")
    assert parent.label == "sweep: 4 points by net PnL" and parent.bars_done == parent.bars_total == 4 * HALF_DAY
    assert parent.parameters["grid"] == {"edge_threshold": [0.5, 0.95], "risk_per_trade_fraction": ["0.00500",
                                                                                                   "0.01000"]}
    assert [p.label for p in points] == [
        "edge_threshold=0.5, risk_per_trade_fraction=0.00500", "edge_threshold=0.5, risk_per_trade_fraction=0.01000",
        "edge_threshold=0.95, risk_per_trade_fraction=0.00500", "edge_threshold=0.95, risk_per_trade_fraction=0.01000"]
    assert all(p.kind == "point" and p.status == "done" and p.start == start for p in points)
    assert [p.parameters["edge_threshold"] for p in points] == [0.5, 0.5, 0.95, 0.95]
    # The results are the points' own figures, best net PnL first.
    results = parent.metrics["results"]
    by_id = {p.pk: p for p in points}
    assert sorted(r["run_id"] for r in results) == sorted(by_id)
    assert [r["value"] for r in results] == sorted((float(p.metrics["net_pnl_usdt"]) for p in points), reverse=True)
    assert all(r["net_pnl_usdt"] == by_id[r["run_id"]].metrics["net_pnl_usdt"] for r in results)
    assert parent.metrics["best_run_id"] == results[0]["run_id"]
    assert len({r["value"] for r in results}) > 1       # the grid changed what the pipeline did
    # Ranked exactly once: a late duplicate call changes nothing.
    done = [e for e in backtest_events(live_messages(), parent.pk) if e["status"] == "done"]
    assert len(done) == 1
    assert jobs.children_finish(parent.pk, sweep_aggregate) is False
    assert BacktestRun.objects.get(pk=parent.pk).metrics == parent.metrics


def test_sweep_last_point_to_finish_ranks_whatever_the_order(market, django_capture_on_commit_callbacks):
    from execution.tasks_backtest import sweep_point_execute
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    with django_capture_on_commit_callbacks(execute=False):
        parent = sweep(instrument, start, start + STEP * 7, grid={"edge_threshold": ["0.5", "0.6"]})
    first, second = parent.children.order_by("pk")

    sweep_point_execute(second.pk)
    parent.refresh_from_db()
    assert (parent.status, parent.metrics) == ("running", {})

    sweep_point_execute(first.pk)
    parent.refresh_from_db()
    assert parent.status == "done" and len(parent.metrics["results"]) == 2


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"grid": {}}, "grid", "give at least one parameter"),
    ({"grid": {"edge_threshold": []}}, "grid.edge_threshold", "give a list of values"),
    ({"grid": {"slippage": ["1"]}}, "grid.slippage", "not an admin-editable trading parameter"),
    ({"grid": {"edge_threshold": ["0.5", "1.5"]}}, "grid.edge_threshold",
     "edge_threshold=1.5: Ensure this value is less than or equal to 1"),
    ({"grid": {"edge_threshold": ["0.5", "0.50"]}}, "grid", "edge_threshold=0.5 appears twice"),
    ({"grid": {"edge_threshold": [str(x / 100) for x in range(10, 19)],
               "rr_min": [str(x) for x in range(1, 9)]}}, "grid", "72 combinations; at most 64"),
    ({"metric": "luck"}, "metric", "unknown metric 'luck'"),
    ({"grid": {"history_bars": ["300", "5000"]}}, "start", "need 5000 before the start for the warm-up"),
])
def test_sweep_bad_grid_names_the_field_and_stores_nothing(market, django_capture_on_commit_callbacks,
                                                           change, field, message):
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)

    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(BacktestRefused) as refused:
            sweep(instrument, start, start + STEP * 7, **change)

    assert message in refused.value.errors[field]
    assert not BacktestRun.objects.exists() and not callbacks


def test_grid_points_vary_the_last_parameter_fastest():
    assert grid_points({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]


def _row(run_id, value, status="done"):
    return {"run_id": run_id, "value": value, "status": status}


@pytest.mark.parametrize(("metric", "expected"), [
    # More is better: the highest first; no value, then failed points, last.
    ("sharpe", [3, 1, 4, 2, 5]),
    # Less is better for the drawdown.
    ("max_drawdown_fraction", [1, 3, 4, 2, 5]),
])
def test_rank_key_orders_best_first_then_missing_then_failed(metric, expected):
    rows = [_row(1, 0.1), _row(2, None), _row(3, 0.5), _row(4, float("-inf") if metric == "sharpe" else 0.9),
            _row(5, None, status="failed")]

    assert [r["run_id"] for r in sorted(rows, key=rank_key(metric))] == expected


def test_result_row_keeps_an_infinite_metric_as_json_text_and_ranks_it_first():
    # A point without a losing trade has an infinite profit factor: JSON columns (MariaDB) refuse Infinity.
    points = [BacktestRun(pk=1, status="done", label="a", parameters={"edge_threshold": 0.5},
                          metrics={"profit_factor": 1.5}),
              BacktestRun(pk=2, status="done", label="b", parameters={"edge_threshold": 0.6},
                          metrics={"profit_factor": "inf"})]

    rows = sorted((result_row(p, ["edge_threshold"], "profit_factor") for p in points), key=rank_key("profit_factor"))

    assert [(r["run_id"], r["value"]) for r in rows] == [(2, "inf"), (1, 1.5)]
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows
