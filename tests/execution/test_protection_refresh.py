"""The venue's exits follow the books: stop size after take-profits, breakeven and trail, missing targets."""
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from analytics.models import Snapshot
from decisions.models import Decision
from execution.brokers.base import BrokerError
from execution.entries import entry_position_sync, entry_submit
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.protective import leg_orders, protection_place, protection_refresh, stop_verify, trailed_stop
from execution.services import position_open
from market.services import instrument_ensure
from tests.execution.venue_rig import LADDER, SYMBOL, Venue, venue_rig


@pytest.fixture
def venue(trading_emulator, db) -> Venue:
    """Return the emulator's testnet account at 60 000 and its execution loop."""
    return venue_rig(trading_emulator)


def _long(v: Venue, *, protect: bool = True) -> Position:
    """Enter 0.010 BTC long at market at 60 000: stop 59 400, ladder 60 600 / 61 200, trail 1.5 ATR (750).

    `protect` False books the position from the entry's fills and places nothing else.
    """
    snapshot = Snapshot.objects.create(instrument=v.instrument, timeframe="15m", as_of=v.now, close=D("60000"),
                                       atr=500.0, trend="up", momentum="strong", features={})
    decision = Decision.objects.create(
        instrument=v.instrument, timeframe="15m", as_of=v.now, snapshot=snapshot, action="LONG", mode="ON",
        outcome="executed", entry_price=D("60000"), stop_price=D("59400.0"), target_price=D("61200.0"),
        quantity=D("0.010"), take_profits=LADDER, reason="trend up")
    if protect:
        return position_open(decision=decision, account=v.account, broker=v.broker, now=v.now,
                             reference_price=D("60000"), trail_atr_multiple=D("1.5"))
    entry_submit(decision=decision, account=v.account, broker=v.broker, now=v.now, reference_price=D("60000"))
    position, _ = entry_position_sync(decision=decision, account=v.account, now=v.now,
                                      trail_atr_multiple=D("1.5"))
    return position


def _cancels_watched(v: Venue, monkeypatch) -> list[tuple[str, list]]:
    """Record the venue's stops at every cancel the broker sends, before it goes out."""
    seen, cancel = [], v.broker.cancel

    def watched(client_order_id, symbol, *, conditional=False):
        seen.append((client_order_id.rsplit("-", 1)[1], v.stops()))
        return cancel(client_order_id, symbol, conditional=conditional)

    monkeypatch.setattr(v.broker, "cancel", watched)
    return seen


def test_protection_refresh_after_tp1_stop_shrinks_to_the_rest_at_breakeven(venue, monkeypatch):
    position = _long(venue)
    venue.tick(1)
    cancels = _cancels_watched(venue, monkeypatch)
    venue.emulator.set_price(SYMBOL, D("60650"))                  # TP1 (60 600) takes 0.005

    venue.tick(2)

    position.refresh_from_db()
    assert position.trail_distance == D("750.0")                  # 1.5 x the snapshot's ATR of 500
    assert (position.quantity, position.stop_price, position.best_price) == (D("0.005"), D("60000"), D("60650"))
    assert [t["filled"] for t in position.take_profits] == [True, False]
    assert venue.stops() == [(D("0.005"), D("60000.0"))]
    assert venue.targets() == [(D("0.005"), D("61200.0"))]
    # Each stop was cancelled while its replacement rested (the last one: the breakeven stop).
    assert [leg for leg, _ in cancels] == ["sl"] * len(cancels) and all(len(stops) == 2 for _, stops in cancels)
    assert (D("0.005"), D("60000")) in cancels[-1][1]


def test_protection_refresh_position_reduced_replaces_the_stop_then_cancels_the_old(venue, monkeypatch):
    position = _long(venue)
    cancels = _cancels_watched(venue, monkeypatch)
    Position.objects.filter(pk=position.pk).update(quantity=D("0.006"))     # an exit of 0.004, as booked

    notes = protection_refresh(position=position, broker=venue.broker, now=venue.at(1))

    old, new = leg_orders(position, "sl")
    assert (old.status, new.status, new.quantity, new.trigger_price) == ("canceled", "accepted", D("0.006"),
                                                                         D("59400.0"))
    assert notes[0].startswith(f"placed {new.client_order_id} ")
    assert notes[1] == f"cancelled {old.client_order_id} (canceled)"
    assert cancels[0] == ("sl", [(D("0.010"), D("59400.0")), (D("0.006"), D("59400.0"))])
    assert venue.stops() == [(D("0.006"), D("59400.0"))]


def test_protection_refresh_trails_by_the_minimum_step_and_never_loosens(venue, monkeypatch):
    position = _long(venue)
    venue.tick(1)
    venue.emulator.set_price(SYMBOL, D("60650"))
    venue.tick(2)
    cancels = _cancels_watched(venue, monkeypatch)
    stops = []

    # 61 000: trail 750 behind is 60 250, 250 past breakeven (the minimum step is 75).
    # 61 050: 60 300 is only 50 further: kept. 60 500: the price came back: kept.
    for seconds, mark in ((3, D("61000")), (4, D("61050")), (5, D("60500"))):
        venue.emulator.set_price(SYMBOL, mark)
        venue.tick(seconds)
        stops.append(venue.stops())

    position.refresh_from_db()
    assert stops == [[(D("0.005"), D("60250.0"))]] * 3
    assert (position.stop_price, position.best_price) == (D("60250.0"), D("61050"))
    assert [o.trigger_price for o in leg_orders(position, "sl")][-1] == D("60250.0")
    assert [(leg, len(stops)) for leg, stops in cancels] == [("sl", 2)]


