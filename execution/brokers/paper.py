"""Paper broker: simulated fills with taker fees and slippage, and the take-profit ladder. Pure: no Django."""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from decisions.risk.sizing import round_to_step
from execution.brokers.base import ExecutionReport, FillReport
from execution.oms import OrderIntent

_BPS = Decimal("0.0001")


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


def position_pnl(side: str, quantity: Decimal, entry_price: Decimal, price: Decimal) -> Decimal:
    """Return the PnL in USDT of a linear position marked at `price`, before fees."""
    direction = 1 if side == "LONG" else -1
    return direction * (price - entry_price) * quantity


@dataclass(frozen=True, slots=True)
class Target:
    price: Decimal
    share: Decimal              # of the initial quantity
    filled: bool = False


@dataclass(frozen=True, slots=True)
class LadderExit:
    leg: str                    # "sl", "tp1", "tp2", ...
    reason: str                 # "stop" or "target"
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class LadderPosition:
    side: str
    entry_price: Decimal
    initial_quantity: Decimal
    quantity: Decimal           # still open
    stop_price: Decimal
    targets: tuple[Target, ...]


def _reached(side: str, level: Decimal, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal,
             *, stop: bool) -> Decimal | None:
    """Return the fill price when the bar reaches `level` (the open when it gapped through), else None."""
    against = (side == "LONG") == stop      # a long's stop and a short's target sit below the price
    if against:
        return bar_open if bar_open <= level else (level if bar_low <= level else None)
    return bar_open if bar_open >= level else (level if bar_high >= level else None)


def ladder_step(pos: LadderPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal, step_size: Decimal,
                *, breakeven_after_first: bool = True) -> tuple[list[LadderExit], LadderPosition]:
    """Return the exits one bar causes and the position after them.

    The stop is checked first: without the path inside the bar, the pessimistic order is the safe
    one. Each target closes its share of the initial quantity (rounded down to the step; the last
    open target closes the rest). After the first target the stop moves to entry (breakeven), from
    the next bar on.
    """
    stop_fill = _reached(pos.side, pos.stop_price, bar_open, bar_high, bar_low, stop=True)
    if stop_fill is not None:
        return [LadderExit("sl", "stop", stop_fill, pos.quantity)], replace(pos, quantity=Decimal(0))
    exits, remaining, targets = [], pos.quantity, list(pos.targets)
    for i, target in enumerate(targets):
        if target.filled or remaining <= 0:
            continue
        fill = _reached(pos.side, target.price, bar_open, bar_high, bar_low, stop=False)
        if fill is None:
            break                           # the ladder is ordered: a missed target hides the rest
        last = all(t.filled for t in targets[i + 1:])
        quantity = remaining if last else min(remaining, round_to_step(pos.initial_quantity * target.share, step_size))
        targets[i] = replace(target, filled=True)
        if quantity > 0:
            exits.append(LadderExit(f"tp{i + 1}", "target", fill, quantity))
            remaining -= quantity
    stop = pos.stop_price
    if exits and breakeven_after_first:
        stop = max(stop, pos.entry_price) if pos.side == "LONG" else min(stop, pos.entry_price)
    return exits, replace(pos, quantity=remaining, stop_price=stop, targets=tuple(targets))
