"""Order intents, deterministic client order ids and the precision gate.

Pure: no Django, no I/O, no clock. Every order reaches a broker through an OrderIntent built here.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal

from decisions.risk.sizing import round_to_step, round_to_tick

# Binance: newClientOrderId must match ^[.A-Z:/a-z0-9_-]{1,36}$.
CLIENT_ID_PATTERN = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


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
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:20]


def client_order_id(intent_id: str, leg: str) -> str:
    """Return the venue client order id `tb-<intent>-<leg>`; raise ValueError if Binance would refuse it."""
    cid = f"tb-{intent_id}-{leg}"
    if not CLIENT_ID_PATTERN.match(cid):
        raise ValueError(f"client order id {cid!r} does not match {CLIENT_ID_PATTERN.pattern}")
    return cid


@dataclass(frozen=True, slots=True)
class Precision:
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal


def apply_precision(intent: OrderIntent, precision: Precision, reference_price: Decimal) -> OrderIntent:
    """Return the intent rounded to the venue grid; raise OrderRejected below the minimums."""
    quantity = round_to_step(intent.quantity, precision.step_size)
    if quantity <= 0:
        raise OrderRejected(f"quantity {intent.quantity} rounds to zero at step {precision.step_size}")
    price = round_to_tick(intent.price, precision.tick_size) if intent.price is not None else None
    trigger = round_to_tick(intent.trigger_price, precision.tick_size) if intent.trigger_price is not None else None
    notional = quantity * (price or reference_price)
    # Reduce-only exits may be small: the venue waives the minimum for them.
    if not intent.reduce_only and notional < precision.min_notional:
        raise OrderRejected(f"notional {notional:.2f} USDT below the minimum {precision.min_notional} USDT")
    return OrderIntent(intent.intent_id, intent.leg, intent.symbol, intent.side, intent.type,
                       quantity, price, trigger, intent.reduce_only)
