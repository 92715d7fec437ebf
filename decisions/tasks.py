"""django-q2 entry points of the decision stage."""
import os

from django.utils import timezone

from execution.services import account_ensure
from decisions.services import decision_run
from market.models import Instrument


def decisions_run_all() -> int:
    """Evaluate every active instrument's last closed bar; return how many decisions exist for it."""
    if engine_owns_clock():
        return 0
    now = timezone.now()
    account = account_ensure()
    return sum(
        decision_run(instrument=instrument, now=now, account=account) is not None
        for instrument in Instrument.objects.filter(is_active=True)
    )


def engine_owns_clock() -> bool:
    """Return True when run_bot replays or simulates: its clock, not the wall clock, drives trading."""
    return os.environ.get("TRADINGBOT_CLOCK") == "engine"