def test_protection_refresh_places_targets_missing_after_a_crash(venue):
    position = _long(venue, protect=False)
    # The state a crash between the stop and the targets leaves: the stop rests, no target was ever sent.
    position.take_profits = []
    protection_place(position=position, broker=venue.broker, now=venue.now)
    position.refresh_from_db()
    before = venue.targets()

    report = venue.tick(1)

    assert before == [] and [t["price"] for t in position.take_profits] == ["60600.0", "61200.0"]
    assert venue.targets() == [(D("0.005"), D("60600.0")), (D("0.005"), D("61200.0"))]
    assert venue.stops() == [(D("0.010"), D("59400.0"))]
    assert [n.split(" ")[0] for n in report.refreshed[position.pk]] == ["placed", "placed"]


def test_protection_refresh_nothing_to_change_sends_nothing(venue):
    position = _long(venue)
    sent = venue.emulator.count("/fapi/v1/algoOrder")

    notes = protection_refresh(position=position, broker=venue.broker, now=venue.at(1), mark_price=D("60300"))

    assert notes == [] and venue.emulator.count("/fapi/v1/algoOrder") == sent


def _place_stop(v: Venue, position: Position, tag: str, trigger: D) -> Order:
    intent = OrderIntent(make_intent_id(tag), "sl", v.instrument.symbol, "sell", "stop_market", position.quantity,
                         trigger_price=trigger, reduce_only=True)
    order, _ = order_place(account=v.account, instrument=v.instrument, intent=intent, broker=v.broker,
                           reference_price=trigger, now=v.now)
    return order


def test_stop_verify_two_right_size_stops_keeps_the_books_and_cancels_the_stale_one(venue):
    position = _long(venue, protect=False)
    _place_stop(venue, position, "stale", D("59000.0"))          # older and listed first; not the books' stop
    protection_place(position=position, broker=venue.broker, now=venue.now)
    both = venue.stops()

    result = stop_verify(position=position, broker=venue.broker, now=venue.at(6))

    assert both == [(D("0.010"), D("59000.0")), (D("0.010"), D("59400.0"))]
    assert result.status == "ok" and venue.stops() == [(D("0.010"), D("59400.0"))]
    assert result.detail == f"stop {leg_orders(position, 'sl')[0].client_order_id} for 0.0100000000"


def test_stop_verify_after_a_failed_cancel_keeps_the_newest_revision(venue):
    position = _long(venue)
    venue.emulator.set_price(SYMBOL, D("60300"))
    Position.objects.filter(pk=position.pk).update(stop_price=D("60000"))       # breakeven in the books
    venue.emulator.fail("/fapi/v1/algoOrder", status=503, method="DELETE")       # the old stop's cancel fails
    with pytest.raises(BrokerError, match="-1001"):
        protection_refresh(position=position, broker=venue.broker, now=venue.at(1))
    both = sorted(venue.stops())

    stop_verify(position=position, broker=venue.broker, now=venue.at(6))

    assert both == [(D("0.010"), D("59400.0")), (D("0.010"), D("60000.0"))]
    assert venue.stops() == [(D("0.010"), D("60000.0"))]


@pytest.fixture
def long_row(db) -> Position:
    """A 0.010 long booked at 60 000 (stop 59 400, trail 750), TP1 filled; no venue needed."""
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=SYMBOL, market_type="swap")
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    return Position.objects.create(
        account=account, instrument=instrument, side="LONG", open_key=instrument.pk, quantity=D("0.005"),
        initial_quantity=D("0.010"), entry_price=D("60000"), stop_price=D("59400"), target_price=D("61200"),
        take_profits=[{**t, "filled": True} for t in LADDER[:1]] + [{**LADDER[1], "filled": False}],
        trail_distance=D("750"), opened_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(("fields", "mark", "breakeven", "expected"), [
    # Before TP1: the stop stays.
    (dict(take_profits=[{**t, "filled": False} for t in LADDER]), D("61000"), True, None),
    # After TP1: breakeven first while the trail is still under it ...
    (dict(), D("60650"), True, D("60000")),
    (dict(trail_distance=None), D("61000"), True, D("60000")),
    (dict(stop_price=D("59990")), D("60100"), True, D("60000")),     # the first move, 10 < 75: any size
    # ... then the trail, on the tick grid (floor for a long), by at least 10 % of its distance.
    (dict(stop_price=D("60000")), D("61000.05"), True, D("60250.0")),
    (dict(stop_price=D("60250"), best_price=D("61000")), D("61050"), True, None),   # 50 < 75
    (dict(stop_price=D("60250"), best_price=D("61000")), D("61075"), True, D("60325")),
    (dict(stop_price=D("60250"), best_price=D("61000")), D("60500"), True, None),   # never loosens
    # Without breakeven the trail alone moves it.
    (dict(), D("60650"), False, D("59900")),
    # A short mirrors it: breakeven, then the trail above the best (lowest) mark, rounded up.
    (dict(side="SHORT", stop_price=D("60600")), D("59350"), True, D("60000")),
    # ... and rounded away from the market: 58 999.95 + 750 = 59 749.95 goes up to 59 750.0.
    (dict(side="SHORT", stop_price=D("60000")), D("58999.95"), True, D("59750.0")),
])
def test_trailed_stop_table(long_row, fields, mark, breakeven, expected):
    Position.objects.filter(pk=long_row.pk).update(**fields)
    position = Position.objects.get(pk=long_row.pk)

    assert trailed_stop(position, mark, breakeven=breakeven) == expected
