"""Conditional orders of the Algo Order API: stops, take-profits and trailing stops.

An algo order waits outside the matching engine. When its trigger price is reached (by the mark price
for workingType MARK_PRICE, the last price for CONTRACT_PRICE) it places a MARKET order (the *_MARKET
and trailing types) or a LIMIT order (STOP, TAKE_PROFIT) and turns TRIGGERED; it turns FINISHED once
that order is final, REJECTED when the order is refused (e.g. reduce-only with no position left).

A symbol holds at most MAX_OPEN_ALGO_ORDERS untriggered algo orders (exchangeInfo's
MAX_NUM_ALGO_ORDERS filter); one more is refused with -4045 "Reach max stop order limit.".
"""
from __future__ import annotations

from decimal import Decimal

from execution.emulator import errors, events, ledger
from execution.emulator.matching import Engine, position_side_for
from execution.emulator.params import AlgoRequest, OrderRequest
from execution.emulator.state import AlgoOrder, Order
from execution.emulator.symbols import spec_for

STOP_TYPES = frozenset({"STOP", "STOP_MARKET"})
MAX_OPEN_ALGO_ORDERS = 10   # exchangeInfo's MAX_NUM_ALGO_ORDERS filter (symbols.py)
LIMIT_TYPES = frozenset({"STOP", "TAKE_PROFIT"})


