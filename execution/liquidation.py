"""Where the paper venue liquidates a position, on the tick grid, and the margin behind it. Pure: no Django, no I/O, no clock."""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import NamedTuple

from execution.brokers.paper_model import liquidation_price

_USDT = Decimal("0.00000001")


class Liquidation(NamedTuple):
    """A position's isolated margin (USDT) and the mark price that liquidates it (None: no price can)."""

    price: Decimal | None
    margin_usdt: Decimal


def isolated_margin(entry_price: Decimal, quantity: Decimal, balance_usdt: Decimal, max_leverage: Decimal) -> Decimal:
    """Return the margin the paper model puts behind a position: entry notional / max_leverage, at most the wallet.

    To 1e-8 USDT, so the stored margin is the one the liquidation price was computed from.
    """
    return min(entry_price * quantity / max_leverage, max(balance_usdt, Decimal(0))).quantize(_USDT)


def liquidation_on_tick(side: str, entry_price: Decimal, quantity: Decimal, balance_usdt: Decimal,
                        max_leverage: Decimal, maintenance_margin_fraction: Decimal,
                        tick_size: Decimal) -> Liquidation | None:
    """Return the position's isolated margin and liquidation price, rounded towards the entry; None if no quantity.

    Isolated margin = entry notional / max_leverage, at most the wallet `balance_usdt`; one
    maintenance bracket. The margin is kept with the price: at a liquidation the venue keeps what is
    left of it (paper_model.liquidation_clearance_fee), so the loss is the whole margin.
    """
    if quantity <= 0:
        return None
    margin = isolated_margin(entry_price, quantity, balance_usdt, max_leverage)
    price = liquidation_price(side, entry_price, quantity, margin, maintenance_margin_fraction)
    if price <= 0:
        return Liquidation(None, margin)
    rounding = ROUND_CEILING if side == "LONG" else ROUND_FLOOR
    return Liquidation((price / tick_size).to_integral_value(rounding=rounding) * tick_size, margin)


def position_liquidation(position, account, config) -> Liquidation | None:
    """Return where the paper model liquidates `position` (mark price, on the tick grid) and its isolated margin.

    Isolated margin = entry notional / config.max_leverage, at most the account's wallet; one
    maintenance bracket (config.maintenance_margin_fraction). Rounded towards the entry. The
    arguments are rows or anything with the same attributes (side, entry_price, quantity,
    instrument.tick_size; balance_usdt; max_leverage, maintenance_margin_fraction).
    """
    return liquidation_on_tick(position.side, position.entry_price, position.quantity, account.balance_usdt,
                               config.max_leverage, config.maintenance_margin_fraction,
                               position.instrument.tick_size)


def margin_released(margin_usdt: Decimal, quantity: Decimal, quantity_before: Decimal) -> Decimal:
    """Return the share of a position's isolated margin that closing `quantity` of `quantity_before` frees (to 1e-8).

    The margin goes with the quantity, so what stays keeps the same liquidation price; closing all of
    it frees all of it, to the last unit.
    """
    if quantity >= quantity_before:
        return margin_usdt
    return (margin_usdt * quantity / quantity_before).quantize(_USDT)
