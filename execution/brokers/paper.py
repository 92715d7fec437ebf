"""Paper broker: the Binance USD-M venue simulated (fills, fees, slippage) and the take-profit ladder.

Pure: no Django. Market orders fill at once as taker; limit orders rest (execution.brokers.paper_model
fills them bar by bar as maker); stops and take-profits rest as conditional orders. Exits of open
positions are simulated bar by bar by `ladder_step`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from decisions.risk.sizing import round_to_step
from execution.brokers.base import ExecutionReport, FillReport, WouldTriggerImmediately
from execution.oms import OrderIntent

_BPS = Decimal("0.0001")
_USDT = Decimal("0.00000001")
LIMIT_TYPES = frozenset({"limit", "limit_maker"})     # limit_maker: post-only (Binance GTX)
CONDITIONAL_TYPES = frozenset({"stop_market", "take_profit", "take_profit_market"})
# Binance refuses a GTX order that would take liquidity (-5022); the paper venue answers "expired",
# so the order ends without a fill and the caller re-prices it.
POST_ONLY_WOULD_TAKE = "-5022 post-only order would be taker: it would have crossed the book"
WOULD_TRIGGER = "-2021 Order would immediately trigger."


class PaperBroker:
    """Simulate the venue's answer to an order: taker fills with slippage, resting limits and conditionals."""

    name = "paper"
    # Exits are simulated bar by bar (ladder_step), not placed as resting orders on a venue.
    simulates_exits = True

    def __init__(self, *, taker_fee_fraction: Decimal, slippage_bps: Decimal,
                 maker_fee_fraction: Decimal = Decimal("0.0002")):
        self.taker_fee_fraction = taker_fee_fraction
        self.maker_fee_fraction = maker_fee_fraction
        self.slippage_bps = slippage_bps

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None, post_only: bool = False) -> ExecutionReport:
        """Return the venue's answer to `intent` at market price `reference_price`.

        Market: a full taker fill with slippage. Limit: "accepted" (resting) unless it crosses the
        reference price; a crossing post-only limit ("limit_maker", or `post_only`) is "expired"
        (-5022), any other crossing limit fills at once as taker, never beyond its price. Stop and
        take-profit: "accepted" (resting); raise WouldTriggerImmediately when already past the trigger.
        """
        cid = intent.client_order_id
        if intent.type == "market":
            return self.fill_at(intent, reference_price, ts_ms, slip=True, tick_size=tick_size)
        if intent.type in LIMIT_TYPES and intent.price is not None:
            return self._limit(intent, reference_price, ts_ms, tick_size,
                               post_only=post_only or intent.type == "limit_maker")
        if intent.type in CONDITIONAL_TYPES and intent.trigger_price is not None:
            if _would_trigger(intent, reference_price):
                raise WouldTriggerImmediately(f"{WOULD_TRIGGER} {intent.side} {intent.type} trigger "
                                              f"{intent.trigger_price}, price {reference_price}")
            return ExecutionReport(cid, "accepted", exchange_order_id=paper_order_id(cid))
        return ExecutionReport(cid, "rejected", reason=f"paper broker cannot place {intent.type} order {cid} "
                                                       f"(price {intent.price}, trigger {intent.trigger_price})")

    def _limit(self, intent: OrderIntent, reference_price: Decimal, ts_ms: int, tick_size: Decimal | None, *,
               post_only: bool) -> ExecutionReport:
        cid, buy = intent.client_order_id, intent.side == "buy"
        # The reference stands for the best price on the other side: equal to it, the order rests.
        crosses = intent.price > reference_price if buy else intent.price < reference_price
        if not crosses:
            return ExecutionReport(cid, "accepted", exchange_order_id=paper_order_id(cid))
        if post_only:
            return ExecutionReport(cid, "expired", exchange_order_id=paper_order_id(cid),
                                   reason=POST_ONLY_WOULD_TAKE)
        price = self._taker_price(intent.side, reference_price, tick_size)
        price = min(price, intent.price) if buy else max(price, intent.price)
        return self._filled(intent, price, ts_ms, self.taker_fee_fraction, "taker")

    def _taker_price(self, side: str, price: Decimal, tick_size: Decimal | None, *, slip: bool = True) -> Decimal:
        direction = 1 if side == "buy" else -1
        if slip:
            price = price * (1 + direction * self.slippage_bps * _BPS)
        if tick_size:
            # Venue prices sit on the tick grid; round against the taker, as a real book would.
            rounding = ROUND_CEILING if direction == 1 else ROUND_FLOOR
            price = (price / tick_size).to_integral_value(rounding=rounding) * tick_size
        return price

    def _filled(self, intent: OrderIntent, price: Decimal, ts_ms: int, fee_fraction: Decimal,
                liquidity: str) -> ExecutionReport:
        cid = intent.client_order_id
        fee = (price * intent.quantity * fee_fraction).quantize(_USDT)
        fill = FillReport(cid, f"paper-{cid}", ts_ms, price, intent.quantity, fee, liquidity=liquidity,
                          exchange_order_id=paper_order_id(cid))
        return ExecutionReport(cid, "filled", (fill,), exchange_order_id=paper_order_id(cid))

    def fill_at(self, intent: OrderIntent, price: Decimal, ts_ms: int, *, slip: bool,
                tick_size: Decimal | None = None) -> ExecutionReport:
        """Return a full taker fill of `intent` at `price` (plus slippage when `slip`), on the tick grid."""
        price = self._taker_price(intent.side, price, tick_size, slip=slip)
        return self._filled(intent, price, ts_ms, self.taker_fee_fraction, "taker")


