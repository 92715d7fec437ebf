"""What every reconciliation action handler is given (the run's context) and returns (its outcome)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from execution.brokers.base import Broker, VenueOrder, VenuePosition
from execution.models import Account, Order, Position, ReconciliationRun
from execution.reconcile import VenueView
from execution.reconciliation.views import instrument_for
from market.models import Instrument


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one action: applied, unchanged, skipped, refused, failed or recorded."""

    status: str
    note: str = ""
    order: Order | None = None     # the order placed or acted on, for the caller; not stored


@dataclass(slots=True)
class Context:
    account: Account
    broker: Broker
    now: datetime
    run: ReconciliationRun
    venue: VenueView
    instruments: dict[str, Instrument] = field(default_factory=dict)

    def instrument(self, symbol: str) -> Instrument:
        """Return the instrument of venue symbol `symbol`."""
        return instrument_for(self.account, symbol, self.instruments)

    def order(self, client_order_id: str) -> Order | None:
        """Return the account's order with this client id, or None."""
        if not client_order_id:
            return None
        return (Order.objects.filter(account=self.account, client_order_id=client_order_id)
                .select_related("instrument").first())

    def open_position(self, symbol: str) -> Position | None:
        """Return the books' open position in `symbol`, or None."""
        return (Position.objects.filter(account=self.account, instrument=self.instrument(symbol),
                                        status=Position.Status.OPEN)
                .select_related("instrument", "account").first())

    def venue_order(self, client_order_id: str) -> VenueOrder | None:
        """Return the open order the venue listed with this client id, or None."""
        return next((o for o in self.venue.orders if client_order_id and o.client_order_id == client_order_id), None)

    def venue_position(self, symbol: str) -> VenuePosition | None:
        """Return the venue's position in `symbol`, or None when flat."""
        return next((p for p in self.venue.positions if p.symbol == symbol), None)

    @property
    def subject(self) -> str:
        return f"reconcile:{self.run.pk}"
