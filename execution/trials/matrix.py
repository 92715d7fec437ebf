"""The trial matrix: crash points x flows x sides, and each trial's seeded market. Pure: no Django, no I/O.

A flow is a scenario the execution process runs through the engine's own functions:
- market: a decision's market entry (services.position_open), its stop and ladder, then the first
  take-profit fills on the venue and a reconciliation run resizes the stop (place new, cancel old);
- limit: the same with a resting limit entry that the venue fills when the price comes to it;
- exit: from a protected position (set up before the crash point is armed), the first take-profit
  fills and the stop is resized as above, then the position is closed (protective.position_flatten).

Each of the issue's eight points names, per flow, the crash point (execution/crashpoints.py) that
kills the process there. Entry flows crash on the entry's leg; the exit flow on the exit's leg, and
at "entry filled, no stop" on the resized stop, whose fill (the take-profit's) is booked but whose
stop is not sent yet.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, Decimal

POINTS = ("intent_committed", "sent_no_reply", "reply_not_booked", "entry_filled_no_stop", "stop_sent_not_booked",
          "mid_partial_fill", "stop_cancel_replace", "db_mid_commit")
FLOWS = ("market", "limit", "exit")
SIDES = ("LONG", "SHORT")
TICK_SIZE = Decimal("0.1")
STEP_SIZE = Decimal("0.001")

POINT_TEXT = {
    "intent_committed": "after the intent commit, before the send",
    "sent_no_reply": "after the send, before the reply is read",
    "reply_not_booked": "after the reply, before the database write",
    "entry_filled_no_stop": "after the fill is booked, before the stop is sent",
    "stop_sent_not_booked": "after the stop is sent, before its database write",
    "mid_partial_fill": "mid partial fill (one fill written, uncommitted)",
    "stop_cancel_replace": "during a stop cancel-replace (new stop placed, old not cancelled)",
    "db_mid_commit": "database killed mid-commit (reply's rows written, not committed)",
}
_ENTRY = {
    "intent_committed": "order.committed:entry", "sent_no_reply": "venue.applied:entry",
    "reply_not_booked": "order.replied:entry", "entry_filled_no_stop": "protect.before_stop",
    "stop_sent_not_booked": "order.replied:sl", "mid_partial_fill": "fill.booked:entry",
    "stop_cancel_replace": "venue.cancel:sl", "db_mid_commit": "order.saved:entry",
}
_EXIT = {
    "intent_committed": "order.committed:exit", "sent_no_reply": "venue.applied:exit",
    "reply_not_booked": "order.replied:exit", "entry_filled_no_stop": "order.committed:sl",
    "stop_sent_not_booked": "order.replied:sl", "mid_partial_fill": "fill.booked:exit",
    "stop_cancel_replace": "venue.cancel:sl", "db_mid_commit": "order.saved:exit",
}
CRASH_AT = {"market": _ENTRY, "limit": _ENTRY, "exit": _EXIT}


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """One trial: where to crash, which flow, and its seeded market (prices and quantities as text)."""

    index: int
    point: str
    flow: str
    side: str
    seed: int
    price: str                   # the venue's price when the trial starts
    quantity: str                # the entry's size, base units
    stop_fraction: str           # the stop's distance from the entry, as a fraction of the price
    limit_offset_bps: int        # how far better than the market the limit entry rests
    partial_fraction: str        # share of the order the venue fills in the partial-fill trials
    rest_fills_while_down: bool  # the limit entry's remainder fills while the engine is down
    per_process_holder: bool = False   # engine lease holder: locks.holder_id() as run_execution, not a fixed name

    @property
    def crash_at(self) -> str:
        """Return the TRADINGBOT_CRASH_AT value of this trial."""
        return CRASH_AT[self.flow][self.point]

    @property
    def name(self) -> str:
        return f"{self.index}:{self.point}/{self.flow}/{self.side.lower()}"

    def limit_price(self) -> Decimal:
        """Return the limit entry's price: `limit_offset_bps` better than the market, on the tick grid."""
        sign = -1 if self.side == "LONG" else 1
        raw = Decimal(self.price) * (1 + sign * Decimal(self.limit_offset_bps) / 10_000)
        return (raw / TICK_SIZE).to_integral_value(ROUND_DOWN) * TICK_SIZE

    def as_dict(self) -> dict:
        return asdict(self)


def trial_spec(index: int, point: str, flow: str, side: str, seed: int, *,
               per_process_holder: bool = False) -> TrialSpec:
    """Return trial `index` of the given point, flow and side, its market drawn from (seed, index)."""
    if point not in POINTS or flow not in FLOWS or side not in SIDES:
        raise ValueError(f"unknown trial {point}/{flow}/{side}")
    rng = random.Random(f"{seed}:{index}")
    return TrialSpec(
        index=index, point=point, flow=flow, side=side, seed=seed,
        price=str(Decimal(rng.randrange(400_000, 800_000)) * TICK_SIZE),
        quantity=str(Decimal(rng.randrange(10, 51)) * STEP_SIZE),
        stop_fraction=rng.choice(("0.01", "0.015", "0.02", "0.025", "0.03")),
        limit_offset_bps=rng.choice((5, 10, 20, 50)),
        partial_fraction=rng.choice(("0.3", "0.4", "0.5", "0.6")),
        rest_fills_while_down=rng.random() < 0.5, per_process_holder=per_process_holder,
    )


def trial_specs(count: int, seed: int, points=POINTS, flows=FLOWS, *, per_process_holder: bool = False
                ) -> list[TrialSpec]:
    """Return `count` trials cycling through every (point, flow), the side alternating with each cycle."""
    combos = [(p, f) for p in points for f in flows]
    if not combos:
        raise ValueError("no crash point or flow selected")
    return [trial_spec(i, *combos[i % len(combos)], SIDES[(i // len(combos)) % 2], seed,
                       per_process_holder=per_process_holder) for i in range(count)]
