"""The router: what happens to a decision after the gates, by mode. Pure: no Django, no I/O, no clock.

SAFE analyses and logs. HYBRID holds a tradeable decision for an operator (approve, reject or
snooze) unless its confidence reaches the auto-approve level. ON sends it to execution. The
circuit breaker forces SAFE; the caller passes the mode in force.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from decisions.risk.gates import GateResult, first_block

# Outcomes, as stored in Decision.outcome.
EXECUTED, FLAT, BLOCKED, LOGGED, PAUSED, SKIPPED = "executed", "flat", "blocked", "logged", "paused", "skipped"
PENDING, REJECTED, EXPIRED = "pending", "rejected", "expired"
# Approval states, as stored in Decision.approval.
NOT_NEEDED, WAITING, APPROVED, AUTO = "", "pending", "approved", "auto"


@dataclass(frozen=True, slots=True)
class RouteInput:
    action: str                      # LONG, SHORT or FLAT
    reason: str
    gates: tuple[GateResult, ...]
    paused: bool
    has_size: bool                   # the sized quantity is above zero and the venue minimum
    mode: str                        # mode in force: SAFE, HYBRID or ON
    configured_mode: str             # the admin's mode; differs from `mode` while the breaker holds
    confidence: float | None
    auto_approve_confidence: float


class Route(NamedTuple):
    outcome: str
    approval: str
    reason: str


def route(inp: RouteInput) -> Route:
    """Return the outcome, the approval state and the reason of one decision."""
    if inp.action == "FLAT":
        return Route(FLAT, NOT_NEEDED, inp.reason)
    blocked = first_block(inp.gates)
    if blocked is not None:
        return Route(BLOCKED, NOT_NEEDED, f"blocked by {blocked.name}: {blocked.reason}")
    if inp.paused:
        return Route(PAUSED, NOT_NEEDED, f"{inp.reason}; bot paused")
    if not inp.has_size:
        return Route(SKIPPED, NOT_NEEDED, f"{inp.reason}; size rounds to zero or below min notional")
    if inp.mode == "ON":
        return Route(EXECUTED, NOT_NEEDED, inp.reason)
    if inp.mode == "HYBRID":
        confidence = inp.confidence if inp.confidence is not None else 0.0
        if confidence >= inp.auto_approve_confidence:
            return Route(EXECUTED, AUTO, f"{inp.reason}; auto-approved: confidence {confidence:.0%} "
                                         f">= {inp.auto_approve_confidence:.0%}")
        # One decimal more: 79.99 % must not read as "80 % < 80 %".
        return Route(PENDING, WAITING, f"{inp.reason}; waiting for approval (confidence {confidence:.1%} "
                                       f"< {inp.auto_approve_confidence:.1%})")
    breaker = " (circuit breaker)" if inp.mode != inp.configured_mode else ""
    return Route(LOGGED, NOT_NEEDED, f"{inp.reason}; mode {inp.mode}{breaker}, not executed")


def expires_at(as_of: datetime, ttl_minutes: int) -> datetime:
    """Return when a decision made at the close `as_of` stops being actionable."""
    return as_of + timedelta(minutes=ttl_minutes)


def is_expired(expiry: datetime | None, now: datetime) -> bool:
    """Return True when `now` is at or past the expiry (a decision without one never expires)."""
    return expiry is not None and now >= expiry


def in_entry_zone(price, low, high) -> bool:
    """Return True when `price` lies within [low, high]; a missing zone accepts any price."""
    return low is None or high is None or low <= price <= high
