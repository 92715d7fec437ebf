"""Walk-forward: rolling windows, the in-sample choice per fold, one task per fold, one aggregation."""
from datetime import timedelta
from decimal import Decimal as D

import pytest

from execution.backtest import jobs
from execution.backtest.jobs import BacktestRefused
from execution.backtest.sweeps import metric_value
from execution.backtest.walkforward import DAY_MS, fold_windows, walkforward_aggregate, walkforward_submit
from execution.models import BacktestRun
from execution.tasks_backtest import walkforward_fold_execute
from tests.execution.backtest.jobs_fixtures import NOW, backtest_events, close_of, live_messages, market  # noqa: F401

STEP = timedelta(minutes=15)
STEP_MS = 15 * 60_000
WARMUP = 100                    # history_bars: leaves three days of the stored bars to decide on
TRAIN_BARS, TEST_BARS = 48, 24  # half a day in sample, a quarter out of sample


@pytest.mark.parametrize(("span_days", "train", "test", "folds"), [
    (10, 3, 2, 3),      # tests at days 3-5, 5-7, 7-9; 9-11 does not fit
    (5, 3, 2, 1),       # exactly one fold
    (4, 3, 2, 0),       # too short for any
    (9, 2, 1, 7),
])
def test_fold_windows_roll_by_the_test_span_and_tile_without_overlap(span_days, train, test, folds):
    end = span_days * DAY_MS - STEP_MS

    windows = fold_windows(0, end, train_ms=train * DAY_MS, test_ms=test * DAY_MS, step_ms=STEP_MS)

    assert len(windows) == folds
    for k, w in enumerate(windows):
        assert w.train_start_ms == k * test * DAY_MS
        assert w.train_end_ms - w.train_start_ms + STEP_MS == train * DAY_MS
        assert w.test_start_ms == w.train_end_ms + STEP_MS          # out of sample right after training
        assert w.test_end_ms - w.test_start_ms + STEP_MS == test * DAY_MS
        assert w.test_end_ms <= end
    for earlier, later in zip(windows, windows[1:]):
        assert later.test_start_ms == earlier.test_end_ms + STEP_MS  # next bar: no overlap, no hole


def walk(instrument, start, end, **overrides):
    request = dict(symbols=[instrument.exchange_symbol], timeframe="15m", start=start, end=end,
                   starting_equity=D("10000"), parameters={"history_bars": str(WARMUP)},
                   grid={"edge_threshold": ["0.5", "0.95"]}, train_days="0.5", test_days="0.25",
                   objective="net_pnl_usdt", actor="olga", now=NOW)
    return walkforward_submit(**(request | overrides))


@pytest.fixture
def span(market):
    """Two folds' worth of real bars: half a day of training, then two quarter days of testing."""
    instrument, frame = market
    start = close_of(frame, WARMUP - 1)
    return instrument, start, start + STEP * (TRAIN_BARS + 2 * TEST_BARS - 1)


def test_walkforward_folds_choose_in_sample_then_trade_out_of_sample(span, live_messages,  # noqa: F811
                                                                     django_capture_on_commit_callbacks):
    instrument, start, end = span

    with django_capture_on_commit_callbacks(execute=True):
        parent = walk(instrument, start, end)

    parent.refresh_from_db()
    folds = list(parent.children.order_by("pk"))
    assert (parent.kind, parent.status, parent.error, len(folds)) == ("walkforward", "done", "", 2)
    assert parent.bars_done == parent.bars_total == 2 * (2 * TRAIN_BARS + TEST_BARS)
    for k, fold in enumerate(folds):
        candidates = list(fold.children.order_by("pk"))
        test_start = start + STEP * (TRAIN_BARS + k * TEST_BARS)
        assert (fold.kind, fold.status, fold.start, fold.end) == ("fold", "done", test_start,
                                                                  test_start + STEP * (TEST_BARS - 1))
        assert [(c.kind, c.status, c.start, c.end) for c in candidates] == [
            ("point", "done", start + STEP * k * TEST_BARS, test_start - STEP)] * 2
        assert [c.parameters["edge_threshold"] for c in candidates] == [0.5, 0.95]
        # The fold traded the candidate with the best in-sample net PnL (the first on a tie).
        values = [metric_value(c.metrics, "net_pnl_usdt") for c in candidates]
        chosen = candidates[values.index(max(values))]
        assert fold.metrics["selection"]["chosen_run_id"] == chosen.pk
        assert fold.parameters == chosen.parameters and fold.label.startswith(f"fold {k + 1}: edge_threshold=")
    # The report: in sample against out of sample per fold, and the test windows stitched.
    rows = parent.metrics["folds"]
    assert [r["out_of_sample"]["net_pnl_usdt"] for r in rows] == [f.metrics["net_pnl_usdt"] for f in folds]
    assert [r["in_sample"]["net_pnl_usdt"] for r in rows] == [
        BacktestRun.objects.get(pk=f.metrics["selection"]["chosen_run_id"]).metrics["net_pnl_usdt"] for f in folds]
    stitched = parent.metrics["stitched"]
    assert D(stitched["net_pnl_usdt"]) == sum(D(f.metrics["net_pnl_usdt"]) for f in folds)
    assert parent.final_equity_usdt == D("10000") + sum(f.final_equity_usdt - D("10000") for f in folds)
    assert len(parent.equity) == 2 * TEST_BARS and len(parent.trades) == sum(len(f.trades) for f in folds)
    assert D(parent.metrics["out_of_sample"]["net_pnl_usdt"]) == D(stitched["net_pnl_usdt"])
    # Aggregated exactly once.
    assert [e["status"] for e in backtest_events(live_messages(), parent.pk)].count("done") == 1
    assert jobs.children_finish(parent.pk, walkforward_aggregate) is False
    assert BacktestRun.objects.get(pk=parent.pk).metrics["aggregated_at"] == parent.metrics["aggregated_at"]


