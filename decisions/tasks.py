"""django-q2 entry points of the analytics and decision stages."""
import logging
import os
import time

from django.utils import timezone

from decisions.services import analytics_record, decision_run
from execution.services import account_ensure
from market.coverage import SeriesGapError
from market.models import Instrument

logger = logging.getLogger(__name__)
ATTEMPTS = 3
RETRY_DELAY_S = 2.0


def engine_owns_clock() -> bool:
    """Return True when run_bot replays or simulates: its clock, not the wall clock, drives trading."""
    return os.environ.get("TRADINGBOT_CLOCK") == "engine"


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


def analytics_run_all(*, sleep=time.sleep) -> int:
    """Record snapshot and flow of every active instrument as of now; return how many succeeded.

    Each instrument is tried up to ATTEMPTS times; every write is atomic, so a failed attempt
    leaves nothing half-saved and the next attempt (or the next run) starts clean.
    """
    if engine_owns_clock():
        return 0
    now = timezone.now().replace(microsecond=0)
    done = 0
    for instrument in Instrument.objects.filter(is_active=True):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                analytics_record(instrument=instrument, now=now)
                done += 1
                break
            except SeriesGapError as exc:  # retrying cannot fill a hole in the data: say which, skip
                logger.warning("analytics for %s refused: %s", instrument, exc)
                break
            except Exception:
                logger.exception("analytics for %s failed (attempt %d of %d)", instrument, attempt, ATTEMPTS)
                if attempt < ATTEMPTS:
                    sleep(RETRY_DELAY_S * attempt)
    return done
