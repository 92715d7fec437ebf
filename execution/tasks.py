"""django-q2 entry points of the execution stage."""
from django.utils import timezone

from execution.engine import cycle_run


def execution_run_all() -> str:
    """Check stops and targets of open positions and record equity; return the equity."""
    return cycle_run(now=timezone.now().replace(second=0, microsecond=0), decide=False).equity_usdt
