"""Binance USD-M error replies: the HTTP status, code and message the real venue sends.

Codes and messages follow Binance's "Error Codes" page for USDS-M futures; ccxt maps them to its
exception classes by code (binance.py `exceptions`), so the codes matter more than the wording.
"""
from __future__ import annotations


class BinanceError(Exception):
    """A refusal the venue answers with `{"code": code, "msg": msg}` and an HTTP error status."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict:
        """Return the JSON error body."""
        return {"code": self.code, "msg": self.msg}


def api_key_invalid() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def api_key_rejected() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def signature_invalid() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def timestamp_outside_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def mandatory_missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def parameter_not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def invalid_value(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def precision_over_maximum() -> BinanceError:
    return BinanceError(-1111, "Precision is over the maximum defined for this asset.")


def price_not_on_tick() -> BinanceError:
    return BinanceError(-4014, "Price not increased by tick size.")


def quantity_not_positive() -> BinanceError:
    return BinanceError(-4003, "Quantity less than or equal to zero.")


def order_not_found() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def unknown_order_sent() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.")


def client_id_duplicated() -> BinanceError:
    return BinanceError(-4116, "ClientOrderId is duplicated.")


def client_id_invalid() -> BinanceError:
    return BinanceError(-4015, "Client order id is not valid.")


def notional_too_small(min_notional: str) -> BinanceError:
    return BinanceError(
        -4164, f"Order's notional must be no smaller than {min_notional} (unless you choose reduce only).")


def margin_insufficient() -> BinanceError:
    return BinanceError(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> BinanceError:
    return BinanceError(-2022, "ReduceOnly Order is rejected.")


def would_trigger_immediately() -> BinanceError:
    return BinanceError(-2021, "Order would immediately trigger.")


def stop_triggers_immediately() -> BinanceError:
    # The algo service's wording of -2021 for TP/SL orders (ccxt files both under OrderImmediatelyFillable).
    return BinanceError(-4142, "REJECT: take profit or stop order will be triggered immediately.")


def algo_endpoint_required() -> BinanceError:
    return BinanceError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                               "endpoints instead.")


def max_stop_orders() -> BinanceError:
    return BinanceError(-4045, "Reach max stop order limit.")


def percent_price_rejected() -> BinanceError:
    return BinanceError(-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit.")


def post_only_rejected() -> BinanceError:
    return BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                               "The order will not be recorded in the order history")


def position_side_mismatch() -> BinanceError:
    return BinanceError(-4061, "Order's position side does not match user's setting.")


def position_mode_unchanged() -> BinanceError:
    return BinanceError(-4059, "No need to change position side.")


def position_mode_blocked_by_orders() -> BinanceError:
    return BinanceError(-4067, "Position side cannot be changed if there exists open orders.")


def position_mode_blocked_by_position() -> BinanceError:
    return BinanceError(-4068, "Position side cannot be changed if there exists position.")


def margin_type_unchanged() -> BinanceError:
    return BinanceError(-4046, "No need to change margin type.")


def margin_type_blocked_by_position() -> BinanceError:
    return BinanceError(-4048, "Margin type cannot be changed if there exists position.")


def leverage_invalid(leverage: str) -> BinanceError:
    return BinanceError(-4028, f"Leverage {leverage} is not valid")


def listen_key_missing() -> BinanceError:
    return BinanceError(-1125, "This listenKey does not exist.")


def no_price(symbol: str) -> BinanceError:
    # Not a Binance reply: the emulator has no price for the symbol yet (set one with set_price).
    return BinanceError(-1001, f"Internal error; unable to process your request. No price set for {symbol}.", 500)


def unknown_execution_status() -> BinanceError:
    # Binance: a 5xx "is NOT a failure; the execution status is UNKNOWN and could have been a success".
    return BinanceError(-1000, "Unknown error, please check your request or try again later.", 503)


def internal_error() -> BinanceError:
    return BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 500)


def too_many_requests() -> BinanceError:
    return BinanceError(-1003, "Too many requests; current limit is 2400 requests per minute. Please use the "
                               "websocket for live updates to avoid polling the API.", 429)


def ip_banned(until_ms: int) -> BinanceError:
    return BinanceError(-1003, f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. Please use the "
                               "websocket for live updates to avoid bans.", 418)


def unknown_path(method: str, path: str) -> BinanceError:
    return BinanceError(-5000, f"Path {path}, Method {method} is invalid", 404)
