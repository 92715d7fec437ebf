"""django-q2 entry points of the market app."""
from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from market.backfill import candles_update_active

DEFAULT_UPDATE_TIMEFRAMES = ("1m", "5m", "1h")


def candles_update_all() -> dict[str, int]:
    """Fetch the newest closed candles of every active exchange instrument; safe to run every minute."""
    timeframes = list(getattr(settings, "CANDLE_UPDATE_TIMEFRAMES", DEFAULT_UPDATE_TIMEFRAMES))
    added = candles_update_active(now_ms=int(timezone.now().timestamp() * 1000), timeframes=timeframes)
    if any(added.values()):
        # A bar may have just closed: analyse and decide on it now rather than at the next schedule.
        # Deciding is idempotent per bar, so a run with nothing new costs a read.
        async_task("decisions.tasks.decisions_run_all")
    return added
