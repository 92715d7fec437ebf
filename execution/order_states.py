"""The order state machine and the policy for orders whose submission outcome is unknown.

Pure: no Django, no I/O, no clock. Illegal transitions raise IllegalTransition; the shell logs and
records them. Times are epoch ms, quantities Decimal.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum


class OrderState(StrEnum):
    NEW = "new"                          # built and stored, not yet sent
    SUBMITTED = "submitted"              # sent, no answer yet
    ACCEPTED = "accepted"                # the venue acknowledged it (Binance NEW)
    TRIGGERED = "triggered"              # a conditional order fired
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"    # cancel sent, not yet confirmed
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"                  # IOC/GTX leftovers, GTD, the venue's own cancels
    UNKNOWN = "unknown"                  # the send timed out (-1007): it may or may not exist
    LOST = "lost"                        # acknowledged once, now not found three times; still watched


S = OrderState

# States a venue reports; NEW/SUBMITTED/PENDING_CANCEL/UNKNOWN/LOST exist only in the books.
VENUE_STATES = frozenset({S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED,
                          S.EXPIRED})
# No transition leaves these except a late fill (see TRANSITIONS).
TERMINAL_STATES = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
# The order may be working at the venue: reconciliation expects the venue to list it.
LIVE_STATES = frozenset({S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.UNKNOWN})
_FILLS = frozenset({S.PARTIALLY_FILLED, S.FILLED})

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED}),
    # A market order goes straight to filled; a stop can fire before its ack is processed.
    S.SUBMITTED: VENUE_STATES | {S.PENDING_CANCEL, S.UNKNOWN},
    S.ACCEPTED: (VENUE_STATES - {S.ACCEPTED}) | {S.PENDING_CANCEL, S.LOST},
    # Algo orders can be rejected after triggering (for example a reduce-only with no position left).
    S.TRIGGERED: (VENUE_STATES - {S.ACCEPTED, S.TRIGGERED}) | {S.PENDING_CANCEL, S.LOST},
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED,
                                   S.LOST}),
    # The cancel may be refused (back to working), lose the race to a fill, or succeed.
    S.PENDING_CANCEL: (VENUE_STATES - {S.REJECTED}) | {S.LOST},
    # Whatever the venue says after a timeout is the truth; SUBMITTED again is the one resend.
    S.UNKNOWN: VENUE_STATES | {S.SUBMITTED, S.LOST},
    # A lost order stays watched: the venue may list it again or report how it ended.
    S.LOST: VENUE_STATES - {S.REJECTED},
    # A fill can race the cancel or the expiry and be reported after it.
    S.CANCELED: _FILLS,
    S.EXPIRED: _FILLS,
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
}


class IllegalTransition(ValueError):
    """The books and the event disagree about an order's life: log it, keep the old state, reconcile."""

    def __init__(self, current: OrderState, target: OrderState):
        super().__init__(f"illegal order transition {current.value} -> {target.value}")
        self.current = current
        self.target = target


def transition(current: OrderState | str, target: OrderState | str) -> OrderState:
    """Return `target` if an order in `current` may move there; raise IllegalTransition if not.

    Repeating the current state is a no-op, not an error: venues and reconciliation repeat themselves.
    """
    current, target = OrderState(current), OrderState(target)
    if target != current and target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target


@dataclass(frozen=True, slots=True)
class VenueStateChange:
    state: OrderState
    fills_missing: bool          # the venue filled more than the books hold: fetch and book the trades


def apply_venue_state(current: OrderState | str, venue_state: OrderState | str, filled_qty_ours: Decimal,
                      filled_qty_venue: Decimal) -> VenueStateChange:
    """Return the state the venue's report moves an order to; raise IllegalTransition or ValueError if it cannot."""
    venue_state = OrderState(venue_state)
    if venue_state not in VENUE_STATES:
        raise ValueError(f"{venue_state.value!r} is not a state a venue reports")
    return VenueStateChange(transition(current, venue_state), filled_qty_venue > filled_qty_ours)


class UnknownOutcomeAction(StrEnum):
    APPLY_FOUND = "apply_found"          # the query found it: move to the state the venue reports
    QUERY_AGAIN = "query_again"
    RESEND_SAME_ID = "resend_same_id"
    DECLARE_LOST = "declare_lost"


@dataclass(frozen=True, slots=True)
class OutcomeQueries:
    """What the queries by client id have found since a send's outcome became unknown."""

    acknowledged: bool = False           # the venue acknowledged the order at some point (or -4116 said it exists)
    miss_times_ms: tuple[int, ...] = ()  # when a query found nothing (-2013)
    found: OrderState | None = None      # what the last successful query reported
    resent_at_ms: int | None = None      # when the one resend with the same client id went out

    def with_miss(self, ts_ms: int) -> OutcomeQueries:
        """Return the history with one more not-found answer at `ts_ms`."""
        return replace(self, miss_times_ms=(*self.miss_times_ms, ts_ms), found=None)

    def with_found(self, venue_state: OrderState | str) -> OutcomeQueries:
        """Return the history after a query found the order in `venue_state`."""
        return replace(self, found=OrderState(venue_state), acknowledged=True)

    def with_resend(self, ts_ms: int) -> OutcomeQueries:
        """Return the history after the resend with the same client id went out at `ts_ms`."""
        return replace(self, resent_at_ms=ts_ms)

    def with_duplicate(self) -> OutcomeQueries:
        """Return the history after the resend got -4116: the first send did arrive, so query it afresh."""
        return replace(self, acknowledged=True, miss_times_ms=())


@dataclass(frozen=True, slots=True)
class UnknownOutcomePolicy:
    """Decide the next step for an order whose send timed out (-1007) or otherwise has an unknown outcome.

    Paths, in order:
    - found by a query: APPLY_FOUND (the venue's state is the truth);
    - fewer than `misses` not-found answers at least `min_gap_ms` apart: QUERY_AGAIN
      (the venue can lag behind its own acknowledgement for a moment);
    - that many misses, never acknowledged and not yet resent: RESEND_SAME_ID, once. The order never
      reached the venue; the same client id makes a second arrival impossible (-4116 means it exists);
    - that many misses otherwise (acknowledged earlier, or after the resend): DECLARE_LOST. Lost orders
      keep being queried at a slower pace; a later answer moves them on (see TRANSITIONS[LOST]).
    """

    misses: int = 3
    min_gap_ms: int = 2000

    def next_action(self, queries: OutcomeQueries) -> UnknownOutcomeAction:
        """Return what to do next given the queries so far."""
        if queries.found is not None:
            return UnknownOutcomeAction.APPLY_FOUND
        if self.spaced_misses(queries) < self.misses:
            return UnknownOutcomeAction.QUERY_AGAIN
        if not queries.acknowledged and queries.resent_at_ms is None:
            return UnknownOutcomeAction.RESEND_SAME_ID
        return UnknownOutcomeAction.DECLARE_LOST

    def spaced_misses(self, queries: OutcomeQueries) -> int:
        """Return how many misses count: after the resend, if any, and at least `min_gap_ms` apart."""
        since_ms = queries.resent_at_ms
        count, last_ms = 0, None
        for ts_ms in sorted(queries.miss_times_ms):
            if since_ms is not None and ts_ms < since_ms:
                continue
            if last_ms is None or ts_ms - last_ms >= self.min_gap_ms:
                count, last_ms = count + 1, ts_ms
        return count
