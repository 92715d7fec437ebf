"""REST response bodies in Binance USD-M formats: decimals as strings, ids and times as int.

Normal orders, positions (v3 positionRisk, v3 account), balances and user trades copy the field names
of the recorded httpResponse payloads in shared/fixtures/ccxt_binance/response.json. SYNTHETIC (no
recording exists): algo orders (from the Binance "New Algo Order" docs and the example in ccxt's
binance.py parse_order comment), v2 positionRisk/account/balance and leverage/margin replies (from the
Binance docs).
"""
from __future__ import annotations

from decimal import Decimal

from execution.emulator import ledger
from execution.emulator.state import AccountState, AlgoOrder, Order, Position, Trade
from execution.emulator.symbols import SYMBOLS, spec_for


def fixed(value: Decimal, places: int) -> str:
    """Return `value` with exactly `places` decimals."""
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


def plain(value: Decimal) -> str:
    """Return `value` without exponent or trailing zeros ("67445.9", "0")."""
    return f"{value.normalize():f}"


def order_body(order: Order, *, query: bool = True) -> dict:
    """Return a normal order as Query Order shows it (`query`), else as New/Cancel Order replies do.

    The replies differ as on Binance: New/Cancel carry cumQty, Query carries the creation time instead.
    """
    spec = spec_for(order.symbol)
    body = {
        "orderId": order.order_id, "symbol": order.symbol, "status": order.status,
        "clientOrderId": order.client_order_id, "price": spec.format_price(order.price),
        "avgPrice": fixed(order.avg_price, 5), "origQty": spec.format_quantity(order.quantity),
        "executedQty": spec.format_quantity(order.executed_qty), "cumQuote": fixed(order.cum_quote, 5),
        "timeInForce": order.time_in_force, "type": order.type,
        "reduceOnly": order.reduce_only, "closePosition": order.close_position, "side": order.side,
        "positionSide": order.position_side, "stopPrice": spec.format_price(order.stop_price),
        "workingType": order.working_type, "priceProtect": order.price_protect, "origType": order.orig_type,
        "priceMatch": "NONE", "selfTradePreventionMode": order.stp_mode, "goodTillDate": 0,
        "updateTime": order.update_ms,
    }
    if query:
        body["time"] = order.time_ms
    else:
        body["cumQty"] = body["executedQty"]
    return body


def algo_body(algo: AlgoOrder) -> dict:
    """Return an algo (conditional) order. SYNTHETIC: no recorded reply exists."""
    spec = spec_for(algo.symbol)
    return {
        "algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "algoType": "CONDITIONAL",
        "orderType": algo.order_type, "symbol": algo.symbol, "side": algo.side,
        "positionSide": algo.position_side, "timeInForce": algo.time_in_force,
        "quantity": spec.format_quantity(algo.quantity), "algoStatus": algo.status,
        "actualOrderId": str(algo.actual_order_id) if algo.actual_order_id else "",
        "actualPrice": "0.00000", "triggerPrice": spec.format_price(algo.trigger_price),
        "price": spec.format_price(algo.price), "icebergQuantity": None,
        "selfTradePreventionMode": algo.stp_mode, "workingType": algo.working_type, "priceMatch": "NONE",
        "closePosition": algo.close_position, "priceProtect": algo.price_protect,
        "reduceOnly": algo.reduce_only, "activatePrice": spec.format_price(algo.activate_price),
        "callbackRate": plain(algo.callback_rate), "createTime": algo.create_ms, "updateTime": algo.update_ms,
        "triggerTime": algo.trigger_ms, "goodTillDate": 0,
    }


def algo_cancel_body(algo: AlgoOrder) -> dict:
    """Return the Cancel Algo Order reply. SYNTHETIC, from the example in ccxt's parse_order comment."""
    return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}


def _break_even(position: Position, taker_rate: Decimal) -> Decimal:
    if not position.amount:
        return Decimal(0)
    factor = 1 + taker_rate if position.amount > 0 else 1 - taker_rate
    return (position.entry_price * factor).quantize(ledger.EIGHT_PLACES)


def position_v3(state: AccountState, position: Position, leverage: int, taker_rate: Decimal) -> dict:
    """Return one /fapi/v3/positionRisk entry."""
    spec = spec_for(position.symbol)
    mark = ledger.mark_of(state, position.symbol)
    initial = abs(position.amount) * mark / leverage
    open_order_initial = sum((ledger.order_initial_margin(state, o, leverage) for o in state.orders.values()
                              if o.is_open and o.symbol == position.symbol), Decimal(0))
    return {
        "symbol": position.symbol, "positionSide": position.position_side,
        "positionAmt": spec.format_quantity(position.amount), "entryPrice": plain(position.entry_price),
        "breakEvenPrice": plain(_break_even(position, taker_rate)), "markPrice": fixed(mark, 8),
        "unRealizedProfit": fixed(ledger.unrealized_pnl(position, mark), 8),
        "liquidationPrice": fixed(ledger.liquidation_price(state, position), 8), "isolatedMargin": "0",
        "notional": fixed(position.amount * mark, 8), "marginAsset": "USDT", "isolatedWallet": "0",
        "initialMargin": fixed(initial + open_order_initial, 8),
        "maintMargin": fixed(ledger.maint_margin(state, position), 8),
        "positionInitialMargin": fixed(initial, 8), "openOrderInitialMargin": fixed(open_order_initial, 8),
        "adl": 2 if position.amount else 0, "bidNotional": "0", "askNotional": "0",
        "updateTime": position.update_ms,
    }


