"""The matching engine: places, fills and cancels orders against one price per symbol.

There is no order book: a resting limit order fills (as maker, at its limit price) once the last price
reaches it; market orders and crossing limits fill at once (as taker) at the last price, market orders
moved against the taker by the configured slippage. Every change appends user-stream events to
`events`; the caller drains them. Time is passed in (`now_ms`); no I/O.

Modelled on Binance's documented behaviour, for fault scenarios:
- a fill plan (`slices`) splits one order's fills into given quantities, one per matching event;
- a cancel can race the last fill (`cancel_races`): when the fill reaches the book first the cancel
  is refused with -2011 "Unknown order sent." and the order is FILLED, as Binance answers a cancel of
  an order that has just filled;
- a MARKET order whose fill price lies outside the PERCENT_PRICE band around the mark price is
  refused with -4131 (the band exchangeInfo advertises: multiplierUp 1.05, multiplierDown 0.95);
- the venue closes positions itself (`force_close`): liquidation orders carry client ids
  "autoclose-<ms>", ADL ones "adl_autoclose" (User Data Streams, ORDER_TRADE_UPDATE), and a
  liquidation expires the account's open orders (expiry reason 5).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from execution.emulator import errors, events, ledger
from execution.emulator.params import OrderRequest
from execution.emulator.state import AccountState, Order, Position, Price, Trade
from execution.emulator.symbols import spec_for

FillFraction = Callable[[Order], Decimal]
# exchangeInfo's PERCENT_PRICE filter (symbols.py): a market fill may not stray further from the mark.
PERCENT_PRICE_UP = Decimal("1.0500")
PERCENT_PRICE_DOWN = Decimal("0.9500")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal(0)
    default_leverage: int = 20
    # "account": a client order id is never accepted twice (safe retries after a timeout);
    # "open": only open orders must have unique ids (Binance's documented rule).
    client_id_scope: str = "account"


class Engine:
    """Apply order and price changes to an AccountState."""

    def __init__(self, state: AccountState, config: EngineConfig):
        self.state = state
        self.config = config
        self.events: list[dict] = []
        # Fraction of the remaining quantity each matching event fills; None fills everything.
        self.fill_fraction: FillFraction | None = None
        # Called with (order, now_ms) when an order reaches a final status (the algo book listens).
        self.order_done_hooks: list[Callable[[Order, int], None]] = []
        # Client order id -> the quantities of its next fills, one per matching event (fill_in_slices).
        self.slices: dict[str, deque[Decimal]] = {}
        # Client order id -> whether its last fill beats a cancel that arrives at the same moment.
        self.cancel_races: dict[str, bool] = {}

    # -- prices ---------------------------------------------------------------------------------

    def price(self, symbol: str) -> Price:
        """Return the current price of `symbol`; raise when none was set."""
        if symbol not in self.state.prices:
            raise errors.no_price(symbol)
        return self.state.prices[symbol]

    def update_price(self, symbol: str, last: Decimal, mark: Decimal, now_ms: int) -> None:
        """Record the last and mark price of `symbol` (match_resting then fills what it crossed)."""
        spec_for(symbol)
        self.state.prices[symbol] = Price(last, mark, now_ms)

    def match_resting(self, symbol: str, now_ms: int) -> None:
        """Fill, as maker at their limit, the resting limit orders the last price has reached."""
        last = self.price(symbol).last
        for order in self.open_orders(symbol):
            if order.type == "LIMIT" and self._crosses(order, last):
                self._match(order, order.price, maker=True, now_ms=now_ms)

    # -- placing --------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest, now_ms: int, *, algo_id: int = 0, orig_type: str = "",
                    stop_price: Decimal = Decimal(0), working_type: str = "CONTRACT_PRICE",
                    close_position: bool = False) -> Order:
        """Validate, accept and match one order; return it. Raise BinanceError when refused."""
        spec = spec_for(request.symbol)
        position_side = self._position_side(request)
        position = self.state.position(request.symbol, position_side)
        reducing = self._is_reducing(request.side, position_side, request.reduce_only or close_position)
        if not algo_id:
            self._check_client_id(request.client_order_id)
        last = self.price(request.symbol).last
        if reducing and ledger.closable_qty(position, request.side) <= 0:
            raise errors.reduce_only_rejected()
        reference = request.price if request.type == "LIMIT" else last
        if not reducing and request.quantity * reference < spec.min_notional_usdt:
            raise errors.notional_too_small(f"{spec.min_notional_usdt:f}")
        crosses = request.type == "MARKET" or self._crosses_price(request.side, request.price, last)
        if request.time_in_force == "GTX" and crosses:
            raise errors.post_only_rejected()
        if request.type == "MARKET":
            self._check_percent_price(request, last)
        if not reducing:
            self._check_margin(request, position, reference)
        order = Order(
            order_id=self.state.new_id(), client_order_id=request.client_order_id or f"emu{now_ms}{self.state.next_id}",
            symbol=request.symbol, side=request.side, position_side=position_side, type=request.type,
            orig_type=orig_type or request.type, time_in_force=request.time_in_force, quantity=request.quantity,
            price=request.price, reduce_only=reducing and position_side == "BOTH", time_ms=now_ms, update_ms=now_ms,
            stop_price=stop_price, working_type=working_type, close_position=close_position, algo_id=algo_id,
        )
        self.state.orders[str(order.order_id)] = order
        self.events.append(events.order_trade_update(order, "NEW", None, now_ms))
        if crosses:
            self._match(order, self._taker_price(order, last), maker=False, now_ms=now_ms)
        if order.is_open and (order.type == "MARKET" or order.time_in_force in ("IOC", "FOK")):
            self.finish(order, "EXPIRED", now_ms)
        return order

    def _position_side(self, request: OrderRequest) -> str:
        return position_side_for(self.state.dual_side, request.position_side, request.reduce_only)

    def _is_reducing(self, side: str, position_side: str, reduce_only: bool) -> bool:
        closes_leg = (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))
        return reduce_only or closes_leg

    def _check_client_id(self, client_order_id: str | None) -> None:
        if client_order_id is None:
            return
        scope_all = self.config.client_id_scope == "account"
        for order in self.state.orders.values():
            if order.client_order_id == client_order_id and (scope_all or order.is_open):
                raise errors.client_id_duplicated()

    def _check_percent_price(self, request: OrderRequest, last: Decimal) -> None:
        # Binance checks the price a market order would take against the mark (-4131), reduce-only too.
        mark = self.price(request.symbol).mark
        taker = self._slipped(request.symbol, request.side, last)
        if (request.side == "BUY" and taker > mark * PERCENT_PRICE_UP) or (
                request.side == "SELL" and taker < mark * PERCENT_PRICE_DOWN):
            raise errors.percent_price_rejected()

    def _check_margin(self, request: OrderRequest, position: Position, reference: Decimal) -> None:
        opening = request.quantity - ledger.closable_qty(position, request.side)
        if opening <= 0:
            return
        leverage = self.state.leverage.get(request.symbol, self.config.default_leverage)
        summary = ledger.summarize(self.state, self.config.default_leverage)
        if opening * reference / leverage > summary.available_usdt:
            raise errors.margin_insufficient()

    # -- matching -------------------------------------------------------------------------------

    @staticmethod
    def _crosses_price(side: str, limit: Decimal, last: Decimal) -> bool:
        return last <= limit if side == "BUY" else last >= limit

    def _crosses(self, order: Order, last: Decimal) -> bool:
        return self._crosses_price(order.side, order.price, last)

    def _taker_price(self, order: Order, last: Decimal) -> Decimal:
        if order.type == "LIMIT":
            return min(last, order.price) if order.side == "BUY" else max(last, order.price)
        return self._slipped(order.symbol, order.side, last)

    def _slipped(self, symbol: str, side: str, last: Decimal) -> Decimal:
        tick = spec_for(symbol).tick_size
        slip = last * self.config.slippage_bps / Decimal(10_000)
        # Round against the taker: slippage never improves the fill.
        if side == "BUY":
            return ((last + slip) / tick).to_integral_value(ROUND_CEILING) * tick
        return ((last - slip) / tick).to_integral_value(ROUND_FLOOR) * tick

    def _match(self, order: Order, price: Decimal, *, maker: bool, now_ms: int) -> None:
        qty = order.remaining
        planned = self.slices.get(order.client_order_id)
        if planned:
            qty = min(planned.popleft(), qty)
        elif self.fill_fraction is not None:
            step = spec_for(order.symbol).step_size
            qty = (qty * self.fill_fraction(order) / step).to_integral_value(ROUND_DOWN) * step
        position = self.state.position(order.symbol, order.position_side)
        if order.reduce_only or order.close_position or self._is_reducing(order.side, order.position_side, False):
            qty = min(qty, ledger.closable_qty(position, order.side))
            if qty <= 0:
                self.finish(order, "EXPIRED", now_ms)  # nothing left to reduce
                return
        if qty > 0:
            self._fill(order, position, qty, price, maker, now_ms)

    def _fill(self, order: Order, position: Position, qty: Decimal, price: Decimal, maker: bool,
              now_ms: int) -> None:
        rate = self.config.maker_fee_rate if maker else self.config.taker_fee_rate
        pnl = ledger.apply_fill(position, order.side, qty, price, now_ms)
        fee = ledger.commission(qty * price, rate)
        self.state.wallet_usdt += pnl - fee
        order.executed_qty += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_ms = self.state.update_ms = now_ms
        trade = Trade(self.state.new_id(), order.order_id, order.symbol, order.side, order.position_side, price,
                      qty, pnl, fee, maker, now_ms)
        self.state.trades.append(trade)
        self.events.append(events.order_trade_update(order, "TRADE", trade, now_ms))
        self.account_update("ORDER", [position], now_ms)
        if not order.is_open:
            self._order_done(order, now_ms)

    def account_update(self, reason: str, positions: list[Position], now_ms: int) -> None:
        """Emit ACCOUNT_UPDATE with the wallet and the given legs."""
        marks = {symbol: price.mark for symbol, price in self.state.prices.items()}
        self.events.append(events.account_update(reason, self.state.wallet_usdt, positions, marks, now_ms))

    def finish(self, order: Order, status: str, now_ms: int) -> None:
        """Close an open order as CANCELED or EXPIRED."""
        order.status = status
        order.update_ms = now_ms
        self.events.append(events.order_trade_update(order, status, None, now_ms))
        self._order_done(order, now_ms)

    def _order_done(self, order: Order, now_ms: int) -> None:
        for hook in self.order_done_hooks:
            hook(order, now_ms)

    # -- reading and cancelling -----------------------------------------------------------------

    def _open_orders(self, symbol: str | None) -> list[Order]:
        return [o for o in self.state.orders.values() if o.is_open and symbol in (None, o.symbol)]

    def open_orders(self, symbol: str | None) -> list[Order]:
        """Return the open normal orders, oldest first."""
        return sorted(self._open_orders(symbol), key=lambda o: o.order_id)

    def find_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> Order:
        """Return an order by id or client id (the newest with that client id); raise -2013."""
        if not order_id and not client_order_id:
            raise errors.mandatory_missing("orderId")
        if order_id:
            order = self.state.orders.get(str(order_id))
            matches = [order] if order else []
        else:
            matches = [o for o in self.state.orders.values() if o.client_order_id == client_order_id]
        matches = [o for o in matches if o.symbol == symbol]
        if not matches:
            raise errors.order_not_found()
        return max(matches, key=lambda o: o.order_id)

    def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None, now_ms: int) -> Order:
        """Cancel one open order; raise -2011 when it is unknown or already final (or its last fill wins a race)."""
        try:
            order = self.find_order(symbol, order_id, client_order_id)
        except errors.BinanceError as exc:
            if exc.code == -2013:
                raise errors.unknown_order_sent() from exc
            raise
        if order.is_open and self.cancel_races.pop(order.client_order_id, False):
            # The last fill reached the book just before the cancel: the market touched the limit again.
            self._match(order, order.price or self._taker_price(order, self.price(symbol).last), maker=True,
                        now_ms=now_ms)
        if not order.is_open:
            raise errors.unknown_order_sent()
        self.slices.pop(order.client_order_id, None)
        self.finish(order, "CANCELED", now_ms)
        return order

    def cancel_all(self, symbol: str, now_ms: int) -> None:
        """Cancel every open normal order of `symbol`."""
        for order in self.open_orders(symbol):
            self.finish(order, "CANCELED", now_ms)

    # -- the venue's own orders -----------------------------------------------------------------

    def fill_in_slices(self, client_order_id: str, quantities: Sequence[Decimal]) -> None:
        """Make the next matching events of an order fill `quantities`, one each (then what is left)."""
        self.slices[client_order_id] = deque(Decimal(q) for q in quantities)

    def force_close(self, symbol: str, position_side: str, client_order_id: str, price: Decimal, now_ms: int,
                    *, orig_type: str) -> Order | None:
        """Close a whole position with the venue's own IOC order at `price` (taker); None when flat."""
        position = self.state.position(symbol, position_side)
        if not position.amount:
            return None
        side = "SELL" if position.amount > 0 else "BUY"
        order = Order(
            order_id=self.state.new_id(), client_order_id=client_order_id, symbol=symbol, side=side,
            position_side=position_side, type="LIMIT", orig_type=orig_type, time_in_force="IOC",
            quantity=abs(position.amount), price=price, reduce_only=position_side == "BOTH", time_ms=now_ms,
            update_ms=now_ms)
        self.state.orders[str(order.order_id)] = order
        self.events.append(events.order_trade_update(order, "NEW", None, now_ms))
        self._fill(order, position, order.quantity, price, False, now_ms)
        return order

    def expire_open_orders(self, now_ms: int) -> None:
        """Expire every open normal order of the account (Binance expiry reason 5: liquidated)."""
        for order in self.open_orders(None):
            self.finish(order, "EXPIRED", now_ms)


def position_side_for(dual_side: bool, position_side: str | None, reduce_only: bool) -> str:
    """Return the position side an order or algo order works on; raise Binance's error for a bad combination."""
    if dual_side:
        if position_side not in ("LONG", "SHORT"):
            raise errors.position_side_mismatch()
        if reduce_only:  # hedge mode closes by side, not by reduceOnly
            raise errors.parameter_not_required("reduceOnly")
        return position_side
    if position_side not in (None, "BOTH"):
        raise errors.position_side_mismatch()
    return "BOTH"
