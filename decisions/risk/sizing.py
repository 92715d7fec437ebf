"""Risk-per-trade sizing and the venue precision gate. Pure: no Django, no I/O, no clock."""
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal


@dataclass(frozen=True, slots=True)
class SizingInput:
    equity_usdt: Decimal
    risk_fraction: Decimal      # 0.005 = half a percent of equity lost at the stop
    entry_price: Decimal
    stop_price: Decimal
    step_size: Decimal          # venue quantity increment
    min_notional_usdt: Decimal
    max_leverage: Decimal = Decimal("3")   # notional cap as a multiple of equity


def round_to_step(quantity: Decimal, step: Decimal) -> Decimal:
    """Return `quantity` rounded down to a multiple of `step`."""
    # Round down: rounding to nearest could risk more than the trader allowed.
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Return `price` rounded to the nearest multiple of `tick`."""
    return (price / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick


def size_position(inp: SizingInput) -> Decimal:
    """Return the quantity that loses `risk_fraction` of equity at the stop, or 0 to skip."""
    stop_distance = abs(inp.entry_price - inp.stop_price)
    if stop_distance == 0 or inp.equity_usdt <= 0:
        return Decimal(0)
    by_risk = inp.equity_usdt * inp.risk_fraction / stop_distance
    # A tight stop must not turn a small risk into a huge notional: cap by leverage.
    by_leverage = inp.equity_usdt * inp.max_leverage / inp.entry_price
    qty = round_to_step(min(by_risk, by_leverage), inp.step_size)
    return qty if qty * inp.entry_price >= inp.min_notional_usdt else Decimal(0)
