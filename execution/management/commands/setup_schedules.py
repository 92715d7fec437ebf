"""Create or update the django-q2 schedules of the trading cycle (idempotent)."""
from datetime import datetime, time, timedelta, timezone

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone as django_timezone
from django_q.models import Schedule

# The nightly jobs and their time of day (UTC): after midnight, once the day's last bars are stored.
DAILY = {
    "execution: drift report (live vs backtest)": ("execution.tasks.drift_report_all", time(0, 30)),
}


def next_daily_run(at: time, now: datetime) -> datetime:
    """Return the next moment after `now` at the time of day `at` (UTC)."""
    today = datetime.combine(now.astimezone(timezone.utc).date(), at, tzinfo=timezone.utc)
    return today if today > now else today + timedelta(days=1)


def schedules_ensure(now: datetime | None = None) -> list[str]:
    """Create or update every schedule by name; return their names.

    A daily schedule keeps its next run when it exists already (django-q2 moves it on by a day
    after each run); a new one first runs at its time of day after `now`.
    """
    now = now or django_timezone.now()
    wanted = {
        "market: update candles": ("market.tasks.candles_update_all", 1),
        "analytics: snapshot and flow": ("decisions.tasks.analytics_run_all", min(5, settings.DECISION_INTERVAL_MINUTES)),
        "decisions: analyse and decide": ("decisions.tasks.decisions_run_all", settings.DECISION_INTERVAL_MINUTES),
        "execution: exits, equity and reconciliation": ("execution.tasks.execution_run_all", 1),
        # A safety net: run_execution reconciles venue accounts every 30 s while it runs.
        "execution: reconcile venue accounts": ("execution.tasks.reconcile_all", 1),
        # Binance settles funding every 8 h (some symbols 4 h or 1 h); the job books what is new.
        "execution: venue funding payments": ("execution.tasks.funding_sync_all", 15),
        "execution: venue equity snapshots": ("execution.tasks.equity_snapshot_all", 5),
        # /ready and the health page judge the workers by this heartbeat; the self-test feeds the page.
        "dashboard: worker heartbeat": ("dashboard.tasks.heartbeat_beat", 1),
        "dashboard: health report": ("dashboard.tasks.health_run", 1),
    }
    for name, (func, minutes) in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
    for name, (func, at) in DAILY.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.DAILY, "repeats": -1},
            create_defaults={"func": func, "schedule_type": Schedule.DAILY, "repeats": -1,
                             "next_run": next_daily_run(at, now)},
        )
    return [*wanted, *DAILY]


class Command(BaseCommand):
    help = ("Create or update the django-q2 schedules (candles every minute, decisions every N minutes, execution "
            "every minute, the drift report nightly at 00:30 UTC).")

    def handle(self, *args, **options):
        for name in schedules_ensure():
            self.stdout.write(f"schedule ready: {name}")
