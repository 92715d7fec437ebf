"""Order intents, deterministic client order ids and the precision gate.

Pure: no Django, no I/O, no clock. Every order reaches a broker through an OrderIntent built here.
The order state machine lives in execution.order_states and is re-exported here.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal

from decisions.risk.sizing import round_to_step, round_to_tick
from execution.order_states import (LIVE_STATES, TERMINAL_STATES, TRANSITIONS, VENUE_STATES, IllegalTransition,
                                    OrderState, OutcomeQueries, UnknownOutcomeAction, UnknownOutcomePolicy,
                                    VenueStateChange, apply_venue_state, transition)

__all__ = ["CLIENT_ID_PATTERN", "CLIENT_ID_PREFIX", "LIVE_STATES", "TERMINAL_STATES", "TRANSITIONS", "VENUE_STATES",
           "IllegalTransition", "OrderIntent", "OrderRejected", "OrderState", "OutcomeQueries", "Precision",
           "UnknownOutcomeAction", "UnknownOutcomePolicy", "VenueStateChange", "apply_precision",
           "apply_venue_state", "client_order_id", "compact_client_id", "expand_client_id", "is_ours",
           "make_intent_id", "split_client_order_id",
           "transition"]

# Binance: newClientOrderId must match ^[.A-Z:/a-z0-9_-]{1,36}$.
CLIENT_ID_PATTERN = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_PREFIX = "tb-"


class OrderRejected(Exception):
    """The order cannot be sent as asked; record the reason and do not retry it unchanged."""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    intent_id: str
    leg: str                    # "entry", "exit", "sl", "tp1" ...
    symbol: str
    side: str                   # "buy" or "sell"
    type: str                   # "market", "limit", "stop_market" ...
    quantity: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False

    @property
    def client_order_id(self) -> str:
        return client_order_id(self.intent_id, self.leg)


def make_intent_id(*parts: object) -> str:
    """Return a short stable id for the decision or event the intent comes from."""
    # Escape the separator so ("a|b",) and ("a", "b") differ; parts without "|" or "\\" hash as before.
    text = "|".join(str(p).replace("\\", "\\\\").replace("|", "\\|") for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def client_order_id(intent_id: str, leg: str) -> str:
    """Return the venue client order id `tb-<intent>-<leg>`; raise ValueError if Binance would refuse it."""
    cid = f"{CLIENT_ID_PREFIX}{intent_id}-{leg}"
    if not CLIENT_ID_PATTERN.match(cid):
        raise ValueError(f"client order id {cid!r} does not match {CLIENT_ID_PATTERN.pattern}")
    return cid


# Venues with shorter client ids (Gate: 28 characters with its "t-") get the intent's 80 bits in
# base64url instead of hex: "tb." + 14 characters + "." + leg, at most 26 characters; "." cannot
# occur in the base64url alphabet, so the compact form is recognised and expanded back exactly.
_COMPACT = re.compile(r"^tb\.([A-Za-z0-9_-]{14})\.([A-Za-z0-9_]{1,8})$")


def compact_client_id(client_order_id: str) -> str:
    """Return the short form of one of our client ids `tb-<20 hex>-<leg>`; other ids are returned unchanged."""
    split = split_client_order_id(client_order_id)
    if split is None or not re.fullmatch(r"[0-9a-f]{20}", split[0]):
        return client_order_id
    packed = base64.urlsafe_b64encode(bytes.fromhex(split[0])).decode().rstrip("=")
    return f"tb.{packed}.{split[1]}"


def expand_client_id(venue_client_id: str) -> str:
    """Return our client id from its short form; any other id unchanged."""
    match = _COMPACT.match(venue_client_id)
    if match is None:
        return venue_client_id
    intent = base64.urlsafe_b64decode(match.group(1) + "==").hex()
    return f"{CLIENT_ID_PREFIX}{intent}-{match.group(2)}"


def is_ours(client_order_id: str) -> bool:
    """Return whether this bot minted the client order id (manual, autoclose-* and adl_autoclose are not)."""
    return client_order_id.startswith(CLIENT_ID_PREFIX)


def split_client_order_id(client_order_id: str) -> tuple[str, str] | None:
    """Return (intent_id, leg) of one of our client order ids, or None for anybody else's."""
    # Legs never contain "-", so the last one separates the leg from the intent.
    if not is_ours(client_order_id) or "-" not in client_order_id[len(CLIENT_ID_PREFIX):]:
        return None
    intent_id, leg = client_order_id[len(CLIENT_ID_PREFIX):].rsplit("-", 1)
    return intent_id, leg


@dataclass(frozen=True, slots=True)
class Precision:
    """The venue's filters for one symbol (exchangeInfo PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL, PERCENT_PRICE)."""

    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal
    min_quantity: Decimal = Decimal(0)
    max_quantity: Decimal | None = None
    percent_price_up: Decimal | None = None      # multiplierUp, e.g. 1.05
    percent_price_down: Decimal | None = None    # multiplierDown, e.g. 0.95


def apply_precision(intent: OrderIntent, precision: Precision, reference_price: Decimal, *,
                    mark_price: Decimal | None = None) -> OrderIntent:
    """Return the intent rounded to the venue grid; raise OrderRejected where the venue would refuse it.

    `mark_price` bounds limit prices (PERCENT_PRICE); `reference_price` stands in for it when absent.
    """
    quantity = round_to_step(intent.quantity, precision.step_size)
    if quantity <= 0:
        raise OrderRejected(f"quantity {intent.quantity} rounds to zero at step {precision.step_size}")
    _check_quantity(quantity, precision)
    price = round_to_tick(intent.price, precision.tick_size) if intent.price is not None else None
    trigger = round_to_tick(intent.trigger_price, precision.tick_size) if intent.trigger_price is not None else None
    notional = quantity * (price or reference_price)
    # Reduce-only exits may be small: the venue waives the minimum for them.
    if not intent.reduce_only and notional < precision.min_notional:
        raise OrderRejected(f"notional {notional:.2f} USDT below the minimum {precision.min_notional} USDT")
    if intent.type in ("limit", "limit_maker") and price is not None:
        _check_percent_price(intent.side, price, mark_price or reference_price, precision)
    return OrderIntent(intent.intent_id, intent.leg, intent.symbol, intent.side, intent.type,
                       quantity, price, trigger, intent.reduce_only)


def _check_quantity(quantity: Decimal, precision: Precision) -> None:
    if quantity < precision.min_quantity:
        raise OrderRejected(f"quantity {quantity} below the minimum {precision.min_quantity}")
    if precision.max_quantity is not None and quantity > precision.max_quantity:
        raise OrderRejected(f"quantity {quantity} above the maximum {precision.max_quantity}")


def _check_percent_price(side: str, price: Decimal, mark_price: Decimal, precision: Precision) -> None:
    # Binance USD-M checks one side per order: a buy may not exceed mark * multiplierUp (-4016),
    # a sell may not go below mark * multiplierDown (-4024); a passive order far away is accepted.
    # Conditional orders are checked when they trigger, against the mark price then, so only LIMIT here.
    up, down = precision.percent_price_up, precision.percent_price_down
    high = mark_price * up if up is not None else None
    low = mark_price * down if down is not None else None
    if (side == "buy" and high is not None and price > high) or (side == "sell" and low is not None and price < low):
        raise OrderRejected(f"{side} limit price {price} outside the PERCENT_PRICE band [{low}, {high}] "
                            f"around mark {mark_price}")
