"""entries_to_sync, the read every engine cycle makes for entries to book: which trades it returns whatever the
account's history holds, a stuck entry from long ago among a year of closed trades included."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import count

import pytest

from decisions.models import Decision
from execution.entries import entries_to_sync, entry_position_sync
from execution.models import Account, Fill, Order, Position
from market.services import instrument_ensure
from tests.execution.live_cycle_fixtures import market  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
YEAR_AGO = NOW - timedelta(days=365)
_ids = count(1)


def _decision(instrument, as_of: datetime) -> Decision:
    return Decision.objects.create(instrument=instrument, timeframe="15m", as_of=as_of, action="LONG", mode="ON",
                                   outcome="executed", entry_price=D("60000"), stop_price=D("59000"),
                                   target_price=D("61000"), quantity=D("0.010"),
                                   take_profits=[{"price": "61000", "share": "1"}], reason="test")


def _order(account, decision, filled: str, leg: str = "entry", at: datetime = NOW, instrument=None) -> Order:
    """An order of `decision` on `account` that filled `filled` (with its fill when above zero)."""
    n = next(_ids)
    order = Order.objects.create(account=account, instrument=instrument or decision.instrument, decision=decision,
                                 client_order_id=f"t-{n}", intent_id=f"i{n}", leg=leg, side="buy", type="market",
                                 quantity=D("0.010"), status="filled" if D(filled) else "rejected",
                                 filled_quantity=D(filled), created_at=at, updated_at=at)
    if D(filled):
        Fill.objects.create(order=order, trade_id=f"f-{n}", ts=at, price=D("60000"), quantity=D(filled),
                            fee_usdt=D("0.24"))
    return order


def _position(account, decision, status: str, quantity: str, initial: str | None = None, at: datetime = NOW,
              instrument=None, keyed: bool = True) -> Position:
    """A position of `decision`; `keyed=False` leaves an open one without its one-per-instrument key, so that
    states the books never make (two open positions of one decision) can be stored."""
    instrument = instrument or decision.instrument
    return Position.objects.create(
        account=account, instrument=instrument, decision=decision, side="LONG", status=status,
        open_key=instrument.pk if status == "open" and keyed else None, quantity=D(quantity),
        initial_quantity=None if initial is None else D(initial), entry_price=D("60000"), stop_price=D("59000"),
        target_price=D("61000"), opened_at=at, closed_at=at + timedelta(hours=1) if status == "closed" else None)


def _closed_trade(account, instrument, at: datetime) -> Decision:
    decision = _decision(instrument, at)
    _order(account, decision, "0.010", at=at)
    _order(account, decision, "0.010", leg="sl", at=at + timedelta(hours=1))
    _position(account, decision, "closed", "0", initial="0.010", at=at)
    return decision


def _expected(account: Account) -> list[int]:
    """The trades the books have not caught up with, from the rows one by one: the read's specification."""
    entries = Order.objects.filter(account=account, leg__startswith="entry", filled_quantity__gt=0,
                                   decision__isnull=False)
    out = []
    for decision_id in sorted(set(entries.values_list("decision_id", flat=True))):
        filled = sum(o.filled_quantity for o in entries.filter(decision_id=decision_id))
        positions = list(Position.objects.filter(account=account, decision_id=decision_id).order_by("pk"))
        if not positions:
            out.append(decision_id)
        elif all(p.status == "open" for p in positions) and filled > (positions[0].initial_quantity
                                                                      or positions[0].quantity):
            out.append(decision_id)
    return out


def test_entries_to_sync_stuck_entry_from_a_year_ago_is_found_among_a_year_of_closed_trades(market):
    account, instrument, _config = market
    blocker = _decision(instrument, YEAR_AGO - timedelta(hours=1))
    held = _position(account, blocker, "open", "0.010", initial="0.010", at=YEAR_AGO - timedelta(hours=1))
    stuck = _decision(instrument, YEAR_AGO)
    _order(account, stuck, "0.010", at=YEAR_AGO)
    # Filled while another trade held the instrument: the books refused it its position then.
    refused = entry_position_sync(decision=stuck, account=account, now=YEAR_AGO)
    Position.objects.filter(pk=held.pk).update(status="closed", open_key=None, quantity=D("0"),
                                               closed_at=YEAR_AGO + timedelta(hours=2))
    history = [_closed_trade(account, instrument, YEAR_AGO + timedelta(days=15 * k)) for k in range(1, 25)]

    found = entries_to_sync(account)

    assert refused == (None, "") and len(history) == 24
    assert [d.pk for d in found] == [stuck.pk] == _expected(account)
    position, change = entry_position_sync(decision=found[0], account=account, now=NOW)
    assert (change, position.decision_id) == ("opened", stuck.pk)
    assert entries_to_sync(account) == []


