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
    # Exits are simulated bar by bar (ladder_step), not placed as resting orders on a venue.
    simulates_exits = True

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
    # Price units the stop trails behind `best_price` once TP1 has filled; None: no trail.
    trail_distance: Decimal | None = None
    # Most favourable price (long: high, short: low) seen since TP1 filled; None before TP1.
    best_price: Decimal | None = None

    def __post_init__(self):
        if self.trail_distance is not None and self.trail_distance <= 0:
            raise ValueError(f"trail_distance must be positive, got {self.trail_distance}")


def _reached(side: str, level: Decimal, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal,
             *, stop: bool) -> Decimal | None:
    """Return the fill price when the bar reaches `level` (the open when it gapped through), else None."""
    against = (side == "LONG") == stop      # a long's stop and a short's target sit below the price
    if against:
        return bar_open if bar_open <= level else (level if bar_low <= level else None)
    return bar_open if bar_open >= level else (level if bar_high >= level else None)


def _fill_targets(pos: LadderPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal,
                  step_size: Decimal) -> tuple[list[LadderExit], tuple[Target, ...]]:
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
    return exits, tuple(targets)


def _protect(pos: LadderPosition, bar_high: Decimal, bar_low: Decimal, *, breakeven: bool,
             tick_size: Decimal | None) -> LadderPosition:
    """Return `pos` with the stop for the next bar: breakeven and trail once TP1 has filled, never looser."""
    if not (pos.targets and pos.targets[0].filled):
        return pos
    long = pos.side == "LONG"
    tighter = max if long else min
    bar_best = bar_high if long else bar_low
    # A position resumed without a stored best price starts trailing from this bar.
    best = bar_best if pos.best_price is None else tighter(pos.best_price, bar_best)
    levels = [pos.stop_price]
    if breakeven:
        levels.append(pos.entry_price)
    if pos.trail_distance is not None:
        trailed = best - pos.trail_distance if long else best + pos.trail_distance
        if tick_size:
            # Round away from the price: the stop must not sit closer than the trail allows.
            rounding = ROUND_FLOOR if long else ROUND_CEILING
            trailed = (trailed / tick_size).to_integral_value(rounding=rounding) * tick_size
        levels.append(trailed)
    return replace(pos, stop_price=tighter(levels), best_price=best)


def ladder_step(pos: LadderPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal, step_size: Decimal,
                *, breakeven_after_first: bool = True,
                tick_size: Decimal | None = None) -> tuple[list[LadderExit], LadderPosition]:
    """Return the exits one bar causes and the position after them.

    The stop is checked first: without the path inside the bar, the pessimistic order is the safe
    one. Each target closes its share of the initial quantity (rounded down to the step; the last
    open target closes the rest). Once the first target has filled, the stop moves to entry
    (breakeven, when `breakeven_after_first`) and trails `pos.trail_distance` behind the best price
    (when set; rounded away from the price to `tick_size`), whichever is tighter, and never loosens.
    The bar's own high or low updates the best price only after its exits, so a tightened stop
    applies from the next bar on.
    """
    stop_fill = _reached(pos.side, pos.stop_price, bar_open, bar_high, bar_low, stop=True)
    if stop_fill is not None:
        return [LadderExit("sl", "stop", stop_fill, pos.quantity)], replace(pos, quantity=Decimal(0))
    exits, targets = _fill_targets(pos, bar_open, bar_high, bar_low, step_size)
    after = replace(pos, quantity=pos.quantity - sum((e.quantity for e in exits), Decimal(0)), targets=targets)
    return exits, _protect(after, bar_high, bar_low, breakeven=breakeven_after_first, tick_size=tick_size)
