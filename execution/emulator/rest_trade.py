"""Trade endpoints: orders, algo orders and user trades. Each handler takes (venue, params) -> body.

Ghost orders (Venue.ghosts) are unknown to every query: -2013 by id, absent from the lists, while the
matching engine still fills or cancels them. Writes meet Venue.reply_faults after they were applied:
the change stands and the client gets the error (a 5xx whose execution status is unknown).
"""
from __future__ import annotations

from collections.abc import Callable

from execution.emulator import errors, payloads
from execution.emulator.params import algo_request, order_request, required
from execution.emulator.symbols import spec_for
from execution.emulator.venue import Venue

CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _symbol(params: dict) -> str:
    return spec_for(required(params, "symbol")).symbol


def _limit(params: dict, default: int, maximum: int) -> int:
    limit = int(params.get("limit", default))
    if not 1 <= limit <= maximum:
        raise errors.invalid_value("limit")
    return limit


def order_new(venue: Venue, params: dict) -> dict:
    request = order_request(params)
    with venue.change() as now_ms:
        order = venue.engine.place_order(request, now_ms)
        return payloads.order_body(order, query=False)


def _visible(venue: Venue, client_id: str) -> bool:
    return client_id not in venue.ghosts


def _find(venue: Venue, params: dict):
    order = venue.engine.find_order(_symbol(params), params.get("orderId"), params.get("origClientOrderId"))
    if not _visible(venue, order.client_order_id):
        raise errors.order_not_found()
    return order


def order_get(venue: Venue, params: dict) -> dict:
    with venue.lock:
        return payloads.order_body(_find(venue, params))


def open_order_get(venue: Venue, params: dict) -> dict:
    with venue.lock:
        order = _find(venue, params)
        if not order.is_open:
            raise errors.BinanceError(-2013, "Order does not exist.")
        return payloads.order_body(order)


def order_cancel(venue: Venue, params: dict) -> dict:
    symbol = _symbol(params)
    with venue.change() as now_ms:
        order = venue.engine.cancel_order(symbol, params.get("orderId"), params.get("origClientOrderId"), now_ms)
        return payloads.order_body(order, query=False)


def open_orders(venue: Venue, params: dict) -> list:
    symbol = spec_for(params["symbol"]).symbol if params.get("symbol") else None
    with venue.lock:
        return [payloads.order_body(order) for order in venue.engine.open_orders(symbol)
                if _visible(venue, order.client_order_id)]


def all_orders(venue: Venue, params: dict) -> list:
    symbol = _symbol(params)
    limit = _limit(params, 500, 1000)
    start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**63))
    with venue.lock:
        orders = sorted((o for o in venue.state.orders.values() if o.symbol == symbol
                         and start <= o.time_ms <= end and _visible(venue, o.client_order_id)),
                        key=lambda o: o.order_id)
        if params.get("orderId"):
            orders = [o for o in orders if o.order_id >= int(params["orderId"])]
            return [payloads.order_body(o) for o in orders[:limit]]
        return [payloads.order_body(o) for o in orders[-limit:]]


def all_open_orders_cancel(venue: Venue, params: dict) -> dict:
    symbol = _symbol(params)
    with venue.change() as now_ms:
        venue.engine.cancel_all(symbol, now_ms)
    return CANCEL_ALL_DONE


def user_trades(venue: Venue, params: dict) -> list:
    symbol = _symbol(params)
    limit = _limit(params, 500, 1000)
    start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**63))
    from_id = int(params.get("fromId", 0))
    with venue.lock:
        trades = [t for t in venue.state.trades
                  if t.symbol == symbol and start <= t.time_ms <= end and t.trade_id >= from_id
                  and (not params.get("orderId") or t.order_id == int(params["orderId"]))]
        chosen = trades[:limit] if from_id or params.get("startTime") else trades[-limit:]
        return [payloads.trade_body(t) for t in chosen]


def algo_new(venue: Venue, params: dict) -> dict:
    request = algo_request(params)
    with venue.change() as now_ms:
        algo = venue.algos.place(request, now_ms)
        return payloads.algo_body(algo)


def algo_get(venue: Venue, params: dict) -> dict:
    with venue.lock:
        algo = venue.algos.find(params.get("algoId"), params.get("clientAlgoId"))
        if not _visible(venue, algo.client_algo_id):
            raise errors.order_not_found()
        return payloads.algo_body(algo)


def algo_cancel(venue: Venue, params: dict) -> dict:
    with venue.change() as now_ms:
        algo = venue.algos.cancel(params.get("algoId"), params.get("clientAlgoId"), now_ms)
        return payloads.algo_cancel_body(algo)


def open_algo_orders(venue: Venue, params: dict) -> list:
    symbol = spec_for(params["symbol"]).symbol if params.get("symbol") else None
    with venue.lock:
        return [payloads.algo_body(algo) for algo in venue.algos.open_orders(symbol)
                if _visible(venue, algo.client_algo_id)]


def all_algo_orders(venue: Venue, params: dict) -> list:
    symbol = _symbol(params)
    limit = _limit(params, 500, 1000)
    with venue.lock:
        found = sorted((a for a in venue.state.algo_orders.values()
                        if a.symbol == symbol and _visible(venue, a.client_algo_id)), key=lambda a: a.algo_id)
        return [payloads.algo_body(algo) for algo in found[-limit:]]


def algo_open_orders_cancel(venue: Venue, params: dict) -> dict:
    symbol = _symbol(params)
    with venue.change() as now_ms:
        venue.algos.cancel_all(symbol, now_ms)
    return CANCEL_ALL_DONE


def _then_reply_fault(route: tuple[str, str], handler: Callable[[Venue, dict], object]):
    """Wrap a write: apply it, then answer with the venue's next reply fault for the route, if any."""
    def handle(venue: Venue, params: dict) -> object:
        body = handler(venue, params)
        fault = venue.reply_faults.take(*route, venue.now_ms())
        failure = fault.error() if fault else None
        if failure is not None:
            raise failure
        return body

    handle.__name__ = handler.__name__
    handle.__doc__ = handler.__doc__
    return handle


WRITES = {
    ("POST", "/fapi/v1/order"): order_new,
    ("DELETE", "/fapi/v1/order"): order_cancel,
    ("POST", "/fapi/v1/algoOrder"): algo_new,
    ("DELETE", "/fapi/v1/algoOrder"): algo_cancel,
}
ROUTES = {
    **{route: _then_reply_fault(route, handler) for route, handler in WRITES.items()},
    ("GET", "/fapi/v1/order"): order_get,
    ("GET", "/fapi/v1/openOrder"): open_order_get,
    ("GET", "/fapi/v1/openOrders"): open_orders,
    ("GET", "/fapi/v1/allOrders"): all_orders,
    ("DELETE", "/fapi/v1/allOpenOrders"): all_open_orders_cancel,
    ("GET", "/fapi/v1/userTrades"): user_trades,
    ("GET", "/fapi/v1/algoOrder"): algo_get,
    ("GET", "/fapi/v1/openAlgoOrders"): open_algo_orders,
    ("GET", "/fapi/v1/allAlgoOrders"): all_algo_orders,
    ("DELETE", "/fapi/v1/algoOpenOrders"): algo_open_orders_cancel,
}
