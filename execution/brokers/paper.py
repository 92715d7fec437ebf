"""Paper broker: simulated fills with taker fees and slippage. Pure: no Django, no I/O, no clock."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from execution.brokers.base import ExecutionReport, FillReport
from execution.oms import OrderIntent

_BPS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class OpenPosition:
    side: str                   # LONG or SHORT
    quantity: Decimal
    entry_price: Decimal
    stop_price: Decimal
    target_price: Decimal


@dataclass(frozen=True, slots=True)
class ExitHit:
    reason: str                 # "stop" or "target"
    price: Decimal              # trigger level, or the open when the bar gapped through it


class PaperBroker:
    """Fill market orders at the reference price moved against the taker by `slippage_bps`."""

    name = "paper"

    def __init__(self, *, taker_fee_fraction: Decimal, slippage_bps: Decimal):
        self.taker_fee_fraction = taker_fee_fraction
        self.slippage_bps = slippage_bps

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None) -> ExecutionReport:
        """Return an immediate full fill for a market order; reject any other type."""
        if intent.type != "market":
            return ExecutionReport(intent.client_order_id, "rejected",
                                   reason=f"paper broker fills market orders only, got {intent.type}")
        return self.fill_at(intent, reference_price, ts_ms, slip=True, tick_size=tick_size)

    def fill_at(self, intent: OrderIntent, price: Decimal, ts_ms: int, *, slip: bool,
                tick_size: Decimal | None = None) -> ExecutionReport:
        """Return a full fill of `intent` at `price` (plus slippage when `slip`), on the tick grid."""
        direction = 1 if intent.side == "buy" else -1
        fill_price = price * (1 + direction * self.slippage_bps * _BPS) if slip else price
        if tick_size:
            # Venue prices sit on the tick grid; round against the taker, as a real book would.
            rounding = ROUND_CEILING if direction == 1 else ROUND_FLOOR
            fill_price = (fill_price / tick_size).to_integral_value(rounding=rounding) * tick_size
        fee = (fill_price * intent.quantity * self.taker_fee_fraction).quantize(Decimal("0.00000001"))
        fill = FillReport(intent.client_order_id, f"paper-{intent.client_order_id}", ts_ms, fill_price,
                          intent.quantity, fee)
        return ExecutionReport(intent.client_order_id, "filled", (fill,), exchange_order_id=f"paper-{intent.intent_id}")


def exit_hit(position: OpenPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal) -> ExitHit | None:
    """Return the exit a bar triggers, or None.

    When one bar touches both levels the stop is assumed first: without the path inside the
    bar the pessimistic answer is the safe one. A bar that opens beyond a level fills at the open.
    """
    if position.side == "LONG":
        if bar_open <= position.stop_price:
            return ExitHit("stop", bar_open)
        if bar_low <= position.stop_price:
            return ExitHit("stop", position.stop_price)
        if bar_open >= position.target_price:
            return ExitHit("target", bar_open)
        if bar_high >= position.target_price:
            return ExitHit("target", position.target_price)
    else:
        if bar_open >= position.stop_price:
            return ExitHit("stop", bar_open)
        if bar_high >= position.stop_price:
            return ExitHit("stop", position.stop_price)
        if bar_open <= position.target_price:
            return ExitHit("target", bar_open)
        if bar_low <= position.target_price:
            return ExitHit("target", position.target_price)
    return None


def position_pnl(side: str, quantity: Decimal, entry_price: Decimal, price: Decimal) -> Decimal:
    """Return the PnL in USDT of a linear position marked at `price`, before fees."""
    direction = 1 if side == "LONG" else -1
    return direction * (price - entry_price) * quantity
