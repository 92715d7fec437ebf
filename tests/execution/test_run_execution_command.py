"""manage.py run_execution: start-up check, reconciliation, ticks and a clean stop, against the emulator."""
from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from execution.models import Account, EngineLease, ReconciliationRun
from tests.emulator.fixtures import usdm_client


@pytest.fixture
def demo(trading_emulator, db):
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    with override_settings(EXCHANGE_API_URL=trading_emulator.url, EXCHANGE_API_KEY=DEFAULT_API_KEY,
                           EXCHANGE_API_SECRET=DEFAULT_API_SECRET):
        yield trading_emulator, account


def test_run_execution_reconciles_at_start_ticks_and_releases_the_lease(demo):
    emulator, account = demo

    call_command("run_execution", "--account", "demo", "--tick", "1", "--max-ticks", "2")

    assert ReconciliationRun.objects.filter(account=account, trigger="startup").count() == 1
    assert EngineLease.objects.get(account=account).holder == ""


def test_run_execution_refuses_when_the_venue_differs_from_the_configuration(demo):
    emulator, account = demo
    usdm_client(emulator).set_position_mode(True)  # hedge mode on the venue

    with pytest.raises(CommandError, match="position mode is hedge"):
        call_command("run_execution", "--account", "demo", "--tick", "1", "--max-ticks", "1")


def test_run_execution_refuses_a_tick_outside_one_to_three_seconds(demo):
    with pytest.raises(CommandError, match="between 1 and 3 seconds"):
        call_command("run_execution", "--account", "demo", "--tick", "0.2")
