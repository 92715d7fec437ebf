"""User data stream events in Binance USD-M formats (ORDER_TRADE_UPDATE, ALGO_UPDATE, ACCOUNT_UPDATE).

SYNTHETIC: no recorded stream exists; field names follow the Binance "User Data Streams" docs and the
examples in ccxt.pro's binance.py (handle_order_update, handle_account_update).
"""
from __future__ import annotations

from decimal import Decimal

from execution.emulator.payloads import fixed, plain
from execution.emulator.state import AlgoOrder, Order, Position, Trade
from execution.emulator.symbols import spec_for


def order_trade_update(order: Order, execution_type: str, trade: Trade | None, now_ms: int) -> dict:
    """Return ORDER_TRADE_UPDATE for a new, filled, canceled or expired order."""
    spec = spec_for(order.symbol)
    last_qty = trade.qty if trade else Decimal(0)
    last_price = trade.price if trade else Decimal(0)
    body = {
        "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.type,
        "f": order.time_in_force, "q": spec.format_quantity(order.quantity), "p": spec.format_price(order.price),
        "ap": fixed(order.avg_price, 5), "sp": spec.format_price(order.stop_price), "x": execution_type,
        "X": order.status, "i": order.order_id, "l": spec.format_quantity(last_qty),
        "z": spec.format_quantity(order.executed_qty), "L": spec.format_price(last_price), "T": now_ms,
        "t": trade.trade_id if trade else 0, "b": "0", "a": "0", "m": bool(trade and trade.maker),
        "R": order.reduce_only, "wt": order.working_type, "ot": order.orig_type, "ps": order.position_side,
        "cp": order.close_position, "rp": plain(trade.realized_pnl) if trade else "0", "pP": order.price_protect,
        "si": 0, "ss": 0, "V": order.stp_mode, "pm": "NONE", "gtd": 0,
    }
    if trade:
        body |= {"N": "USDT", "n": fixed(trade.commission, 8)}
    return {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": body}


def algo_update(algo: AlgoOrder, now_ms: int, executed: Order | None = None) -> dict:
    """Return ALGO_UPDATE for a change of an algo order's status."""
    spec = spec_for(algo.symbol)
    return {"e": "ALGO_UPDATE", "T": now_ms, "E": now_ms, "o": {
        "caid": algo.client_algo_id, "aid": algo.algo_id, "at": "CONDITIONAL", "o": algo.order_type,
        "s": algo.symbol, "S": algo.side, "ps": algo.position_side, "f": algo.time_in_force,
        "q": spec.format_quantity(algo.quantity), "X": algo.status,
        "ai": str(algo.actual_order_id) if algo.actual_order_id else "",
        "ap": fixed(executed.avg_price, 5) if executed else "0.00000",
        "aq": spec.format_quantity(executed.executed_qty) if executed else "0.000",
        "act": executed.type if executed else "0", "tp": spec.format_price(algo.trigger_price),
        "p": spec.format_price(algo.price), "V": algo.stp_mode, "wt": algo.working_type, "pm": "NONE",
        "cp": algo.close_position, "pP": algo.price_protect, "R": algo.reduce_only, "tt": algo.trigger_ms,
        "gtd": 0, "rm": algo.reason,
    }}


def account_update(reason: str, wallet_usdt: Decimal, positions: list[Position], marks: dict[str, Decimal],
                   now_ms: int) -> dict:
    """Return ACCOUNT_UPDATE with the USDT wallet and the given position legs."""
    def leg(position: Position) -> dict:
        spec = spec_for(position.symbol)
        mark = marks.get(position.symbol, Decimal(0))
        unrealized = (mark - position.entry_price) * position.amount if position.amount else Decimal(0)
        return {"s": position.symbol, "pa": spec.format_quantity(position.amount),
                "ep": plain(position.entry_price), "bep": plain(position.entry_price),
                "cr": plain(position.realized_pnl), "up": fixed(unrealized, 8), "mt": "cross", "iw": "0",
                "ps": position.position_side, "ma": "USDT"}

    wallet = fixed(wallet_usdt, 8)
    return {"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
        "m": reason, "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
        "P": [leg(p) for p in positions]}}


def listen_key_expired(listen_key: str, now_ms: int) -> dict:
    """Return the listenKeyExpired event."""
    return {"e": "listenKeyExpired", "E": now_ms, "listenKey": listen_key}
