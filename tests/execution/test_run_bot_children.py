"""run_bot starts the processes a machine needs: web, workers, and one execution loop per venue account."""
from decimal import Decimal as D

import pytest
from django.utils import timezone

from execution.management.commands.run_bot import Command
from execution.models import Account
from execution.secrets import account_keys_set


class _Child:
    def __init__(self, cmd, **_):
        self.cmd = cmd


@pytest.fixture
def popen(monkeypatch):
    started = []

    def fake(cmd, **kwargs):
        started.append(cmd)
        return _Child(cmd, **kwargs)

    monkeypatch.setattr("execution.management.commands.run_bot.subprocess.Popen", fake)
    return started


@pytest.mark.django_db
def test_run_bot_starts_one_execution_loop_per_venue_account_with_keys(popen):
    Account.objects.create(name="paper", starting_balance_usdt=D("1"), balance_usdt=D("1"))
    demo = Account.objects.create(name="demo", broker="testnet", starting_balance_usdt=D("1"), balance_usdt=D("1"))
    account_keys_set(account=demo, api_key="k" * 64, api_secret="s" * 64, actor="test", now=timezone.now())
    Account.objects.create(name="nokeys", broker="live", starting_balance_usdt=D("1"), balance_usdt=D("1"))

    Command()._start_children({"no_web": True, "no_workers": True, "no_execution": False},
                              engine_owns_clock=False)

    assert [cmd[-3:] for cmd in popen] == [["run_execution", "--account", "demo"]]


@pytest.mark.django_db
def test_run_bot_no_execution_starts_no_loop(popen):
    demo = Account.objects.create(name="demo", broker="testnet", starting_balance_usdt=D("1"), balance_usdt=D("1"))
    account_keys_set(account=demo, api_key="k" * 64, api_secret="s" * 64, actor="test", now=timezone.now())

    Command()._start_children({"no_web": True, "no_workers": True, "no_execution": True}, engine_owns_clock=False)

    assert popen == []
