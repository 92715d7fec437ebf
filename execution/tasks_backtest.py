"""django-q2 entry points of backtests: one run, one walk-forward fold, one sweep point (docs/BACKTEST.md)."""
from __future__ import annotations

from execution.backtest import jobs, sweeps, walkforward


def _outcome(run) -> str:
    if run is None:
        return "skipped: another worker has it"
    return f"backtest {run.pk} {run.status}" + (f": {run.error}" if run.error else "")


def backtest_execute(run_id: int) -> str:
    """Run one queued backtest into its row."""
    return _outcome(jobs.backtest_execute(run_id))


def sweep_point_execute(run_id: int) -> str:
    """Run one sweep point; the last point to finish ranks them all."""
    return _outcome(sweeps.point_execute(run_id))


def walkforward_fold_execute(run_id: int) -> str:
    """Run one walk-forward fold (its in-sample candidates, then the chosen one out of sample)."""
    return _outcome(walkforward.fold_execute(run_id))
