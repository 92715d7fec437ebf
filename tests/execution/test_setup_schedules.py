"""setup_schedules creates each django-q2 schedule once, by name, and repeats without duplicates."""
import pytest
from django.core.management import call_command
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


def test_setup_schedules_twice_keeps_one_schedule_per_job():
    call_command("setup_schedules")
    call_command("setup_schedules")

    jobs = dict(Schedule.objects.values_list("name", "func"))
    assert Schedule.objects.count() == len(jobs) == 7
    assert jobs["execution: reconcile venue accounts"] == "execution.tasks.reconcile_all"
    assert jobs["execution: venue funding payments"] == "execution.tasks.funding_sync_all"
    assert jobs["execution: venue equity snapshots"] == "execution.tasks.equity_snapshot_all"
    assert jobs["decisions: analyse and decide"] == "decisions.tasks.decisions_run_all"


def test_reconcile_all_task_without_venue_accounts_says_so():
    from execution.tasks import reconcile_all

    assert reconcile_all() == "no venue accounts"
