"""django-q2 entry points of the execution stage."""
from django.utils import timezone

from decisions.tasks import engine_owns_clock
from execution.engine import cycle_run


def execution_run_all() -> str:
    """Check stops and targets of open positions and record equity; return the equity."""
    if engine_owns_clock():
        return "skipped: the replay/simulation engine owns the clock"
    return cycle_run(now=timezone.now().replace(second=0, microsecond=0), decide=False).equity_usdt


def reconcile_all() -> str:
    """Reconcile every venue account with its exchange (the engine loop also does it every 30 s)."""
    from execution.reconciliation import reconcile_accounts

    return "; ".join(str(run) for run in reconcile_accounts(now=timezone.now())) or "no venue accounts"


def _outcomes(outcomes: dict[str, str]) -> str:
    return "; ".join(f"{name}: {outcome}" for name, outcome in outcomes.items()) or "no venue accounts"


def funding_sync_all() -> str:
    """Book the funding payments the venue charged or paid each venue account."""
    from execution.funding import funding_sync_accounts

    return _outcomes(funding_sync_accounts(now=timezone.now()))


def equity_snapshot_all() -> str:
    """Record an equity point of each venue account from its wallet (execution_run_all records the paper one)."""
    from execution.funding import equity_snapshot_accounts

    return _outcomes(equity_snapshot_accounts(now=timezone.now().replace(second=0, microsecond=0)))


def drift_report_all(account: str | None = None, days: int | None = None) -> str:
    """Store the drift report of every account (or the one named) over the last `days` (DRIFT_DAYS) days."""
    from execution.drift import drift_reports_all

    outcomes = drift_reports_all(now=timezone.now(), account_name=account, days=days)
    return "; ".join(f"{name}: {outcome}" for name, outcome in outcomes.items()) or "no accounts"
