"""Entries the venue refuses, seeded by side: -2019, -4164, -4131 leave a rejected order and no position.

The decision records why nothing was placed (its reason and a not_placed audit record); the order
keeps the venue's code and message. -4164 reaches the venue only when the books' filters are stale
(the venue raised its minimum): with today's filters the precision gate refuses it before sending.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from decisions.models import AuditRecord, Decision
from decisions.selectors import trading_config_get
from decisions.services import decision_execute
from execution.models import Order
from market.services import instrument_ensure
from tests.execution.faults.harness import SYMBOL
from tests.execution.faults.invariants import assert_books_match_venue

ORDER = "/fapi/v1/order"


def _refusal(rig, code: str, side: str) -> Decimal:
    """Set the venue up to refuse the entry with `code`; return the entry's quantity."""
    if code == "-2019":         # 4 BTC at 60 000 needs 12 000 USDT of margin at 20x; the wallet holds 10 000
        return Decimal("4.000")
    if code == "-4164":         # 0.001 BTC is 60 USDT, under the venue's 100; the books still say 5
        instrument_ensure(exchange="binanceusdm", exchange_symbol=SYMBOL, market_type="swap",
                          filters={"min_notional": "5"})
        return Decimal("0.001")
    # -4131: the book's price is more than 5 % from the mark on the side the market order takes
    price = rig.price()
    rig.set_price(price * (Decimal("1.06") if side == "LONG" else Decimal("0.94")), mark=price)
    return Decimal("0.010")


@pytest.fixture
def execute(rig, monkeypatch):
    """Return a function that executes a decision on the rig's venue, as the approval or the cycle does."""
    monkeypatch.setattr("execution.services.broker_for", lambda account, config, now=None: rig.broker)

    def run(decision: Decision) -> Decision:
        decision_execute(decision=decision, config=trading_config_get(), now=rig.now, account=rig.account,
                         reference_price=rig.price())
        decision.refresh_from_db()
        return decision
    return run


@pytest.mark.parametrize("code", ["-2019", "-4164", "-4131"])
@pytest.mark.parametrize("seed", [1, 2])
def test_entry_refused_by_the_venue_rejected_with_its_reason_and_no_position(rig, execute, seed, code):
    side = rig.rng.choice(["LONG", "SHORT"])
    quantity = _refusal(rig, code, side)
    rig.instrument.refresh_from_db()

    decision = execute(rig.decision(side, quantity))

    entry = Order.objects.get(leg="entry")
    assert (entry.status, entry.reject_reason[:5], entry.filled_quantity) == ("rejected", code, 0)
    assert rig.sent(ORDER) == [entry.client_order_id]          # sent once, never retried unchanged
    assert decision.outcome == Decision.Outcome.SKIPPED and code in decision.reason
    assert AuditRecord.objects.filter(subject=f"decision:{decision.pk}", body__action="not_placed").exists()
    assert rig.position() is None and rig.venue_amount() == 0
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [1])
def test_entry_under_the_known_minimum_never_reaches_the_venue(rig, execute, seed):
    decision = execute(rig.decision("LONG", Decimal("0.001")))

    assert decision.outcome == Decision.Outcome.SKIPPED and "below the minimum 100" in decision.reason
    assert rig.sent(ORDER) == [] and not Order.objects.exists()
    assert_books_match_venue(rig)
