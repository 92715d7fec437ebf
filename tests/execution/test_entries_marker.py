"""Order.position, the marker entries_to_sync reads by: set when entry fills are booked (opened, grown), set on
history by migration 0014, and never needed for the answer (an unmarked order is still matched by its decision)."""
from datetime import timedelta
from decimal import Decimal as D
from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from execution.entries import entries_to_sync, entry_position_sync
from execution.models import Account, Order, Position
from tests.execution.live_cycle_fixtures import market  # noqa: F401  (a fixture)
from tests.execution.test_entries_sync_reads import (NOW, YEAR_AGO, _closed_trade, _decision, _expected, _order,
                                                     _position)
from tradingbot.compiled_reads import _SHAPES

pytestmark = pytest.mark.django_db
entry_orders_mark = import_module("execution.migrations.0014_order_position_marker").entry_orders_mark


def _marks(*orders: Order) -> list[int | None]:
    return [Order.objects.get(pk=o.pk).position_id for o in orders]


def _migrate_marks() -> None:
    entry_orders_mark(apps, SimpleNamespace(connection=connection))


def test_entry_position_sync_open_marks_the_decisions_entry_orders_with_the_position(market):
    account, instrument, _config = market
    decision = _decision(instrument, NOW)
    refused_leg, filled_leg = _order(account, decision, "0"), _order(account, decision, "0.010", leg="entry1")
    exit_leg = _order(account, decision, "0", leg="sl")
    other = _order(account, _decision(instrument, NOW - timedelta(minutes=15)), "0.010")

    position, change = entry_position_sync(decision=decision, account=account, now=NOW)

    assert change == "opened"
    assert _marks(refused_leg, filled_leg) == [position.pk, position.pk]
    assert _marks(exit_leg, other) == [None, None]


def test_entry_position_sync_grow_marks_the_later_fill_and_the_read_sees_both_parts(market):
    account, instrument, _config = market
    decision = _decision(instrument, NOW)
    first = _order(account, decision, "0.004")
    position, _ = entry_position_sync(decision=decision, account=account, now=NOW)
    later = _order(account, decision, "0.006", leg="entry1")

    # The first order marked with the open position, the later one not yet: summed across both parts.
    due = entries_to_sync(account)
    grown, change = entry_position_sync(decision=decision, account=account, now=NOW + timedelta(minutes=1))

    assert [d.pk for d in due] == [decision.pk]
    assert (change, grown.pk, grown.initial_quantity) == ("grown", position.pk, D("0.010"))
    assert _marks(first, later) == [position.pk, position.pk]
    assert entries_to_sync(account) == []


def test_entry_position_sync_nothing_to_book_still_marks_an_unmarked_order_of_the_open_position(market):
    account, instrument, _config = market
    decision = _decision(instrument, NOW)
    order = _order(account, decision, "0.010")
    position = _position(account, decision, "open", "0.010", initial="0.010")    # booked before the marker

    _, change = entry_position_sync(decision=decision, account=account, now=NOW)

    assert change == "" and _marks(order) == [position.pk]


def test_entry_position_sync_refused_position_leaves_the_order_unmarked_and_due(market):
    account, instrument, _config = market
    _position(account, _decision(instrument, NOW - timedelta(hours=1)), "open", "0.010", initial="0.010")
    decision = _decision(instrument, NOW)
    order = _order(account, decision, "0.010")

    refused = entry_position_sync(decision=decision, account=account, now=NOW)

    assert refused == (None, "") and _marks(order) == [None]
    assert [d.pk for d in entries_to_sync(account)] == [decision.pk]


def test_entries_to_sync_unmarked_filled_entries_are_found_as_before_the_marker(market):
    account, instrument, _config = market
    # Written before the marker existed: nothing is marked, the decision's position is matched instead.
    unbooked = _decision(instrument, YEAR_AGO)
    _order(account, unbooked, "0.010", at=YEAR_AGO)
    short = _decision(instrument, NOW - timedelta(hours=2))
    _order(account, short, "0.004")
    _order(account, short, "0.006", leg="entry1")
    _position(account, short, "open", "0.004", initial="0.004")
    closed = _closed_trade(account, instrument, NOW - timedelta(days=3))

    found = [d.pk for d in entries_to_sync(account)]

    assert found == [unbooked.pk, short.pk] == _expected(account)
    assert closed.pk not in found


def test_entries_to_sync_order_marked_with_a_closed_position_is_never_due(market):
    account, instrument, _config = market
    decision = _decision(instrument, NOW)
    order = _order(account, decision, "0.010")
    position, _ = entry_position_sync(decision=decision, account=account, now=NOW)
    Position.objects.filter(pk=position.pk).update(status="closed", open_key=None, quantity=D("0"),
                                                   closed_at=NOW + timedelta(hours=1))
    late = _order(account, decision, "0.005", leg="entry1", at=NOW + timedelta(hours=2))

    found = entries_to_sync(account)

    assert found == [] == _expected(account)
    assert _marks(order, late) == [position.pk, None]


def test_entry_orders_mark_migration_marks_history_with_the_decisions_first_position(market):
    account, instrument, _config = market
    other_account = Account.objects.create(name="other", starting_balance_usdt=D("1000"), balance_usdt=D("1000"))
    closed = _decision(instrument, YEAR_AGO)
    closed_legs = [_order(account, closed, "0", at=YEAR_AGO), _order(account, closed, "0.010", leg="entry1",
                                                                      at=YEAR_AGO)]
    closed_exit = _order(account, closed, "0.010", leg="sl", at=YEAR_AGO)
    closed_position = _position(account, closed, "closed", "0", initial="0.010", at=YEAR_AGO)
    two = _decision(instrument, NOW - timedelta(hours=1))
    two_entry = _order(account, two, "0.010")
    first = _position(account, two, "open", "0.010", initial="0.010", keyed=False)
    _position(account, two, "open", "0.005", initial="0.005", keyed=False)
    unbooked = _order(account, _decision(instrument, NOW - timedelta(hours=2)), "0.010")
    elsewhere = _decision(instrument, NOW - timedelta(hours=3))
    elsewhere_entry = _order(other_account, elsewhere, "0.010")
    _position(account, elsewhere, "closed", "0", initial="0.010")
    before = [d.pk for d in entries_to_sync(account)]

    _migrate_marks()

    assert _marks(*closed_legs, closed_exit) == [closed_position.pk, closed_position.pk, None]
    assert _marks(two_entry, unbooked, elsewhere_entry) == [first.pk, None, None]
    assert [d.pk for d in entries_to_sync(account)] == before == _expected(account)


def test_entries_to_sync_year_of_marked_history_reads_in_one_compiled_query(market):
    account, instrument, _config = market
    for k in range(24):
        _closed_trade(account, instrument, YEAR_AGO + timedelta(days=15 * k))
    _migrate_marks()
    held = _decision(instrument, NOW - timedelta(minutes=30))
    _order(account, held, "0.010")
    entry_position_sync(decision=held, account=account, now=NOW)
    entries_to_sync(account)

    with CaptureQueriesContext(connection) as queries:
        found = entries_to_sync(account)

    assert found == [] and len(queries.captured_queries) == 1
    assert Order.objects.filter(account=account, leg="entry", position__isnull=True).count() == 0
    assert next(shape for key, shape in _SHAPES.items() if key[2] == "entries to sync") is not None
