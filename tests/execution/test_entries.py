"""Entries against the local USD-M emulator: rest, chase, fall back, give up, and book the position from fills."""
from datetime import timedelta
from decimal import Decimal as D

import pytest

from decisions.models import Decision
from decisions.selectors import trading_config_get
from decisions.services import decision_execute
from execution.entries import entries_to_sync, entry_intent_id, entry_working
from execution.models import Order, Position
from execution.oms import OrderIntent, client_order_id
from execution.orders import order_create_pending
from execution.reconciliation import reconciliation_run
from execution.services import position_open
from tests.execution.venue_rig import LADDER, SYMBOL, Venue, venue_rig


@pytest.fixture
def venue(trading_emulator, db) -> Venue:
    """Return the emulator's testnet account at 60 000 with limit entries: 2 s chase, 2 re-prices, 15 bps, fallback."""
    config = trading_config_get()
    config.entry_order_type, config.entry_chase_interval_seconds = "limit", 2
    config.entry_chase_max_reprices, config.entry_chase_max_drift_bps = 2, D("15")
    config.entry_market_fallback, config.trail_atr_multiple = True, None
    config.save()
    v = venue_rig(trading_emulator)
    v.market(D("60000"), 0)
    return v


def _decision(v: Venue, **overrides) -> Decision:
    """Create a LONG 0.010 BTC decision at 60 000: stop 59 400, ladder 60 600 / 61 200, zone 59 900-60 100."""
    base = dict(instrument=v.instrument, timeframe="15m", as_of=v.now - timedelta(minutes=15), action="LONG",
                mode="ON", outcome="executed", entry_price=D("60000"), stop_price=D("59400.0"),
                target_price=D("61200.0"), quantity=D("0.010"), take_profits=LADDER, entry_zone_low=D("59900"),
                entry_zone_high=D("60100"), reason="trend up")
    return Decision.objects.create(**(base | overrides))


def _entries(decision: Decision) -> list[tuple]:
    """Return the decision's entry orders, oldest first: (leg, status, quantity, limit price or None, filled)."""
    return [(o.leg, o.status, o.quantity, o.price, o.filled_quantity)
            for o in Order.objects.filter(decision=decision, leg__startswith="entry").order_by("created_at", "pk")]


def _open_limit(v: Venue, decision: Decision) -> None:
    assert position_open(decision=decision, account=v.account, broker=v.broker, now=v.now,
                         reference_price=D("60000"), order_type="limit") is None


def _position(decision: Decision) -> Position:
    return Position.objects.get(decision=decision)


def _part_filled_at_59999_9(v: Venue, decision: Decision) -> None:
    """Rest the entry, let the market touch it for 0.004 of 0.010, and tick: the position opens."""
    _open_limit(v, decision)
    v.emulator.partial_fills(D("0.4"), times=1)
    v.market(D("59990"), 0.5)
    v.tick(1)


SHORT = dict(action="SHORT", stop_price=D("60600.0"), target_price=D("58800.0"),
             take_profits=[{"price": "59400.0", "share": "0.5"}, {"price": "58800.0", "share": "0.5"}])


@pytest.mark.parametrize(("overrides", "side", "price"), [
    (dict(), "buy", D("59999.9")),        # a long bids one tick under the market
    (SHORT, "sell", D("60000.1")),        # a short offers one tick above
])
def test_entry_submit_limit_rests_one_tick_on_our_side_of_the_market(venue, overrides, side, price):
    decision = _decision(venue, **overrides)

    _open_limit(venue, decision)

    assert _entries(decision) == [("entry", "accepted", D("0.010"), price, D(0))]
    assert [(o.side, o.type, o.quantity, o.price) for o in venue.broker.open_orders(SYMBOL)] == [
        (side, "limit", D("0.010"), price)]
    assert not Position.objects.exists() and venue.venue_position() == 0
    assert entry_working(decision, venue.account)


def test_entry_submit_limit_is_post_only(venue):
    _open_limit(venue, _decision(venue))

    assert [p["timeInForce"] for p in venue.emulator.params("/fapi/v1/order")] == ["GTX"]
    assert Order.objects.get(leg="entry").type == "limit_maker"


