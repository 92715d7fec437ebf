"""manage.py kill_switch on the paper account: every position closed at the last price, SAFE and paused."""
from datetime import datetime, timezone
from decimal import ROUND_FLOOR
from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from decisions.selectors import trading_config_get
from execution.models import Account, Order, Position
from tests.market_fixtures import WARMUP_BARS


def _resting_limit(account, instrument, now) -> Order:
    """A paper buy limit far under the market: it rests on the paper venue's book."""
    from execution.oms import OrderIntent
    from execution.orders import order_place
    from execution.paper_venue import PaperVenue

    intent = OrderIntent("00000000000000000001", "entry", instrument.symbol, "buy", "limit_maker", D("0.010"),
                         price=D("50000"))
    order, _ = order_place(account=account, instrument=instrument, intent=intent, now=now,
                           broker=PaperVenue(account, trading_config_get()), reference_price=D("108000"))
    assert order.status == "accepted"
    return order


def test_kill_switch_command_flattens_paper_positions_cancels_resting_orders_and_holds_safe(btc_15m):
    instrument, frame = btc_15m
    opened = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[WARMUP_BARS]) / 1000, tz=timezone.utc)
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    position = Position.objects.create(account=account, instrument=instrument, side="LONG", open_key=instrument.pk,
                                       quantity=D("0.010"), initial_quantity=D("0.010"), entry_price=D("108000"),
                                       stop_price=D("107000"), target_price=D("110000"), opened_at=opened)
    resting = _resting_limit(account, instrument, opened)

    call_command("kill_switch", "--account", "paper", "--yes")

    position.refresh_from_db()
    last_close = D(frame["close"].iloc[-1])
    assert position.status == "closed" and position.quantity == 0
    # A market sell at the last close, 1 bp of paper slippage against us, floored to the 0.1 tick.
    expected = (last_close * (1 - D("0.0001")) / D("0.1")).to_integral_value(rounding=ROUND_FLOOR) * D("0.1")
    assert Order.objects.get(leg="exit").average_price == expected
    config = trading_config_get()
    assert (config.mode, config.paused) == ("SAFE", True)
    resting.refresh_from_db()
    assert (resting.status, resting.filled_quantity) == ("canceled", 0)


@pytest.mark.django_db
def test_kill_switch_command_unknown_account_names_the_ones_there():
    Account.objects.create(name="paper", starting_balance_usdt=D("1"), balance_usdt=D("1"))

    with pytest.raises(CommandError, match="no account 'main'; accounts: paper"):
        call_command("kill_switch", "--account", "main", "--yes")
