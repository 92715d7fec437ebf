"""ccxt broker: translate between the Broker port and a ccxt exchange (Binance USD-M; Bitget and Gate basics).

Translation only: no paper branches, no decisions. Binance conditional orders (stop-market, take-profit)
live in the Algo Order API since 2025-12-09: ccxt sends them to /fapi/v1/algoOrder when given
stopLossPrice / takeProfitPrice, with the client id as clientAlgoId, and they are read or cancelled
only with params {"trigger": True}. Venue errors become the base.py family; writes are never retried
here, reads are retried with bounded backoff. RequestBudget keeps the request weight under Binance's limit.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

import ccxt

from execution.brokers.base import (BrokerError, DuplicateClientId, ExchangeUnavailable, ExecutionReport, FillReport,
                                    IpBanned, OrderNotFound, RateLimited, UnknownOutcome, VenueBalance, VenueOrder,
                                    VenuePosition, WouldTriggerImmediately)
from execution.oms import OrderIntent, OrderRejected

logger = logging.getLogger(__name__)

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

# Request weights of the USD-M endpoints used (Binance docs), checked against the budget before sending.
# Placing an order costs 0 IP weight (it counts against the order-rate limits); cancels and queries 1.
WEIGHTS = {"order": 1, "open_orders": 1, "open_orders_all": 40, "positions": 5, "trades": 5, "balance": 5,
           "algo_history": 5, "position_mode": 30, "leverage": 5, "margin_mode": 5, "setup": 1, "time": 1,
           "markets": 1}

CODE_PATTERN = re.compile(r'"code"\s*:\s*"?(-?\d+)')
MESSAGE_PATTERN = re.compile(r'"msg"\s*:\s*"([^"]*)"')
BAN_PATTERN = re.compile(r"banned until (\d{12,})")
# ccxt raises 418/429 as DDoSProtection("<exchange id> <status> <reason> <body>").
STATUS_PATTERN = re.compile(r"^\S+ (418|429)\b")
DEFAULT_BAN_S = 120          # Binance's shortest ban, when the reply names no end


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the venues this broker speaks to."""

    conditional_orders: bool = False        # stops and take-profits supported (and tested) here
    working_type_param: str = ""            # the order param choosing the trigger price (mark or last)
    client_id_prefix: str = ""              # the venue's mandatory client id prefix
    client_id_is_order_id: bool = False     # fetch and cancel take the client id in place of the order id
    trades_order_param: str = ""            # the trade-list filter by order id, when the venue has one


DIALECTS = {
    "binanceusdm": Dialect(conditional_orders=True, working_type_param="workingType", trades_order_param="orderId"),
    "bitget": Dialect(),
    # Gate wants "t-" first; ccxt adds it only to ids not starting with "t", and ours start with "tb-".
    "gate": Dialect(client_id_prefix="t-", client_id_is_order_id=True),
}


class RequestBudget:
    """Binance's per-minute request weight, fed from X-MBX-USED-WEIGHT-1M; pure: time is passed in.

    Reads stop at `read_fraction` of the limit; orders and cancels may use the rest, so protection
    never queues behind polling. Retry-After (429) and a ban (418) hold every request.
    """

    def __init__(self, limit_per_minute: int = 2400, read_fraction: float = 0.8):
        self.limit_per_minute = limit_per_minute
        self.read_fraction = read_fraction
        self.used_weight = 0
        self.minute_start_ms = 0
        self.resume_ms = 0
        self.banned_until_ms = 0

    def observe(self, used_weight: int, now_ms: int) -> None:
        """Record the weight the venue says this minute has used."""
        minute = now_ms - now_ms % 60_000
        if minute != self.minute_start_ms or used_weight > self.used_weight:
            self.used_weight = used_weight
        self.minute_start_ms = minute

    def hold(self, retry_after_s: float, now_ms: int) -> None:
        """Send nothing for `retry_after_s` (a 429's Retry-After)."""
        self.resume_ms = max(self.resume_ms, now_ms + int(retry_after_s * 1000))

    def ban(self, until_ms: int) -> None:
        """Send nothing until `until_ms` (a 418)."""
        self.banned_until_ms = max(self.banned_until_ms, until_ms)

    def delay_s(self, now_ms: int, weight: int = 1, *, write: bool = False) -> float:
        """Return the seconds to wait before a request of `weight`; raise IpBanned during a ban."""
        if now_ms < self.banned_until_ms:
            raise IpBanned(f"IP banned until {self.banned_until_ms}", until_ms=self.banned_until_ms)
        if now_ms < self.resume_ms:
            return (self.resume_ms - now_ms) / 1000
        minute = now_ms - now_ms % 60_000
        used = self.used_weight if minute == self.minute_start_ms else 0
        ceiling = self.limit_per_minute * (1.0 if write else self.read_fraction)
        if used + weight <= ceiling:
            return 0.0
        return (minute + 60_000 - now_ms) / 1000


