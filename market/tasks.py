"""django-q2 entry points of the market app."""
from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from market.backfill import candles_update_active

DEFAULT_UPDATE_TIMEFRAMES = ("1m", "5m", "1h")


def candles_update_all() -> dict[str, int]:
    """Fetch the newest closed candles of every active exchange instrument; safe to run every minute."""
    timeframes = list(getattr(settings, "CANDLE_UPDATE_TIMEFRAMES", DEFAULT_UPDATE_TIMEFRAMES))
    return candles_update_active(now_ms=int(timezone.now().timestamp() * 1000), timeframes=timeframes)
