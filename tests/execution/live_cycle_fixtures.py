"""What the live-cycle tests share: a paper account of 10,000 USDT and the active BTCUSDT perpetual."""
from decimal import Decimal as D

import pytest

from decisions.selectors import trading_config_get
from execution.models import Account
from market.services import instrument_ensure


@pytest.fixture
def market():
    """Return (the paper account, the active BTCUSDT instrument, the trading configuration)."""
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    return account, instrument, trading_config_get()