def venue_code(exc: Exception) -> int | None:
    """Return the Binance error code quoted in a ccxt error message, if any."""
    match = CODE_PATTERN.search(str(exc))
    return int(match.group(1)) if match else None


def describe(exc: Exception) -> str:
    """Return "<code> <msg>" from the venue's reply, or the ccxt message."""
    code, message = venue_code(exc), MESSAGE_PATTERN.search(str(exc))
    if code is not None and message:
        return f"{code} {message.group(1)}"
    return str(exc) or type(exc).__name__


def translate_error(exc: Exception, *, write: bool, now_ms: int, retry_after_s: float | None = None) -> Exception:
    """Return the base.py error for a ccxt error; `write` marks order placement and cancels."""
    text, code = str(exc), venue_code(exc)
    status = STATUS_PATTERN.match(text)
    if (status and status.group(1) == "418") or BAN_PATTERN.search(text):
        ban = BAN_PATTERN.search(text)
        until_ms = int(ban.group(1)) if ban else now_ms + int((retry_after_s or DEFAULT_BAN_S) * 1000)
        return IpBanned(describe(exc), until_ms=until_ms)
    if status or code == -1003 or isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimited(describe(exc), retry_after_s=retry_after_s if retry_after_s is not None else 1.0)
    if code == -4116:
        return DuplicateClientId(describe(exc))
    # Codes only: ccxt also files -4140 and post-only refusals under OrderImmediatelyFillable.
    if code in (-2021, -4142):
        return WouldTriggerImmediately(describe(exc))
    if code in (-2011, -2013) or isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(describe(exc))
    # Timeouts, 5xx and -1007: Binance says the execution status is unknown, never a failure.
    # Any other exception after a send (a parse error, say) leaves the outcome unknown too.
    if code == -1007 or isinstance(exc, ccxt.OperationFailed) or not isinstance(exc, ccxt.BaseError):
        return UnknownOutcome(describe(exc)) if write else ExchangeUnavailable(describe(exc))
    return OrderRejected(describe(exc)) if write else BrokerError(describe(exc))


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
    """Return our client id from the venue's (Gate's carries "t-" in front)."""
    return client_id[len(prefix):] if prefix and client_id.startswith(prefix) else client_id


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