def test_entries_to_sync_every_position_state_returns_the_unbooked_and_the_short_booked_trades(market):
    account, instrument, _config = market
    other_instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    other_account = Account.objects.create(name="other", starting_balance_usdt=D("1000"), balance_usdt=D("1000"))
    at = iter(NOW - timedelta(minutes=15 * k) for k in range(100, 0, -1))
    d = {}
    # Entries filled, no position: to book (an old one, a recent one, one filled over three legs).
    d["unbooked"] = _decision(instrument, next(at))
    _order(account, d["unbooked"], "0.010", at=YEAR_AGO)
    d["unbooked legs"] = _decision(instrument, next(at))
    for leg, filled in (("entry", "0.004"), ("entry1", "0"), ("entry2", "0.003"), ("entrymkt", "0.003")):
        _order(account, d["unbooked legs"], filled, leg=leg)
    # Nothing filled, or only an exit leg: nothing to book.
    d["refused entry"] = _decision(instrument, next(at))
    _order(account, d["refused entry"], "0")
    d["exit only"] = _decision(instrument, next(at))
    _order(account, d["exit only"], "0.010", leg="sl")
    # Open positions: booked as filled (nothing), booked short of a later fill (to grow), the entry
    # quantity unset or zero (the quantity counts).
    d["open booked"] = _decision(instrument, next(at))
    _order(account, d["open booked"], "0.010")
    _position(account, d["open booked"], "open", "0.006", initial="0.010")
    d["open short"] = _decision(other_instrument, next(at))
    _order(account, d["open short"], "0.004")
    _order(account, d["open short"], "0.006", leg="entry1")
    _position(account, d["open short"], "open", "0.004", initial="0.004")
    d["open no initial"] = _decision(instrument, next(at))
    _order(account, d["open no initial"], "0.010")
    _position(account, d["open no initial"], "open", "0.008", keyed=False)
    d["open zero initial"] = _decision(instrument, next(at))
    _order(account, d["open zero initial"], "0.010")
    _position(account, d["open zero initial"], "open", "0.008", initial="0", keyed=False)
    # Closed trades are done, a fill after the close too; a closed position of the decision ends it.
    d["closed"] = _closed_trade(account, instrument, next(at))
    d["closed, late fill"] = _closed_trade(account, instrument, next(at))
    _order(account, d["closed, late fill"], "0.005", leg="entry1")
    d["open and closed"] = _decision(instrument, next(at))
    _order(account, d["open and closed"], "0.020")
    _position(account, d["open and closed"], "closed", "0", initial="0.010")
    _position(account, d["open and closed"], "open", "0.010", initial="0.010", keyed=False)
    # Two open positions of one decision: the first (by id) is the books' one.
    for name, quantities in (("first open short", ("0.005", "0.010")), ("first open booked", ("0.010", "0.005"))):
        d[name] = _decision(instrument, next(at))
        _order(account, d[name], "0.010")
        for quantity in quantities:
            _position(account, d[name], "open", quantity, initial=quantity, keyed=False)
    # Another account's entry, and an entry without a decision, are not this account's trades to book.
    d["other account"] = _decision(instrument, next(at))
    _order(other_account, d["other account"], "0.010")
    _order(account, None, "0.010", instrument=instrument)

    found = [x.pk for x in entries_to_sync(account)]

    names = {v.pk: k for k, v in d.items()}
    assert [names[pk] for pk in found] == ["unbooked", "unbooked legs", "open short", "open no initial",
                                           "open zero initial", "first open short"]
    assert found == _expected(account)
    assert [names[x.pk] for x in entries_to_sync(other_account)] == ["other account"]
