"""Walk-forward folds finishing at the same moment on several workers: one aggregation, of every fold.

The parent's row lock (jobs.children_finish) is what makes the last fold aggregate exactly once;
SQLite serialises writers anyway, so the race is only real on MariaDB, the database CI runs on.
"""
import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from execution.backtest import jobs
from execution.backtest.walkforward import walkforward_submit
from execution.models import BacktestRun
from execution.tasks_backtest import walkforward_fold_execute
from tests.execution.backtest.jobs_fixtures import NOW, close_of, market  # noqa: F401

STEP = timedelta(minutes=15)
WARMUP = 100                    # history_bars
TRAIN_BARS, TEST_BARS = 48, 24  # half a day in sample, a quarter out of sample
FOLDS = 4
BARRIER_TIMEOUT_S = 300         # only so a broken worker fails the test instead of hanging it


@pytest.fixture
def queued_walkforward(market, monkeypatch):  # noqa: F811
    """Store a walk-forward of FOLDS folds; return it and the fold tasks it queued, not yet run."""
    if connection.vendor != "mysql":
        pytest.skip("row locks under concurrent workers need MariaDB (CI runs it; DATABASE_URL=mysql://...)")
    queued = []
    # The workers are this test's threads: the queue only records what it was given.
    monkeypatch.setattr(jobs, "async_task", lambda task, run_id, **options: queued.append((task, run_id)))
    instrument, frame = market
    start = close_of(frame, WARMUP - 1)
    parent = walkforward_submit(symbols=[instrument.exchange_symbol], timeframe="15m", start=start,
                                end=start + STEP * (TRAIN_BARS + FOLDS * TEST_BARS - 1), starting_equity=D("10000"),
                                parameters={"history_bars": str(WARMUP)}, grid={"edge_threshold": ["0.5"]},
                                train_days="0.5", test_days="0.25", objective="net_pnl_usdt", actor="olga", now=NOW)
    return parent, queued


def finish_together(monkeypatch, workers: int) -> tuple[list[bool], list[int]]:
    """Make every fold's call of children_finish wait until all `workers` folds reach it; return what happened.

    Returns each call's result (True for the one that aggregated) and, for every aggregation that
    ran, the parent it summed up.
    """
    barrier = threading.Barrier(workers, timeout=BARRIER_TIMEOUT_S)
    real = jobs.children_finish
    results, aggregated = [], []

    def counted(aggregate):
        def run(parent, children):
            aggregated.append(parent.pk)
            aggregate(parent, children)
        return run

    def together(parent_id, aggregate):
        barrier.wait()
        results.append(real(parent_id, counted(aggregate)))
        return results[-1]
    monkeypatch.setattr(jobs, "children_finish", together)
    return results, aggregated


@pytest.mark.django_db(transaction=True)
def test_walkforward_folds_finishing_at_once_aggregate_the_parent_exactly_once(queued_walkforward, monkeypatch):
    parent, queued = queued_walkforward
    assert [task for task, _ in queued] == ["execution.tasks_backtest.walkforward_fold_execute"] * FOLDS
    results, aggregated = finish_together(monkeypatch, FOLDS)
    outcomes, errors = {}, []

    def worker(fold_id: int) -> None:
        try:
            outcomes[fold_id] = walkforward_fold_execute(fold_id)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()     # this thread's own connection

    threads = [threading.Thread(target=worker, args=(fold_id,)) for _, fold_id in queued]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    folds = list(parent.children.order_by("pk"))
    assert outcomes == {fold.pk: f"backtest {fold.pk} done" for fold in folds}
    # Every fold reached the lock; exactly one saw them all finished and summed them up.
    assert sorted(results) == [False] * (FOLDS - 1) + [True] and aggregated == [parent.pk]
    parent.refresh_from_db()
    assert (parent.status, parent.error) == ("done", "")
    assert parent.bars_done == parent.bars_total == FOLDS * (TRAIN_BARS + TEST_BARS)
    rows = parent.metrics["folds"]
    assert [(r["fold"], r["run_id"], r["status"]) for r in rows] == [(k, f.pk, "done") for k, f in enumerate(folds, 1)]
    assert [r["out_of_sample"]["net_pnl_usdt"] for r in rows] == [f.metrics["net_pnl_usdt"] for f in folds]
    assert [r["chosen_run_id"] for r in rows] == [f.metrics["selection"]["chosen_run_id"] for f in folds]
    assert D(parent.metrics["stitched"]["net_pnl_usdt"]) == sum(D(f.metrics["net_pnl_usdt"]) for f in folds)
    assert parent.final_equity_usdt == D("10000") + sum(f.final_equity_usdt - D("10000") for f in folds)
    assert len(parent.equity) == FOLDS * TEST_BARS and len(parent.trades) == sum(len(f.trades) for f in folds)
    assert sorted(t["fold"] for t in parent.trades) == sorted(
        k for k, f in enumerate(folds, 1) for _ in f.trades)
    # A fold task delivered again changes nothing.
    assert walkforward_fold_execute(folds[0].pk) == "skipped: another worker has it"
    assert BacktestRun.objects.get(pk=parent.pk).metrics["aggregated_at"] == parent.metrics["aggregated_at"]
