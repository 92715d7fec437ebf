"""Position.margin_usdt: the isolated margin behind a paper position's liquidation price, stored with it when the
position opens, released with the quantity an exit closes, and lost whole (price loss + clearance fee) when the
paper venue liquidates. Migration 0015 gives open positions the margin their stored price implies."""
from decimal import Decimal as D
from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from execution.brokers.paper import LadderExit
from execution.liquidation import liquidation_on_tick
from execution.models import Order, Position
from execution.paper_venue import PaperVenue
from execution.services import position_reduce
from tests.execution.live_cycle_fixtures import market  # noqa: F401  (a fixture)
from tests.execution.test_live_cycle_execution import M15, NOW, _decision, _entered

pytestmark = pytest.mark.django_db
open_margins_fill = import_module("execution.migrations.0015_position_margin").open_margins_fill


def _leveraged(market, quantity: str, max_leverage: str) -> Position:  # noqa: F811  (the fixture's value)
    account, instrument, config = market
    config.max_leverage = D(max_leverage)
    config.save()
    decision = _decision(instrument, quantity=D(quantity), take_profits=[{"price": "61000", "share": "0.5"},
                                                                         {"price": "62000", "share": "0.5"}])
    opened = _entered(account, instrument, config, decision)
    return Position.objects.select_related("instrument", "account").get(pk=opened.pk)


def test_paper_entry_stores_the_isolated_margin_its_liquidation_price_comes_from(market):  # noqa: F811
    account, _, _ = market
    position = _leveraged(market, "0.1", "20")

    # Margin = entry notional / max_leverage (the wallet, 10 000 less the entry fee, is larger).
    assert position.margin_usdt == (position.entry_price * D("0.1") / 20).quantize(D("0.00000001"))
    assert position.liquidation_price == liquidation_on_tick(
        "LONG", position.entry_price, D("0.1"), D("10000"), D("20"), D("0.004"), position.instrument.tick_size).price


def test_paper_entry_margin_is_capped_by_the_wallet(market):  # noqa: F811
    account, _, _ = market
    account.balance_usdt = D("100")     # the cycle's account object: less than 6000 / 3
    account.save()

    position = _leveraged(market, "0.1", "3")

    assert position.margin_usdt == D("100")


def test_liquidation_after_a_target_loses_exactly_the_margin_left_with_the_rest(market):  # noqa: F811
    account, _, config = market
    position = _leveraged(market, "0.1", "20")
    margin, entry, liquidation = position.margin_usdt, position.entry_price, position.liquidation_price
    venue = PaperVenue(account, config)

    half = position_reduce(position=position, broker=venue, now=NOW + M15,
                           exit_=LadderExit("tp1", "target", D("61000"), D("0.05")), config=config)
    # Half the quantity frees half the margin: the rest keeps the same liquidation price.
    assert half.margin_usdt == margin - (margin / 2).quantize(D("0.00000001"))
    realized_after_tp1 = half.realized_pnl_usdt

    closed = position_reduce(position=half, broker=venue, now=NOW + 2 * M15,
                             exit_=LadderExit("liq", "liquidation", liquidation, D("0.05")), config=config)

    liq_order = Order.objects.get(leg="liq")
    taker_fee = liq_order.fills.get().fee_usdt
    lost = realized_after_tp1 - closed.realized_pnl_usdt - taker_fee     # price loss + clearance fee
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "liquidation", liquidation)
    assert lost == margin - (margin / 2).quantize(D("0.00000001"))
    assert (entry - liquidation) * D("0.05") < lost       # the fee took the rest of it, not nothing
    assert closed.margin_usdt == 0


def test_migration_gives_open_positions_the_margin_their_liquidation_price_implies(market):  # noqa: F811
    account, instrument, config = market
    position = _leveraged(market, "0.1", "20")
    exact = position.margin_usdt
    Position.objects.filter(pk=position.pk).update(margin_usdt=None)
    closed = Position.objects.create(account=account, instrument=instrument, side="SHORT", quantity=D("0"),
                                     entry_price=D("60000"), stop_price=D("61000"), target_price=D("59000"),
                                     opened_at=NOW, status="closed", liquidation_price=D("79000"))

    open_margins_fill(apps, SimpleNamespace(connection=connection))

    position.refresh_from_db()
    # The price is on the tick, towards the entry: the margin it implies is at most a tick x quantity short.
    assert exact - position.instrument.tick_size * D("0.1") <= position.margin_usdt <= exact
    assert Position.objects.get(pk=closed.pk).margin_usdt is None
