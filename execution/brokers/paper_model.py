"""The paper venue's market model: resting limits, funding and liquidation of Binance USD-M. Pure: no Django.

Prices and quantities are Decimal, times epoch ms, money USDT. The shell (execution.paper_venue)
loads bars, rates and positions and books what these functions return.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from decisions.risk.sizing import round_to_step
from execution.brokers.base import FillReport

__all__ = ["FUNDING_INTERVAL_MS", "Bar", "RestingLimit", "funding_payment", "funding_times", "limit_fill",
           "liquidation_clearance_fee", "liquidation_price", "margin_at_liquidation"]

# Binance settles funding every 8 hours at 00:00, 08:00 and 16:00 UTC: the multiples of 8 h since
# the epoch. Symbols moved to a 4 h or 1 h interval are not modelled.
FUNDING_INTERVAL_MS = 8 * 3_600_000
_USDT = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class RestingLimit:
    """A limit order resting in the paper book."""

    client_order_id: str
    side: str                   # "buy" or "sell"
    price: Decimal
    quantity: Decimal
    filled: Decimal = Decimal(0)
    exchange_order_id: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar of last prices; `volume` in base units."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal


def limit_fill(order: RestingLimit, bar: Bar, *, participation_fraction: Decimal, step_size: Decimal,
               maker_fee_fraction: Decimal) -> FillReport | None:
    """Return the maker fill `bar` gives a resting limit order, or None.

    The bar must trade through the price (a buy needs low < price): orders ahead in the queue take
    a mere touch. The fill is at most `participation_fraction` of the bar's volume, rounded down to
    the step, so a large order fills over several bars. It is always at the limit price, even when
    the bar opened through it: a resting order never gets a worse price, and the better open price
    belongs to whoever was first in the book. The trade id is one per order and bar, so booking a
    bar twice is harmless.
    """
    through = bar.low < order.price if order.side == "buy" else bar.high > order.price
    if not through or order.remaining <= 0:
        return None
    quantity = min(order.remaining, round_to_step(participation_fraction * bar.volume, step_size))
    if quantity <= 0:
        return None
    fee = (order.price * quantity * maker_fee_fraction).quantize(_USDT)
    return FillReport(order.client_order_id, f"paper-{order.client_order_id}-{bar.open_ms}", bar.open_ms,
                      order.price, quantity, fee, liquidity="maker", exchange_order_id=order.exchange_order_id)


def funding_times(start_ms: int, end_ms: int) -> list[int]:
    """Return the funding times t with start_ms < t <= end_ms (epoch ms, ascending)."""
    first = (start_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
    return list(range(first, end_ms + 1, FUNDING_INTERVAL_MS))


def _direction(side: str) -> int:
    if side not in ("LONG", "SHORT"):
        raise ValueError(f"side must be LONG or SHORT, got {side!r}")
    return 1 if side == "LONG" else -1


def funding_payment(side: str, quantity: Decimal, mark_price: Decimal, rate: Decimal) -> Decimal:
    """Return the USDT a position receives (> 0) or pays (< 0) at one funding time, to 1e-8.

    Longs pay shorts when the rate is positive: payment = -direction * quantity * mark * rate.
    """
    return (-_direction(side) * abs(quantity) * mark_price * rate).quantize(_USDT)


def liquidation_price(side: str, entry_price: Decimal, quantity: Decimal, margin_usdt: Decimal,
                      maintenance_margin_fraction: Decimal,
                      maintenance_amount_usdt: Decimal = Decimal(0)) -> Decimal:
    """Return the mark price that liquidates an isolated linear position; 0 when none can.

    Binance's USD-M formula ("How to Calculate Liquidation Price of USDⓈ-M Futures Contracts") in
    isolated mode, where the other contracts' maintenance margin and PnL drop out:
    LP = (WB + cum - side * Q * EP) / (Q * MMR - side * Q), with WB the position's margin and
    cum its bracket's maintenance amount. One bracket only: the rate of a larger bracket, which a
    very large position would reach, is not looked up. Rounded towards the entry to 1e-8, so the
    model liquidates no later than the exact price.
    """
    direction = _direction(side)
    if entry_price <= 0 or quantity <= 0 or margin_usdt < 0 or not 0 <= maintenance_margin_fraction < 1:
        raise ValueError("need entry_price > 0, quantity > 0, margin_usdt >= 0 and 0 <= maintenance fraction < 1")
    price = ((margin_usdt + maintenance_amount_usdt - direction * quantity * entry_price)
             / (quantity * maintenance_margin_fraction - direction * quantity))
    if price <= 0:
        return Decimal(0)   # a long with margin beyond its notional: the price cannot fall far enough
    return price.quantize(_USDT, rounding=ROUND_CEILING if direction == 1 else ROUND_FLOOR)


def margin_at_liquidation(side: str, entry_price: Decimal, quantity: Decimal, liquidation_price_: Decimal,
                          maintenance_margin_fraction: Decimal) -> Decimal:
    """Return the isolated margin that `liquidation_price_` implies: the inverse of `liquidation_price` (USDT, to 1e-8).

    WB = LP x (Q x MMR - side x Q) + side x Q x EP. For a price known without its margin (one
    bracket, no maintenance amount): at that price the margin left is then its maintenance margin.
    """
    direction = _direction(side)
    return (liquidation_price_ * (quantity * maintenance_margin_fraction - direction * quantity)
            + direction * quantity * entry_price).quantize(_USDT)


def liquidation_clearance_fee(side: str, quantity: Decimal, entry_price: Decimal, exit_price: Decimal,
                              margin_usdt: Decimal) -> Decimal:
    """Return the isolated margin left when `quantity` is liquidated at `exit_price`: the venue keeps it (USDT, to 1e-8).

    `margin_usdt` is the margin behind `quantity`. Margin left = margin + the price PnL to the
    exit; booked with that PnL it makes the loss the whole isolated margin, as on Binance, where the
    rest goes to the insurance fund. Never below 0: a fill beyond the bankruptcy price takes nothing
    more (the insurance fund covers the excess).
    """
    if quantity < 0 or margin_usdt < 0:
        raise ValueError("need quantity >= 0 and margin_usdt >= 0")
    left = margin_usdt + _direction(side) * quantity * (exit_price - entry_price)
    return max(left, Decimal(0)).quantize(_USDT)
