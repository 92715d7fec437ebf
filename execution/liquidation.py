"""Where the paper venue liquidates a position, on the tick grid. Pure: no Django, no I/O, no clock."""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from execution.brokers.paper_model import liquidation_price


def liquidation_price_on_tick(side: str, entry_price: Decimal, quantity: Decimal, balance_usdt: Decimal,
                              max_leverage: Decimal, maintenance_margin_fraction: Decimal,
                              tick_size: Decimal) -> Decimal | None:
    """Return the mark price that liquidates the position, rounded towards the entry; None if none can.

    Isolated margin = entry notional / max_leverage, at most the wallet `balance_usdt`; one
    maintenance bracket.
    """
    if quantity <= 0:
        return None
    margin = min(entry_price * quantity / max_leverage, max(balance_usdt, Decimal(0)))
    price = liquidation_price(side, entry_price, quantity, margin, maintenance_margin_fraction)
    if price <= 0:
        return None
    rounding = ROUND_CEILING if side == "LONG" else ROUND_FLOOR
    return (price / tick_size).to_integral_value(rounding=rounding) * tick_size


def position_liquidation_price(position, account, config) -> Decimal | None:
    """Return where the paper model liquidates `position` (mark price, on the tick grid); None if nowhere.

    Isolated margin = entry notional / config.max_leverage, at most the account's wallet; one
    maintenance bracket (config.maintenance_margin_fraction). Rounded towards the entry. The
    arguments are rows or anything with the same attributes (side, entry_price, quantity,
    instrument.tick_size; balance_usdt; max_leverage, maintenance_margin_fraction).
    """
    return liquidation_price_on_tick(position.side, position.entry_price, position.quantity, account.balance_usdt,
                                     config.max_leverage, config.maintenance_margin_fraction,
                                     position.instrument.tick_size)