def test_decision_execute_limit_entry_is_working_not_skipped(venue, monkeypatch):
    decision = _decision(venue)
    monkeypatch.setattr("execution.services.broker_for", lambda account, config, now=None: venue.broker)

    decision_execute(decision=decision, config=trading_config_get(), now=venue.now, account=venue.account,
                     reference_price=D("60000"))

    decision.refresh_from_db()
    assert (decision.outcome, decision.reason) == ("executed", "trend up")
    assert venue.venue_orders() == [("entry", "limit", D("0.010"), D("59999.9"))]


def test_entries_work_market_moved_up_reprices_as_entry1_after_the_interval(venue):
    decision = _decision(venue)
    _open_limit(venue, decision)
    venue.market(D("60030"), 1)

    early = venue.tick(1)
    due = venue.tick(2)

    [entry] = [o.client_order_id for o in Order.objects.filter(leg="entry")]
    assert (early.entries, due.entries) == ({entry: "wait"}, {entry: "reprice"})
    assert _entries(decision) == [("entry", "canceled", D("0.010"), D("59999.9"), D(0)),
                                  ("entry1", "accepted", D("0.010"), D("60029.9"), D(0))]
    assert venue.venue_orders() == [("entry1", "limit", D("0.010"), D("60029.9"))]


def test_entry_partial_fill_opens_the_position_with_the_decisions_exits(venue):
    decision = _decision(venue)

    _part_filled_at_59999_9(venue, decision)

    position = _position(decision)
    assert (position.quantity, position.entry_price, position.stop_price) == (D("0.004"), D("59999.9"),
                                                                               D("59400.0"))
    assert [t["price"] for t in position.take_profits] == ["60600.0", "61200.0"]
    assert venue.venue_orders() == [("entry", "limit", D("0.006"), D("59999.9")),
                                    ("sl", "stop_market", D("0.004"), D("59400.0")),
                                    ("tp1", "take_profit_market", D("0.002"), D("60600.0")),
                                    ("tp2", "take_profit_market", D("0.002"), D("61200.0"))]


def test_entry_partial_fill_then_reprice_keeps_the_part_and_grows_position_and_stop(venue):
    decision = _decision(venue)
    _part_filled_at_59999_9(venue, decision)
    venue.market(D("60030"), 1.5)

    venue.tick(2)
    reprice = _entries(decision)
    venue.market(D("60020"), 2.5)                  # touches entry1: the rest fills
    report = venue.tick(3)

    assert reprice == [("entry", "canceled", D("0.010"), D("59999.9"), D("0.004")),
                       ("entry1", "accepted", D("0.006"), D("60029.9"), D(0))]
    assert report.entries[f"decision {decision.pk}"].endswith("grown")
    position = _position(decision)
    # Average of 0.004 @ 59 999.9 and 0.006 @ 60 029.9.
    assert (position.quantity, position.initial_quantity, position.entry_price) == (D("0.010"), D("0.010"),
                                                                                     D("60017.9"))
    assert venue.venue_position() == D("0.010")
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]
    assert venue.venue_orders()[1:] == [("tp1", "take_profit_market", D("0.005"), D("60600.0")),
                                        ("tp2", "take_profit_market", D("0.005"), D("61200.0"))]


def _chase_up(v: Venue) -> list:
    """Walk the market up 10 a step while the entry rests: re-price at 2 s and 4 s, the budget ends at 6 s."""
    reports = []
    for seconds, price in ((2, D("60010")), (4, D("60020")), (6, D("60030"))):
        v.market(price, seconds - 0.5)
        reports.append(v.tick(seconds))
    return reports


def _chase_steps(report) -> list[str]:
    return [step for key, step in report.entries.items() if key.startswith("tb-")]


def test_entries_work_chase_ended_falls_back_to_market_for_the_rest(venue):
    decision = _decision(venue)
    _part_filled_at_59999_9(venue, decision)

    steps = [_chase_steps(r) for r in _chase_up(venue)]
    venue.tick(7)

    assert steps == [["reprice"], ["reprice"], ["market"]]
    assert _entries(decision) == [("entry", "canceled", D("0.010"), D("59999.9"), D("0.004")),
                                  ("entry1", "canceled", D("0.006"), D("60009.9"), D(0)),
                                  ("entry2", "canceled", D("0.006"), D("60019.9"), D(0)),
                                  ("entrymkt", "filled", D("0.006"), None, D("0.006"))]
    assert _position(decision).quantity == venue.venue_position() == D("0.010")
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]


