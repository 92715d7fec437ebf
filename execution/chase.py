"""The limit-entry chase: where to rest the entry, when to re-price it, when to stop. Pure: no Django.

An entry rests as a post-only limit one tick on our side of the market (a buy one tick under the
last price), so it pays the maker fee and never crosses. Every `interval_s` it is re-priced to the
market if the market moved away, as long as the new price stays within `max_drift_bps` of the
decision's entry price. When the re-prices are used up, or the market ran past the drift limit,
the rest is either taken at market (`market_fallback`, and only while the market is inside the
decision's entry zone and the drift limit: a trader does not chase a move that already happened)
or given up. The caller cancels, places and books; this module only decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

_BPS = Decimal("0.0001")
FALLBACK_LEG = "entrymkt"


@dataclass(frozen=True, slots=True)
class ChasePolicy:
    interval_s: int = 5
    max_reprices: int = 3
    max_drift_bps: Decimal = Decimal("15")
    market_fallback: bool = True


@dataclass(frozen=True, slots=True)
class ChaseState:
    """The resting entry and the market, as the caller sees them now."""

    side: str                       # "buy" or "sell"
    decision_price: Decimal         # the decision's planned entry
    zone_low: Decimal | None        # the decision's entry zone; None: no zone check
    zone_high: Decimal | None
    order_price: Decimal            # the working limit's price
    reprices: int                   # re-prices done so far
    order_age_s: float              # since the working limit was placed
    entry_age_s: float              # since the first entry order was placed
    market_price: Decimal           # last (or mark) price now
    tick_size: Decimal


@dataclass(frozen=True, slots=True)
class ChaseStep:
    action: str                     # "wait", "reprice", "market" or "give_up"
    price: Decimal | None = None    # the new limit price for "reprice"
    reason: str = ""


def passive_price(side: str, market_price: Decimal, tick_size: Decimal) -> Decimal:
    """Return the post-only price one tick on our side of `market_price`, on the tick grid."""
    if side == "buy":
        return (market_price / tick_size).to_integral_value(rounding=ROUND_FLOOR) * tick_size - tick_size
    return (market_price / tick_size).to_integral_value(rounding=ROUND_CEILING) * tick_size + tick_size


def drift_bps(side: str, decision_price: Decimal, price: Decimal) -> Decimal:
    """Return how far `price` is worse than the decision's entry for this side, in bps (negative: better)."""
    direction = 1 if side == "buy" else -1
    return direction * (price - decision_price) / decision_price / _BPS


def _in_zone(state: ChaseState) -> bool:
    if state.zone_low is None or state.zone_high is None:
        return True
    return state.zone_low <= state.market_price <= state.zone_high


def _end(state: ChaseState, policy: ChasePolicy, why: str) -> ChaseStep:
    drift = drift_bps(state.side, state.decision_price, state.market_price)
    if not policy.market_fallback:
        return ChaseStep("give_up", reason=f"{why}; market fallback is off")
    if drift > policy.max_drift_bps:
        return ChaseStep("give_up", reason=f"{why}; market {state.market_price} is {drift:.1f} bps past the "
                                           f"entry, over the {policy.max_drift_bps} bps limit")
    if not _in_zone(state):
        return ChaseStep("give_up", reason=f"{why}; market {state.market_price} outside the entry zone "
                                           f"[{state.zone_low}, {state.zone_high}]")
    return ChaseStep("market", reason=f"{why}; rest at market ({drift:.1f} bps from the entry)")


def chase_step(state: ChaseState, policy: ChasePolicy) -> ChaseStep:
    """Return what to do with the working entry now.

    The whole chase lasts at most `interval_s * (max_reprices + 1)`: a limit the market never
    traded through is not left resting after that, moved or not.
    """
    if state.order_age_s < policy.interval_s:
        return ChaseStep("wait", reason=f"resting {state.order_age_s:.0f} s of {policy.interval_s} s")
    budget_s = policy.interval_s * (policy.max_reprices + 1)
    if state.entry_age_s >= budget_s:
        return _end(state, policy, f"not filled in {budget_s} s")
    target = passive_price(state.side, state.market_price, state.tick_size)
    moved_away = target > state.order_price if state.side == "buy" else target < state.order_price
    if not moved_away:
        return ChaseStep("wait", reason=f"market {state.market_price} still at the order's price")
    if state.reprices >= policy.max_reprices:
        return _end(state, policy, f"re-prices used up ({policy.max_reprices})")
    if state.entry_age_s + policy.interval_s > budget_s:
        # A new limit would rest past the budget: end now rather than re-price for a partial interval.
        return _end(state, policy, f"no full interval left of {budget_s} s to re-price")
    drift = drift_bps(state.side, state.decision_price, target)
    if drift > policy.max_drift_bps:
        return _end(state, policy, f"re-price to {target} would be {drift:.1f} bps past the entry")
    return ChaseStep("reprice", target, f"market moved to {state.market_price}: re-price {state.order_price} -> "
                                        f"{target}")


def chase_leg(reprices: int) -> str:
    """Return the leg of the entry after `reprices` re-prices: entry, entry1, entry2 ..."""
    return "entry" if reprices == 0 else f"entry{reprices}"