def test_walkforward_last_fold_to_finish_aggregates(span, django_capture_on_commit_callbacks):
    instrument, start, end = span
    with django_capture_on_commit_callbacks(execute=False):
        parent = walk(instrument, start, end, grid={"edge_threshold": ["0.5"]})
    first, second = parent.children.order_by("pk")

    # Workers finish out of order: the second fold first, then the first.
    walkforward_fold_execute(second.pk)
    parent.refresh_from_db()
    assert parent.status == "running" and parent.metrics == {}

    walkforward_fold_execute(first.pk)
    parent.refresh_from_db()
    assert parent.status == "done" and [r["fold"] for r in parent.metrics["folds"]] == [1, 2]
    assert walkforward_fold_execute(first.pk) == "skipped: another worker has it"


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"train_days": "0"}, "train_days", "must be more than 0 days"),
    ({"test_days": "0.3"}, "test_days", "0.3 days is not a whole number of 15m bars"),
    ({"train_days": "many"}, "train_days", "'many' is not a number of days"),
    ({"train_days": "3"}, "end", "the range holds no fold"),
    ({"objective": "vibes"}, "objective", "unknown metric 'vibes'"),
    ({"grid": {"sl_atr_multiple": ["0.05"]}}, "grid.sl_atr_multiple", "greater than or equal to 0.1"),
    ({"parameters": {"edge_threshold": "2"}}, "parameters.edge_threshold", "less than or equal to 1"),
])
def test_walkforward_bad_input_names_the_field_and_stores_nothing(span, django_capture_on_commit_callbacks,
                                                                  change, field, message):
    instrument, start, end = span

    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(BacktestRefused) as refused:
            walk(instrument, start, end, **change)

    assert message in refused.value.errors[field]
    assert not BacktestRun.objects.exists() and not callbacks


def test_walkforward_fold_ending_while_another_stores_its_choice_aggregates_both_choices(
        span, monkeypatch, django_capture_on_commit_callbacks):
    instrument, start, end = span
    with django_capture_on_commit_callbacks(execute=False):
        parent = walk(instrument, start, end)
    first, second = parent.children.order_by("pk")
    real_run_into = jobs.run_into

    def run_into(run):
        run = real_run_into(run)
        if run.pk == first.pk:
            # Another worker's fold ends between this fold's out-of-sample end and the record of its choice.
            assert walkforward_fold_execute(second.pk) == f"backtest {second.pk} done"
        return run
    monkeypatch.setattr(jobs, "run_into", run_into)

    walkforward_fold_execute(first.pk)

    parent.refresh_from_db()
    assert parent.status == "done"
    for row, fold in zip(parent.metrics["folds"], parent.children.order_by("pk")):
        selection = fold.metrics["selection"]
        chosen = BacktestRun.objects.get(pk=selection["chosen_run_id"])
        assert (row["chosen_run_id"], row["values"]) == (chosen.pk, selection["values"])
        assert row["in_sample"]["net_pnl_usdt"] == chosen.metrics["net_pnl_usdt"]