def test_entries_work_market_fallback_is_protected_in_the_same_tick(venue):
    decision = _decision(venue)
    _part_filled_at_59999_9(venue, decision)

    _chase_up(venue)

    assert venue.venue_position() == D("0.010")
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]


def test_entries_work_fallback_off_gives_up_and_keeps_the_filled_part(venue):
    config = trading_config_get()
    config.entry_market_fallback = False
    config.save()
    decision = _decision(venue)
    _part_filled_at_59999_9(venue, decision)

    steps = [_chase_steps(r) for r in _chase_up(venue)]
    venue.tick(7)

    assert steps == [["reprice"], ["reprice"], ["give_up"]]
    assert not entry_working(decision, venue.account)
    assert _position(decision).quantity == venue.venue_position() == D("0.004")
    assert [o[0] for o in venue.venue_orders()] == ["sl", "tp1", "tp2"]
    assert venue.venue_stops() == [(D("0.004"), D("59400.0"))]


@pytest.mark.parametrize(("market", "step", "venue_entries"), [
    (D("60089.9"), "reprice", [("entry1", "limit", D("0.010"), D("60089.8"))]),  # 14.97 bps: inside 15
    (D("60100"), "give_up", []),                                                    # 16.65 bps: past 15
])
def test_entries_work_never_chases_beyond_max_drift(venue, market, step, venue_entries):
    decision = _decision(venue, entry_zone_low=None, entry_zone_high=None)
    _open_limit(venue, decision)
    venue.market(market, 1)

    report = venue.tick(2)

    assert _chase_steps(report) == [step]
    assert venue.venue_orders() == venue_entries
    assert not Order.objects.filter(leg="entrymkt").exists() and venue.venue_position() == 0


def test_entries_work_closed_position_cancels_its_working_entry(venue):
    decision = _decision(venue)
    _part_filled_at_59999_9(venue, decision)
    venue.emulator.venue.manual_close(SYMBOL)              # the trader closes it in the venue's UI
    venue.loop.reconcile_every = timedelta(0)              # the books learn it from the next reconciliation

    report = venue.tick(2)

    [entry] = Order.objects.filter(leg="entry")
    assert report.entries == {entry.client_order_id: "cancel: position closed"}
    assert _position(decision).status == "closed" and entry.status == "canceled"
    assert [o for o in venue.venue_orders() if o[0].startswith("entry")] == [] and venue.venue_position() == 0


def _venue_entries(v: Venue) -> list[tuple[str, str, D]]:
    """Return every non-reduce-only order of ours the venue ever accepted: (leg, status, executed)."""
    with v.emulator.venue.lock:
        orders = list(v.emulator.venue.state.orders.values())
    return [(o.client_order_id.rsplit("-", 1)[1], o.status, o.executed_qty) for o in orders
            if o.client_order_id.startswith("tb-") and not o.reduce_only]


def test_position_open_lost_reply_books_the_decisions_position_once(venue):
    decision = _decision(venue)
    venue.emulator.timeout_after_apply("/fapi/v1/order", stall_s=1.5, method="POST")   # client gives up at 1 s

    position_open(decision=decision, account=venue.account, broker=venue.broker, now=venue.now,
                  reference_price=D("60000"))
    for seconds in (2, 4):
        venue.tick(seconds)

    assert venue.emulator.faults.kinds("/fapi/v1/order")[0] == "stall-after"      # the one POST's reply was lost
    assert _venue_entries(venue) == [("entry", "FILLED", D("0.010"))]
    position = Position.objects.get(status="open")
    assert (position.decision, position.quantity, position.stop_price) == (decision, D("0.010"), D("59400.0"))
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]


def test_reconciliation_entry_whose_reply_was_never_read_becomes_the_decisions_position(venue):
    decision = _decision(venue)
    intent = OrderIntent(entry_intent_id(decision, venue.account), "entry", venue.instrument.symbol, "buy",
                         "market", D("0.010"))
    order, _ = order_create_pending(account=venue.account, instrument=venue.instrument, intent=intent,
                                    decision=decision, now=venue.now)
    # The venue applied the send; the process died before it read the reply.
    venue.broker.exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.010, None,
                                       {"clientOrderId": order.client_order_id})

    run = reconciliation_run(account=venue.account, broker=venue.broker, now=venue.at(1), trigger="startup",
                             clock=lambda: venue.at(1))

    assert [a["kind"] for a in run.actions][:3] == ["book_fill", "update_order_state", "adopt_position_change"]
    assert "from the fills of decision" in run.actions[2]["note"]
    position = Position.objects.get(status="open")
    # The decision's stop and ladder, not an external position's emergency stop 2 % under the entry (58 800).
    assert (position.decision, position.quantity, position.stop_price) == (decision, D("0.010"), D("59400.0"))
    assert [t["price"] for t in position.take_profits] == ["60600.0", "61200.0"]
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]
    assert _venue_entries(venue) == [("entry", "FILLED", D("0.010"))]


