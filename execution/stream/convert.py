"""Turn ccxt.pro's Binance USD-M user-stream structures into the broker port's types. No Django, no I/O.

ccxt.pro parses ORDER_TRADE_UPDATE and ALGO_UPDATE into unified orders whose `info` is the raw event
body: the venue's own status is "X", and an algo (conditional) order carries "aid", "q" and "aq".
Those fields are renamed to what the REST endpoints call them, so CcxtBroker's parsers apply unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from execution.brokers.base import FillReport, VenueBalance, VenueOrder, VenuePosition
# _dec is CcxtBroker's float-safe Decimal reader: one rule for REST and stream numbers.
from execution.brokers.ccxt import _dec, fill_report, venue_order


def order_of(order: Mapping, market: Mapping) -> VenueOrder:
    """Return the VenueOrder of a ccxt.pro order update (ORDER_TRADE_UPDATE or ALGO_UPDATE)."""
    raw = order.get("info") or {}
    algo = "aid" in raw
    if algo:
        info = {"algoStatus": raw.get("X"), "executedQty": raw.get("aq"), "quantity": raw.get("q"),
                "type": raw.get("o")}
    else:
        info = {"status": raw.get("X"), "type": raw.get("o")}
    return venue_order({**order, "info": info}, market, conditional=algo)


def fill_of(trade: Mapping, market: Mapping) -> FillReport:
    """Return the FillReport of a ccxt.pro trade; the event names the order's client id ("c")."""
    raw = trade.get("info") or {}
    return fill_report({**trade, "info": {"realizedPnl": raw.get("rp")}}, market, str(raw.get("c") or ""))


def position_of(position: Mapping, market: Mapping) -> VenuePosition:
    """Return the VenuePosition of a ccxt.pro position; zero when the stream reports it closed."""
    quantity = (_dec(position.get("contracts")) or Decimal(0)) * (_dec(market.get("contractSize")) or Decimal(1))
    return VenuePosition(
        symbol=market["id"], quantity=-quantity if position.get("side") == "short" else quantity,
        entry_price=_dec(position.get("entryPrice")) or Decimal(0), mark_price=_dec(position.get("markPrice")),
        unrealized_pnl_usdt=_dec(position.get("unrealizedPnl")) or Decimal(0),
        liquidation_price=_dec(position.get("liquidationPrice")) or None)


def balance_of(balance: Mapping) -> VenueBalance | None:
    """Return the USDT wallet of a ccxt.pro balance, or None when the update does not name USDT.

    ACCOUNT_UPDATE carries the wallet, not the available balance: `available_usdt` is ccxt's "free"
    when it has one, else the wallet (REST balance() has the venue's own figure).
    """
    usdt = balance.get("USDT") or {}
    wallet = _dec(usdt.get("total"))
    if wallet is None:
        return None
    free = _dec(usdt.get("free"))
    return VenueBalance(wallet_usdt=wallet, available_usdt=wallet if free is None else free)
