"""setup_schedules creates each django-q2 schedule once, by name, and repeats without duplicates."""
from datetime import datetime, time, timezone

import pytest
import time_machine
from django.core.management import call_command
from django_q.models import Schedule

from execution.management.commands.setup_schedules import next_daily_run, schedules_ensure

pytestmark = pytest.mark.django_db

DRIFT = "execution: drift report (live vs backtest)"


def test_setup_schedules_twice_keeps_one_schedule_per_job():
    call_command("setup_schedules")
    call_command("setup_schedules")

    jobs = dict(Schedule.objects.values_list("name", "func"))
    assert Schedule.objects.count() == len(jobs) == 10
    assert jobs["execution: reconcile venue accounts"] == "execution.tasks.reconcile_all"
    assert jobs["execution: venue funding payments"] == "execution.tasks.funding_sync_all"
    assert jobs["execution: venue equity snapshots"] == "execution.tasks.equity_snapshot_all"
    assert jobs["decisions: analyse and decide"] == "decisions.tasks.decisions_run_all"
    assert jobs[DRIFT] == "execution.tasks.drift_report_all"


def test_setup_schedules_runs_the_drift_report_daily_at_half_past_midnight_utc():
    with time_machine.travel(datetime(2026, 3, 1, 14, 5, tzinfo=timezone.utc), tick=False):
        call_command("setup_schedules")

    drift = Schedule.objects.get(name=DRIFT)
    assert (drift.schedule_type, drift.repeats) == (Schedule.DAILY, -1)
    assert drift.next_run == datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc)


def test_setup_schedules_again_keeps_the_drift_report_next_run():
    schedules_ensure(now=datetime(2026, 3, 1, 14, 5, tzinfo=timezone.utc))

    schedules_ensure(now=datetime(2026, 3, 5, 9, 0, tzinfo=timezone.utc))

    assert Schedule.objects.get(name=DRIFT).next_run == datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 3, 1, 0, 10, tzinfo=timezone.utc), datetime(2026, 3, 1, 0, 30, tzinfo=timezone.utc)),
    (datetime(2026, 3, 1, 0, 30, tzinfo=timezone.utc), datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc)),
    (datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc), datetime(2027, 1, 1, 0, 30, tzinfo=timezone.utc)),
])
def test_next_daily_run_is_the_next_time_of_day_after_now(now, expected):
    assert next_daily_run(time(0, 30), now) == expected


def test_reconcile_all_task_without_venue_accounts_says_so():
    from execution.tasks import reconcile_all

    assert reconcile_all() == "no venue accounts"