def test_position_open_market_entry_part_filled_then_expired_protects_the_filled_part(venue):
    decision = _decision(venue)
    venue.emulator.partial_fills(D("0.4"), times=1)

    position = position_open(decision=decision, account=venue.account, broker=venue.broker, now=venue.now,
                             reference_price=D("60000"))
    venue.tick(1)

    assert _venue_entries(venue) == [("entry", "EXPIRED", D("0.004"))]
    position.refresh_from_db()
    assert (position.quantity, position.initial_quantity, position.stop_price) == (D("0.004"), D("0.004"),
                                                                                    D("59400.0"))
    assert venue.venue_stops() == [(D("0.004"), D("59400.0"))]
    assert Order.objects.get(leg="entry").status == "expired" and not entry_working(decision, venue.account)


def test_entry_chase_fill_racing_the_cancel_is_kept_and_nothing_is_re_placed(venue):
    decision = _decision(venue)
    _open_limit(venue, decision)
    [entry] = Order.objects.filter(leg="entry")
    # The second slice reaches the book just before the chase's cancel: the venue answers -2011.
    venue.emulator.venue.fill_in_slices(entry.client_order_id, [D("0.004"), D("0.006")], cancel_races_last=True)
    venue.market(D("59990"), 0.5)
    venue.tick(1)
    venue.market(D("60030"), 1.5)

    venue.tick(2)
    venue.tick(3)

    assert entries_to_sync(venue.account) == []
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("filled", D("0.010"))
    assert not Order.objects.filter(leg="entry1").exists()
    assert _position(decision).quantity == venue.venue_position() == D("0.010")
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]


def test_entry_position_sync_takes_over_the_external_position_reconciliation_adopted(venue):
    decision = _decision(venue)
    client_id = client_order_id(entry_intent_id(decision, venue.account), "entry")
    # The reply is lost and the venue's order queries do not know the order yet; its trades show.
    venue.emulator.venue.ghost(client_id)
    venue.emulator.timeout_after_apply("/fapi/v1/order", stall_s=1.5, method="POST")
    position_open(decision=decision, account=venue.account, broker=venue.broker, now=venue.now,
                  reference_price=D("60000"))
    reconciliation_run(account=venue.account, broker=venue.broker, now=venue.at(1), clock=lambda: venue.at(1))
    adopted = Position.objects.get(status="open")
    emergency = (adopted.decision, adopted.stop_price, venue.venue_stops())
    venue.emulator.venue.unghost(client_id)

    for seconds in (3, 5, 7):
        venue.tick(seconds)

    assert emergency == (None, D("58800.0"), [(D("0.010"), D("58800.0"))])
    position = Position.objects.get(status="open")
    assert (position.pk, position.decision, position.quantity, position.stop_price) == (
        adopted.pk, decision, D("0.010"), D("59400.0"))
    assert venue.venue_stops() == [(D("0.010"), D("59400.0"))]
    assert venue.venue_orders()[1:] == [("tp1", "take_profit_market", D("0.005"), D("60600.0")),
                                        ("tp2", "take_profit_market", D("0.005"), D("61200.0"))]


def test_entries_work_post_only_refusal_keeps_the_chase_going(venue, monkeypatch):
    decision = _decision(venue)
    _open_limit(venue, decision)
    venue.market(D("60030"), 1.5)
    # A stale ticker (the price moved between the read and the order): the loop chases 60 030 ...
    monkeypatch.setattr(venue.broker, "market_price", lambda symbol: D("60030"))
    venue.emulator.set_price(SYMBOL, D("60020"))        # ... while the venue already trades under it

    refused = venue.tick(2)
    monkeypatch.undo()
    venue.market(D("60040"), 3.5)
    venue.tick(4)

    assert _chase_steps(refused) == ["reprice"]
    assert Order.objects.get(leg="entry1").status == "rejected"
    assert entry_working(decision, venue.account) or Position.objects.filter(decision=decision).exists()