def is_triggered(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    """Return whether a stop or take-profit with `trigger` fires at `price`."""
    if order_type in STOP_TYPES:
        return price >= trigger if side == "BUY" else price <= trigger
    return price <= trigger if side == "BUY" else price >= trigger


def trail(algo: AlgoOrder, price: Decimal) -> bool:
    """Track the best price of a trailing stop; return whether `price` retraced by the callback rate."""
    selling = algo.side == "SELL"
    if algo.extreme_price == 0:
        activated = price >= algo.activate_price if selling else price <= algo.activate_price
        if not activated:
            return False
        algo.extreme_price = price
    rate = algo.callback_rate / 100
    if selling:
        algo.extreme_price = max(algo.extreme_price, price)
        return price <= algo.extreme_price * (1 - rate)
    algo.extreme_price = min(algo.extreme_price, price)
    return price >= algo.extreme_price * (1 + rate)


class AlgoBook:
    """Place, cancel and trigger algo orders; children go through the Engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.state = engine.state
        engine.order_done_hooks.append(self._child_done)

    def _reference(self, algo_working_type: str, symbol: str) -> Decimal:
        price = self.engine.price(symbol)
        return price.mark if algo_working_type == "MARK_PRICE" else price.last

    def place(self, request: AlgoRequest, now_ms: int) -> AlgoOrder:
        """Validate and store one algo order; raise -2021 when its trigger is already crossed."""
        spec = spec_for(request.symbol)
        position_side = self._position_side(request)
        self._check_client_id(request.client_algo_id)
        reference = self._reference(request.working_type, request.symbol)
        trailing = request.order_type == "TRAILING_STOP_MARKET"
        if not trailing and is_triggered(request.order_type, request.side, request.trigger_price, reference):
            raise errors.would_trigger_immediately()
        position = self.state.position(request.symbol, position_side)
        closes_leg = (position_side, request.side) in (("LONG", "SELL"), ("SHORT", "BUY"))
        if request.reduce_only and ledger.closable_qty(position, request.side) <= 0:
            raise errors.reduce_only_rejected()
        if len(self.open_orders(request.symbol)) >= MAX_OPEN_ALGO_ORDERS:
            raise errors.max_stop_orders()
        notional_price = request.price or request.trigger_price or reference
        reducing = request.reduce_only or request.close_position or closes_leg
        if not reducing and request.quantity * notional_price < spec.min_notional_usdt:
            raise errors.notional_too_small(f"{spec.min_notional_usdt:f}")
        algo = AlgoOrder(
            algo_id=self.state.new_id(), client_algo_id=request.client_algo_id or f"emualgo{self.state.next_id}",
            symbol=request.symbol, side=request.side, position_side=position_side,
            order_type=request.order_type, time_in_force=request.time_in_force, quantity=request.quantity,
            price=request.price if request.order_type in LIMIT_TYPES else Decimal(0),
            trigger_price=request.trigger_price, working_type=request.working_type,
            reduce_only=request.reduce_only, close_position=request.close_position, create_ms=now_ms,
            update_ms=now_ms, price_protect=request.price_protect, activate_price=request.activate_price,
            callback_rate=request.callback_rate,
        )
        if trailing and algo.activate_price:
            trail(algo, reference)  # activates at once when the price is already past activatePrice
        elif trailing:
            algo.extreme_price = reference
        self.state.algo_orders[str(algo.algo_id)] = algo
        self.engine.events.append(events.algo_update(algo, now_ms))
        return algo

    def _position_side(self, request: AlgoRequest) -> str:
        return position_side_for(self.state.dual_side, request.position_side, request.reduce_only)

    def _check_client_id(self, client_algo_id: str | None) -> None:
        if client_algo_id is None:
            return
        scope_all = self.engine.config.client_id_scope == "account"
        for algo in self.state.algo_orders.values():
            if algo.client_algo_id == client_algo_id and (scope_all or algo.is_open):
                raise errors.client_id_duplicated()

    def trigger_due(self, symbol: str, now_ms: int) -> None:
        """Fire every open algo order of `symbol` whose condition the current prices meet."""
        for algo in self.open_orders(symbol):
            reference = self._reference(algo.working_type, symbol)
            if algo.order_type == "TRAILING_STOP_MARKET":
                due = trail(algo, reference)
            else:
                due = is_triggered(algo.order_type, algo.side, algo.trigger_price, reference)
            if due:
                self._trigger(algo, reference, now_ms)

    def _trigger(self, algo: AlgoOrder, reference: Decimal, now_ms: int) -> None:
        algo.status, algo.trigger_ms, algo.update_ms = "TRIGGERING", now_ms, now_ms
        if algo.order_type == "TRAILING_STOP_MARKET":
            algo.trigger_price = reference
        self.engine.events.append(events.algo_update(algo, now_ms))
        position = self.state.position(algo.symbol, algo.position_side)
        qty = ledger.closable_qty(position, algo.side) if algo.close_position else algo.quantity
        if qty <= 0:
            self._reject(algo, errors.reduce_only_rejected().msg, now_ms)
            return
        limit = algo.order_type in LIMIT_TYPES
        # SYNTHETIC: the triggered order carries the algo's client id, so it can be found by it.
        request = OrderRequest(
            symbol=algo.symbol, side=algo.side, type="LIMIT" if limit else "MARKET", quantity=qty,
            price=algo.price if limit else Decimal(0), time_in_force=algo.time_in_force if limit else "GTC",
            reduce_only=algo.reduce_only, position_side=None if algo.position_side == "BOTH" else algo.position_side,
            client_order_id=algo.client_algo_id,
        )
        try:
            order = self.engine.place_order(
                request, now_ms, algo_id=algo.algo_id, orig_type=algo.order_type, stop_price=algo.trigger_price,
                working_type=algo.working_type, close_position=algo.close_position)
        except errors.BinanceError as exc:
            self._reject(algo, exc.msg, now_ms)
            return
        algo.actual_order_id = order.order_id
        if order.is_open:
            algo.status = "TRIGGERED"
            self.engine.events.append(events.algo_update(algo, now_ms, order))

    def _reject(self, algo: AlgoOrder, reason: str, now_ms: int) -> None:
        algo.status, algo.reason, algo.update_ms = "REJECTED", reason, now_ms
        self.engine.events.append(events.algo_update(algo, now_ms))

    def _child_done(self, order: Order, now_ms: int) -> None:
        algo = self.state.algo_orders.get(str(order.algo_id)) if order.algo_id else None
        if algo is None:
            return
        algo.actual_order_id = order.order_id
        algo.status, algo.update_ms = "FINISHED", now_ms
        self.engine.events.append(events.algo_update(algo, now_ms, order))

    def open_orders(self, symbol: str | None) -> list[AlgoOrder]:
        """Return the untriggered algo orders, oldest first."""
        found = [a for a in self.state.algo_orders.values() if a.is_open and symbol in (None, a.symbol)]
        return sorted(found, key=lambda a: a.algo_id)

    def find(self, algo_id: str | None, client_algo_id: str | None) -> AlgoOrder:
        """Return an algo order by algoId or clientAlgoId (the newest); raise -2013."""
        if not algo_id and not client_algo_id:
            raise errors.mandatory_missing("algoId")
        if algo_id:
            found = [a for a in [self.state.algo_orders.get(str(algo_id))] if a]
        else:
            found = [a for a in self.state.algo_orders.values() if a.client_algo_id == client_algo_id]
        if not found:
            raise errors.order_not_found()
        return max(found, key=lambda a: a.algo_id)

    def cancel(self, algo_id: str | None, client_algo_id: str | None, now_ms: int) -> AlgoOrder:
        """Cancel one untriggered algo order; raise -2011 when it is unknown or no longer open."""
        try:
            algo = self.find(algo_id, client_algo_id)
        except errors.BinanceError as exc:
            if exc.code == -2013:
                raise errors.unknown_order_sent() from exc
            raise
        if not algo.is_open:
            raise errors.unknown_order_sent()
        algo.status, algo.update_ms = "CANCELED", now_ms
        self.engine.events.append(events.algo_update(algo, now_ms))
        return algo

    def cancel_all(self, symbol: str, now_ms: int) -> None:
        """Cancel every untriggered algo order of `symbol`."""
        for algo in self.open_orders(symbol):
            algo.status, algo.update_ms = "CANCELED", now_ms
            self.engine.events.append(events.algo_update(algo, now_ms))
