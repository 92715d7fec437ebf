"""Venue brokers: live needs explicit confirmation and keys; testnet reaches the emulator when configured."""
from decimal import Decimal as D

import pytest
from django.test import override_settings

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from execution.models import Account
from execution.venues import VenueNotConfigured, venue_broker


def _account(broker: str) -> Account:
    return Account.objects.create(name=broker, broker=broker, starting_balance_usdt=D("100"), balance_usdt=D("100"))


@pytest.mark.django_db
@override_settings(LIVE_TRADING_CONFIRMED=False, EXCHANGE_API_KEY="k" * 20, EXCHANGE_API_SECRET="s" * 20)
def test_venue_broker_live_without_confirmation_is_refused():
    with pytest.raises(VenueNotConfigured, match="LIVE_TRADING_CONFIRMED=true"):
        venue_broker(_account("live"))


@pytest.mark.django_db
@override_settings(EXCHANGE_API_KEY="", EXCHANGE_API_SECRET="")
def test_venue_broker_without_keys_names_where_to_set_them():
    with pytest.raises(VenueNotConfigured, match="has no API key and secret"):
        venue_broker(_account("testnet"))


@pytest.mark.django_db
def test_venue_broker_paper_account_is_not_a_venue():
    with pytest.raises(VenueNotConfigured, match="paper account"):
        venue_broker(_account("paper"))


@pytest.mark.django_db
def test_venue_broker_testnet_trades_on_the_configured_emulator(trading_emulator):
    with override_settings(EXCHANGE_API_URL=trading_emulator.url, EXCHANGE_API_KEY=DEFAULT_API_KEY,
                           EXCHANGE_API_SECRET=DEFAULT_API_SECRET):
        broker = venue_broker(_account("testnet"))

    assert broker.balance().wallet_usdt > 0
    assert broker.position_mode() == "one-way"
