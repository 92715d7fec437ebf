"""Create or update the django-q2 schedules of the trading cycle (idempotent)."""
from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.models import Schedule


def schedules_ensure() -> list[str]:
    """Create or update every schedule by name; return their names."""
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
    }
    for name, (func, minutes) in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
    return list(wanted)


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules (candles every minute, decisions every N minutes, execution every minute)."

    def handle(self, *args, **options):
        for name in schedules_ensure():
            self.stdout.write(f"schedule ready: {name}")
