"""ccxt structures (orders, trades, funding) as the broker port's values, and intents as ccxt order arguments.

Binance's own status fields win over ccxt's unified ones when present: an algo order's FINISHED says
nothing of how much executed, and ccxt maps it to "closed" either way.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from execution.brokers.base import FillReport, FundingReport, VenueOrder
from execution.oms import OrderIntent, OrderRejected, compact_client_id, expand_client_id

# Binance order status -> OrderState value.
ORDER_STATES = {"NEW": "accepted", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                "CANCELED": "canceled", "PENDING_CANCEL": "pending_cancel", "REJECTED": "rejected",
                "EXPIRED": "expired", "EXPIRED_IN_MATCH": "expired"}
# Binance algo (conditional) status -> OrderState value. FINISHED means the triggered order is done
# in the matching engine, filled or not: see algo_state().
ALGO_STATES = {"NEW": "accepted", "TRIGGERING": "triggered", "TRIGGERED": "triggered", "FINISHED": "filled",
               "CANCELED": "canceled", "REJECTED": "rejected", "EXPIRED": "expired"}
# ccxt unified status -> OrderState value, for venues without a table of their own.
UNIFIED_STATES = {"open": "accepted", "closed": "filled", "canceled": "canceled", "canceling": "pending_cancel",
                  "expired": "expired", "rejected": "rejected"}


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    # repr() of a float is its shortest round-trip form: 0.1 stays "0.1".
    return Decimal(repr(value) if isinstance(value, float) else str(value))


def algo_state(info: Mapping) -> str:
    """Return the OrderState of a Binance algo order; FINISHED with less than its quantity executed is canceled."""
    status = ALGO_STATES.get(str(info.get("algoStatus")), "unknown")
    executed, quantity = _dec(info.get("executedQty")), _dec(info.get("quantity"))
    if status == "filled" and executed is not None and quantity and executed < quantity:
        return "canceled"
    return status


def order_state(order: Mapping) -> str:
    """Return the OrderState of a ccxt order, from Binance's own status when the venue is Binance."""
    info = order.get("info") or {}
    if "algoStatus" in info:
        return algo_state(info)
    if info.get("status") in ORDER_STATES:
        return ORDER_STATES[info["status"]]
    state = UNIFIED_STATES.get(order.get("status") or "", "unknown")
    if state == "accepted" and (_dec(order.get("filled")) or 0) > 0:
        return "partially_filled"
    return state


def strip_prefix(client_id: str, prefix: str) -> str:
    """Return our client id from the venue's: without its prefix (Gate's "t-"), expanded from the short form."""
    return expand_client_id(client_id[len(prefix):] if prefix and client_id.startswith(prefix) else client_id)


def venue_client_id(client_id: str, prefix: str = "", max_length: int | None = None) -> str:
    """Return the id the venue gets for our client id: its prefix first, the short form where the full one is too long."""
    if max_length is not None and len(prefix + client_id) > max_length:
        client_id = compact_client_id(client_id)
        if len(prefix + client_id) > max_length:
            raise OrderRejected(f"client id {client_id!r} longer than the venue's {max_length} characters")
    return prefix + client_id


def venue_order(order: Mapping, market: Mapping, *, conditional: bool, client_id_prefix: str = "") -> VenueOrder:
    """Return the VenueOrder for a ccxt order structure; quantities in base units."""
    info = order.get("info") or {}
    size = _dec(market.get("contractSize")) or Decimal(1)
    raw_type = info.get("type") or info.get("orderType") or order.get("type") or ""
    return VenueOrder(
        client_order_id=strip_prefix(order.get("clientOrderId") or "", client_id_prefix),
        exchange_order_id=str(order.get("id") or ""), symbol=market["id"],
        side=order.get("side") or "", type=str(raw_type).lower(), status=order_state(order),
        quantity=(_dec(order.get("amount")) or Decimal(0)) * size,
        filled=(_dec(order.get("filled")) or Decimal(0)) * size,
        average_price=_dec(order.get("average")) or None, price=_dec(order.get("price")) or None,
        trigger_price=_dec(order.get("triggerPrice")) or None, reduce_only=bool(order.get("reduceOnly")),
        conditional=conditional or "algoStatus" in info,
        update_ms=int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0),
    )


def fill_report(trade: Mapping, market: Mapping, client_order_id: str = "") -> FillReport:
    """Return the FillReport of a ccxt trade; the venue's realized PnL when it books one."""
    size = _dec(market.get("contractSize")) or Decimal(1)
    fee = trade.get("fee") or {}
    realized = (trade.get("info") or {}).get("realizedPnl")
    return FillReport(
        client_order_id=client_order_id, trade_id=str(trade["id"]), ts_ms=int(trade["timestamp"]),
        price=_dec(trade["price"]), quantity=_dec(trade["amount"]) * size,
        fee_usdt=_dec(fee.get("cost")) or Decimal(0),
        liquidity=trade.get("takerOrMaker") or "taker", exchange_order_id=str(trade.get("order") or ""),
        realized_pnl_usdt=_dec(realized),
    )


def funding_report(income: Mapping, market_id: str) -> FundingReport:
    """Return the FundingReport of a ccxt funding-history entry; the amount from the venue's own string."""
    info = income.get("info") or {}
    # ccxt's "amount" is a float; Binance's "income" is the exact decimal string.
    amount = _dec(info.get("income")) if "income" in info else _dec(income.get("amount"))
    return FundingReport(symbol=market_id, ts_ms=int(income["timestamp"]), amount_usdt=amount or Decimal(0),
                         rate=None, venue_id=str(income.get("id") or info.get("tranId") or ""))


def order_args(intent: OrderIntent, trigger_params: Mapping[str, str],
               client_id_prefix: str = "", client_id_max_length: int | None = None) -> tuple[str, Decimal | None, dict]:
    """Return ccxt's (type, price, params) for an intent; raise OrderRejected for a type it cannot send."""
    params: dict = {"clientOrderId": venue_client_id(intent.client_order_id, client_id_prefix, client_id_max_length)}
    if intent.reduce_only:
        params["reduceOnly"] = True
    if intent.type in ("limit", "limit_maker", "take_profit") and intent.price is None:
        raise OrderRejected(f"{intent.type} order {intent.client_order_id} needs a price")
    if intent.type == "market":
        return "market", None, params
    if intent.type == "limit":
        return "limit", intent.price, params
    if intent.type == "limit_maker":
        return "limit", intent.price, params | {"postOnly": True}    # Binance GTX
    if intent.trigger_price is None:
        raise OrderRejected(f"{intent.type} order {intent.client_order_id} needs a trigger price")
    trigger = str(intent.trigger_price)
    if intent.type == "stop_market":
        return "market", None, params | {"stopLossPrice": trigger} | dict(trigger_params)
    if intent.type == "take_profit_market":
        return "market", None, params | {"takeProfitPrice": trigger} | dict(trigger_params)
    if intent.type == "take_profit":
        return "limit", intent.price, params | {"takeProfitPrice": trigger} | dict(trigger_params)
    raise OrderRejected(f"order type {intent.type!r} is not supported by the ccxt broker")