def order_args(intent: OrderIntent, trigger_params: Mapping[str, str],
               client_id_prefix: str = "") -> tuple[str, Decimal | None, dict]:
    """Return ccxt's (type, price, params) for an intent; raise OrderRejected for a type it cannot send."""
    params: dict = {"clientOrderId": client_id_prefix + intent.client_order_id}
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


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class CcxtBroker:
    """One ccxt exchange behind the Broker port. Symbols: unified (BTC/USDT:USDT) or venue ids (BTCUSDT)."""

    def __init__(self, exchange: ccxt.Exchange, *, name: str = "binanceusdm",
                 weight_budget: RequestBudget | None = None, clock_ms: Callable[[], int] = _wall_clock_ms,
                 sleep: Callable[[float], None] = time.sleep, working_type: str = "MARK_PRICE",
                 read_attempts: int = 3, backoff_s: float = 0.5, max_wait_s: float = 2.0):
        self.exchange = exchange
        self.name = name
        self.dialect = DIALECTS.get(exchange.id, Dialect())
        self.budget = weight_budget or RequestBudget()
        self.clock_ms, self.sleep = clock_ms, sleep
        param = self.dialect.working_type_param
        self.trigger_params = {param: working_type} if param else {}
        self.read_attempts, self.backoff_s, self.max_wait_s = read_attempts, backoff_s, max_wait_s
        self._seen_headers = None
        # Open orders across all symbols cost 40 weight each; the budget accounts for it.
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False

    # -- orders ---------------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None) -> ExecutionReport:
        """Send one order; return the venue's answer with its fills when it filled at once.

        `reference_price`, `ts_ms` and `tick_size` serve the paper broker; the venue needs none of them.
        """
        conditional = intent.type not in ("market", "limit", "limit_maker")
        if conditional and not self.dialect.conditional_orders:
            raise OrderRejected(f"{self.exchange.id}: conditional orders are not supported by the ccxt broker")
        market = self._market(intent.symbol)
        order_type, price, params = order_args(intent, self.trigger_params, self.dialect.client_id_prefix)
        amount, price_text = self._amount(intent.quantity, market), None if price is None else str(price)
        # The reply is translated inside the write: a reply that cannot be read leaves the outcome unknown.
        venue = self._write(lambda: venue_order(
            self.exchange.create_order(market["symbol"], order_type, intent.side, amount, price_text, params),
            market, conditional=conditional, client_id_prefix=self.dialect.client_id_prefix))
        if venue.status == "unknown" and venue.exchange_order_id:
            venue = replace(venue, status="accepted")   # Bitget acknowledges with ids only
        fills = self._fills_of(venue, market, intent.client_order_id) if venue.filled > 0 and not conditional else ()
        return ExecutionReport(intent.client_order_id, venue.status, fills, venue.exchange_order_id)

    def fetch_order(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Return the venue's view of one order by client id; raise OrderNotFound when it has none."""
        market = self._market(symbol)
        order_id, params = self._id_args(client_order_id, conditional)
        try:
            order = self._read(lambda: self.exchange.fetch_order(order_id, market["symbol"], params), WEIGHTS["order"])
        except OrderNotFound:
            if not (conditional and self.dialect.conditional_orders):
                raise
            # Binance stops serving a finished algo order on /algoOrder; its history still lists it.
            order = next((o for o in self._algo_history(market) if o.get("clientOrderId") == client_order_id), None)
            if order is None:
                raise
        return venue_order(order, market, conditional=conditional, client_id_prefix=self.dialect.client_id_prefix)

    def cancel(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Cancel one order by client id; return its final state (a fill may have won the race)."""
        market = self._market(symbol)
        order_id, params = self._id_args(client_order_id, conditional)
        try:
            venue = self._write(lambda: venue_order(self.exchange.cancel_order(order_id, market["symbol"], params),
                                                    market, conditional=conditional,
                                                    client_id_prefix=self.dialect.client_id_prefix))
        except OrderNotFound:
            # -2011: already filled, cancelled or expired; its final state says which.
            return self.fetch_order(client_order_id, symbol, conditional=conditional)
        if venue.status == "unknown":
            # Binance answers an algo cancel with {"code": "200", "msg": "success"} and no order fields.
            venue = replace(venue, client_order_id=client_order_id, status="canceled")
        return venue

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Return every open order, normal and conditional (two requests, merged)."""
        unified = self._market(symbol)["symbol"] if symbol else None
        weight = WEIGHTS["open_orders"] if symbol else WEIGHTS["open_orders_all"]
        orders = [(o, False) for o in self._read(lambda: self.exchange.fetch_open_orders(unified), weight)]
        if self.dialect.conditional_orders:
            orders += [(o, True) for o in self._read(
                lambda: self.exchange.fetch_open_orders(unified, None, None, {"trigger": True}), weight)]
        return [venue_order(o, self._market(o["symbol"]), conditional=flag,
                            client_id_prefix=self.dialect.client_id_prefix) for o, flag in orders]

    # -- account --------------------------------------------------------------------------------

    def positions(self) -> list[VenuePosition]:
        """Return every non-zero position; quantity signed, in base units."""
        result = []
        for raw in self._read(self.exchange.fetch_positions, WEIGHTS["positions"]):
            market = self._market(raw["symbol"])
            quantity = (_dec(raw.get("contracts")) or Decimal(0)) * (_dec(raw.get("contractSize")) or Decimal(1))
            if quantity == 0:
                continue
            result.append(VenuePosition(
                symbol=market["id"], quantity=-quantity if raw.get("side") == "short" else quantity,
                entry_price=_dec(raw.get("entryPrice")) or Decimal(0), mark_price=_dec(raw.get("markPrice")),
                unrealized_pnl_usdt=_dec(raw.get("unrealizedPnl")) or Decimal(0),
                liquidation_price=_dec(raw.get("liquidationPrice")) or None))
        return result

    def trades(self, symbol: str, since_ms: int) -> list[FillReport]:
        """Return the account's fills in `symbol` since `since_ms`, with their client ids.

        At most 1000 fills, and from a start more than 7 days back only that first week (Binance's window).
        """
        market = self._market(symbol)
        trades = self._read(lambda: self.exchange.fetch_my_trades(market["symbol"], since_ms, 1000),
                            WEIGHTS["trades"])
        client_ids = self._client_ids(market, {str(t.get("order") or "") for t in trades} - {""})
        return [fill_report(t, market, client_ids.get(str(t.get("order")), "")) for t in trades]

    def balance(self) -> VenueBalance:
        """Return the USDT wallet: Binance's own figures when it gives them, else ccxt's unified ones."""
        raw = self._read(self.exchange.fetch_balance, WEIGHTS["balance"])
        for asset in (raw.get("info") or {}).get("assets") or []:
            if isinstance(asset, Mapping) and asset.get("asset") == "USDT" and "walletBalance" in asset:
                return VenueBalance(_dec(asset["walletBalance"]), _dec(asset.get("availableBalance")) or Decimal(0),
                                    _dec(asset.get("unrealizedProfit")) or Decimal(0))
        usdt = raw.get("USDT") or {}
        return VenueBalance(_dec(usdt.get("total")) or Decimal(0), _dec(usdt.get("free")) or Decimal(0))

    # -- setup, for the startup assertions (idempotent, so retried like reads) ------------------

    def position_mode(self) -> str:
        """Return "one-way" or "hedge"."""
        mode = self._read(self.exchange.fetch_position_mode, WEIGHTS["position_mode"])
        return "hedge" if mode.get("hedged") else "one-way"

    def leverage(self, symbol: str) -> int:
        """Return the leverage set for `symbol`."""
        market = self._market(symbol)
        result = self._read(lambda: self.exchange.fetch_leverage(market["symbol"]), WEIGHTS["leverage"])
        return int(result.get("longLeverage") or result.get("shortLeverage"))

    def margin_mode(self, symbol: str) -> str:
        """Return "cross" or "isolated"."""
        market = self._market(symbol)
        result = self._read(lambda: self.exchange.fetch_margin_mode(market["symbol"]), WEIGHTS["margin_mode"])
        return result["marginMode"]

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of `symbol`."""
        market = self._market(symbol)
        self._read(lambda: self.exchange.set_leverage(leverage, market["symbol"]), WEIGHTS["setup"])

    def set_margin_mode(self, symbol: str, mode: str) -> None:
        """Set `symbol` to "cross" or "isolated" margin; "no need to change margin type" (-4046) is success."""
        market = self._market(symbol)
        try:
            self._read(lambda: self.exchange.set_margin_mode(mode, market["symbol"]), WEIGHTS["setup"])
        except BrokerError as exc:
            if venue_code(exc.__cause__ or exc) != -4046:
                raise

    def set_position_mode(self, mode: str) -> None:
        """Set "one-way" or "hedge" mode for the whole account; "no need to change" (-4059) is success."""
        try:
            self._read(lambda: self.exchange.set_position_mode(mode == "hedge"), WEIGHTS["setup"])
        except BrokerError as exc:
            if venue_code(exc.__cause__ or exc) != -4059:
                raise

    def server_time_ms(self) -> int:
        """Return the venue's clock in epoch ms."""
        return int(self._read(self.exchange.fetch_time, WEIGHTS["time"]))

    # -- plumbing -------------------------------------------------------------------------------

    def _id_args(self, client_order_id: str, conditional: bool) -> tuple[str, dict]:
        """Return ccxt's (id, params) naming an order by our client id."""
        params = {"trigger": True} if conditional else {}
        if self.dialect.client_id_is_order_id:
            return self.dialect.client_id_prefix + client_order_id, params
        return "", params | {"clientOrderId": self.dialect.client_id_prefix + client_order_id}

    def _market(self, symbol: str) -> dict:
        if not self.exchange.markets:
            self._read(self.exchange.load_markets, WEIGHTS["markets"])
        if symbol in self.exchange.markets:
            return self.exchange.markets[symbol]
        candidates = self.exchange.markets_by_id.get(symbol) or []
        if not candidates:
            raise OrderRejected(f"{self.exchange.id} has no market {symbol!r}")
        # A venue id shared by spot and swap resolves to the linear swap: this platform trades perpetuals.
        return sorted(candidates, key=lambda m: (not m.get("swap"), not m.get("linear")))[0]

    def _amount(self, quantity: Decimal, market: Mapping) -> str:
        # Gate counts contracts (0.0001 BTC each); Binance and Bitget count base units.
        return format((quantity / (_dec(market.get("contractSize")) or Decimal(1))).normalize(), "f")

    def _fills_of(self, venue: VenueOrder, market: Mapping, client_order_id: str) -> tuple[FillReport, ...]:
        """Return the trades of an order that filled on arrival; () when they cannot be read now."""
        param = self.dialect.trades_order_param
        params = {param: venue.exchange_order_id} if param else {}
        try:
            trades = self._read(lambda: self.exchange.fetch_my_trades(market["symbol"], None, None, params),
                                WEIGHTS["trades"])
        except Exception:
            # The order's outcome is known and must not be lost to a follow-up read;
            # its fills reach the OMS through trades() on reconciliation.
            logger.warning("fills of %s not read", client_order_id, exc_info=True)
            return ()
        return tuple(fill_report(t, market, client_order_id) for t in trades
                     if str(t.get("order")) == venue.exchange_order_id)

    def _algo_history(self, market: Mapping) -> list[dict]:
        return self._read(lambda: self.exchange.fetch_orders(market["symbol"], None, None, {"trigger": True}),
                          WEIGHTS["algo_history"])

    def _client_ids(self, market: Mapping, order_ids: set[str]) -> dict[str, str]:
        """Return our client id for each venue order id; trade lists carry only the order id."""
        found: dict[str, str] = {}
        if order_ids and self.dialect.conditional_orders:
            # A stop or take-profit trades through the order its trigger created: its actualOrderId.
            for algo in self._algo_history(market):
                actual = str((algo.get("info") or {}).get("actualOrderId") or "")
                if actual in order_ids:
                    found[actual] = algo.get("clientOrderId") or ""
        for order_id in sorted(order_ids - found.keys()):
            try:
                order = self._read(lambda: self.exchange.fetch_order(order_id, market["symbol"]), WEIGHTS["order"])
            except OrderNotFound:
                continue        # archived by the venue: the fill is booked without a client id
            found[order_id] = strip_prefix(order.get("clientOrderId") or "", self.dialect.client_id_prefix)
        return found

    def _write(self, call: Callable):
        return self._request(call, WEIGHTS["order"], write=True)

    def _read(self, call: Callable, weight: int):
        for attempt in range(self.read_attempts):
            try:
                return self._request(call, weight, write=False)
            except ExchangeUnavailable:
                if attempt + 1 >= self.read_attempts:
                    raise
                self.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable: read_attempts must be >= 1")

    def _request(self, call: Callable, weight: int, *, write: bool):
        wait_s = self.budget.delay_s(self.clock_ms(), weight, write=write)
        if wait_s > self.max_wait_s:
            raise RateLimited(f"held by the request budget; next request in {wait_s:.1f}s", retry_after_s=wait_s)
        if wait_s > 0:
            self.sleep(wait_s)
        try:
            return call()
        except Exception as exc:
            if not write and not isinstance(exc, ccxt.BaseError):
                raise       # a bug, not the venue: retrying a read would hide it
            error = translate_error(exc, write=write, now_ms=self.clock_ms(), retry_after_s=self._retry_after_s())
            if isinstance(error, IpBanned):
                logger.critical("%s: REST halted until %s: %s", self.exchange.id, error.until_ms, error)
                self.budget.ban(error.until_ms)
            elif isinstance(error, RateLimited):
                self.budget.hold(error.retry_after_s, self.clock_ms())
            raise error from exc
        finally:
            self._observe_weight()

    def _header(self, name: str) -> str:
        headers = self.exchange.last_response_headers or {}
        return str(next((v for k, v in headers.items() if str(k).lower() == name), "")).strip()

    def _retry_after_s(self) -> float | None:
        value = self._header("retry-after")
        return float(value) if value.isdigit() else None

    def _observe_weight(self) -> None:
        # A request that failed before an answer leaves the previous answer's headers: count them once.
        if self.exchange.last_response_headers is self._seen_headers:
            return
        self._seen_headers = self.exchange.last_response_headers
        used = self._header("x-mbx-used-weight-1m")
        if used.isdigit():
            self.budget.observe(int(used), self.clock_ms())