def position_v2(state: AccountState, position: Position, leverage: int, taker_rate: Decimal) -> dict:
    """Return one /fapi/v2/positionRisk entry. SYNTHETIC: v2 fields from the Binance docs."""
    v3 = position_v3(state, position, leverage, taker_rate)
    keep = ("symbol", "positionAmt", "entryPrice", "breakEvenPrice", "markPrice", "unRealizedProfit",
            "liquidationPrice", "isolatedMargin", "notional", "isolatedWallet", "positionSide", "updateTime")
    margin_type = state.margin_type.get(position.symbol, "CROSSED")
    return {**{key: v3[key] for key in keep}, "leverage": str(leverage), "maxNotionalValue": "1000000000",
            "marginType": "isolated" if margin_type == "ISOLATED" else "cross", "isAutoAddMargin": "false",
            "adlQuantile": v3["adl"]}


def account_position_v3(position_entry: dict) -> dict:
    """Return the positions[] entry of /fapi/v3/account from a positionRisk v3 entry."""
    keep = ("symbol", "positionSide", "positionAmt", "isolatedMargin", "notional", "isolatedWallet",
            "initialMargin", "maintMargin", "updateTime")
    return {**{key: position_entry[key] for key in keep}, "unrealizedProfit": position_entry["unRealizedProfit"]}


def asset_usdt(summary: ledger.MarginSummary, update_ms: int) -> dict:
    """Return the USDT entry of assets[] in /fapi/v3/account."""
    return {
        "asset": "USDT", "walletBalance": fixed(summary.wallet_usdt, 8),
        "unrealizedProfit": fixed(summary.unrealized_usdt, 8),
        "marginBalance": fixed(summary.margin_balance_usdt, 8), "maintMargin": fixed(summary.maint_usdt, 8),
        "initialMargin": fixed(summary.initial_usdt, 8),
        "positionInitialMargin": fixed(summary.position_initial_usdt, 8),
        "openOrderInitialMargin": fixed(summary.open_order_initial_usdt, 8),
        "maxWithdrawAmount": fixed(max(summary.available_usdt, Decimal(0)), 8),
        "crossWalletBalance": fixed(summary.wallet_usdt, 8), "crossUnPnl": fixed(summary.unrealized_usdt, 8),
        "availableBalance": fixed(summary.available_usdt, 8), "marginAvailable": True, "updateTime": update_ms,
    }


def account_v3(summary: ledger.MarginSummary, positions: list[dict], update_ms: int) -> dict:
    """Return /fapi/v3/account from the margin summary and positionRisk v3 entries."""
    asset = asset_usdt(summary, update_ms)
    return {
        "feeTier": "0", "canTrade": True, "canDeposit": True, "canWithdraw": True, "tradeGroupId": "-1",
        "updateTime": 0, "multiAssetsMargin": False,
        "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": asset["maintMargin"],
        "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
        "totalMarginBalance": asset["marginBalance"],
        "totalPositionInitialMargin": asset["positionInitialMargin"],
        "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
        "totalCrossWalletBalance": asset["crossWalletBalance"], "totalCrossUnPnl": asset["crossUnPnl"],
        "availableBalance": asset["availableBalance"], "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "assets": [asset], "positions": [account_position_v3(p) for p in positions],
    }


def balance_entries(summary: ledger.MarginSummary, update_ms: int) -> list[dict]:
    """Return /fapi/v2|v3/balance. SYNTHETIC: field names from the Binance docs."""
    return [{
        "accountAlias": "SgsR", "asset": "USDT", "balance": fixed(summary.wallet_usdt, 8),
        "crossWalletBalance": fixed(summary.wallet_usdt, 8), "crossUnPnl": fixed(summary.unrealized_usdt, 8),
        "availableBalance": fixed(summary.available_usdt, 8),
        "maxWithdrawAmount": fixed(max(summary.available_usdt, Decimal(0)), 8), "marginAvailable": True,
        "updateTime": update_ms,
    }]


def trade_body(trade: Trade) -> dict:
    """Return one /fapi/v1/userTrades entry."""
    spec = spec_for(trade.symbol)
    return {
        "symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id, "side": trade.side,
        "price": spec.format_price(trade.price), "qty": spec.format_quantity(trade.qty),
        "realizedPnl": plain(trade.realized_pnl), "marginAsset": "USDT",
        "quoteQty": fixed(trade.quote_qty, 5), "commission": fixed(trade.commission, 8),
        "commissionAsset": "USDT", "time": trade.time_ms, "positionSide": trade.position_side,
        "maker": trade.maker, "buyer": trade.side == "BUY",
    }


def symbol_config(state: AccountState, default_leverage: int) -> list[dict]:
    """Return /fapi/v1/symbolConfig (leverage and margin type per symbol)."""
    return [{"symbol": symbol, "marginType": state.margin_type.get(symbol, "CROSSED"), "isAutoAddMargin": False,
             "leverage": state.leverage.get(symbol, default_leverage), "maxNotionalValue": "1000000000"}
            for symbol in SYMBOLS]