def paper_order_id(client_order_id: str) -> str:
    """Return the paper venue's order id: one per order, so trades never match another leg's order."""
    return f"paper-{client_order_id}"


def _would_trigger(intent: OrderIntent, price: Decimal) -> bool:
    # A stop fires when the price rises to a buy trigger or falls to a sell trigger; a take-profit the reverse.
    rising = (intent.type == "stop_market") == (intent.side == "buy")
    return price >= intent.trigger_price if rising else price <= intent.trigger_price


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
    leg: str                    # "sl", "tp1", "tp2", ..., "liq"
    reason: str                 # "stop", "target" or "liquidation"
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


def _stop_exit(pos: LadderPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal,
               trigger_high: Decimal, trigger_low: Decimal, liquidation_price: Decimal | None) -> LadderExit | None:
    """Return the liquidation or stop exit the bar causes, or None."""
    long = pos.side == "LONG"
    worst_trigger = trigger_low if long else trigger_high

    def reached(price: Decimal, level: Decimal) -> bool:
        return price <= level if long else price >= level

    if liquidation_price and reached(worst_trigger, liquidation_price):
        # The stop normally sits closer and fires first. The venue liquidates first when the stop
        # lies beyond the liquidation price (ties go to the stop) or the bar opened past it.
        stop_beyond = pos.stop_price < liquidation_price if long else pos.stop_price > liquidation_price
        if stop_beyond or reached(bar_open, liquidation_price):
            return LadderExit("liq", "liquidation", liquidation_price, pos.quantity)
    if not reached(worst_trigger, pos.stop_price):
        return None
    if reached(bar_open, pos.stop_price):
        return LadderExit("sl", "stop", bar_open, pos.quantity)       # the last price gapped through
    # Triggered by the mark while the last price stayed short of the stop: the market order
    # fills at the worst last price of the bar, never better than the stop.
    fill = max(pos.stop_price, bar_low) if long else min(pos.stop_price, bar_high)
    return LadderExit("sl", "stop", fill, pos.quantity)


def ladder_step(pos: LadderPosition, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal, step_size: Decimal,
                *, breakeven_after_first: bool = True, tick_size: Decimal | None = None,
                trigger_high: Decimal | None = None, trigger_low: Decimal | None = None,
                liquidation_price: Decimal | None = None) -> tuple[list[LadderExit], LadderPosition]:
    """Return the exits one bar causes and the position after them.

    The stop is checked first: without the path inside the bar, the pessimistic order is the safe
    one. Each target closes its share of the initial quantity (rounded down to the step; the last
    open target closes the rest). Once the first target has filled, the stop moves to entry
    (breakeven, when `breakeven_after_first`) and trails `pos.trail_distance` behind the best price
    (when set; rounded away from the price to `tick_size`), whichever is tighter, and never loosens.
    The bar's own high or low updates the best price only after its exits, so a tightened stop
    applies from the next bar on.

    `bar_*` are last prices. `trigger_high`/`trigger_low` are the range of the stop's working
    price (the mark range for MARK_PRICE; default the bar's own range): the stop triggers when
    that range reaches it, then fills as a market order at the last price: the bar's open if the
    last price opened past the stop, else the stop level (the worst last price of the bar when the
    last price never reached the stop). This approximates the unknown path inside the bar;
    slippage is the caller's (position_reduce). Targets trigger on the last price.
    `liquidation_price` (mark) closes the whole position as a "liq" exit at that price when the
    trigger range reaches it before the stop would; see `_stop_exit`.
    """
    high = bar_high if trigger_high is None else trigger_high
    low = bar_low if trigger_low is None else trigger_low
    stop_exit = _stop_exit(pos, bar_open, bar_high, bar_low, high, low, liquidation_price)
    if stop_exit is not None:
        return [stop_exit], replace(pos, quantity=Decimal(0))
    exits, targets = _fill_targets(pos, bar_open, bar_high, bar_low, step_size)
    after = replace(pos, quantity=pos.quantity - sum((e.quantity for e in exits), Decimal(0)), targets=targets)
    return exits, _protect(after, bar_high, bar_low, breakeven=breakeven_after_first, tick_size=tick_size)
