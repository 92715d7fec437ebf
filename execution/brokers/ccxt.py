"""ccxt broker: translate between the Broker port and a ccxt exchange (Binance USD-M; Bitget and Gate basics).

Translation only: no paper branches, no decisions. Binance conditional orders (stop-market, take-profit)
live in the Algo Order API since 2025-12-09: ccxt sends them to /fapi/v1/algoOrder when given
stopLossPrice / takeProfitPrice, with the client id as clientAlgoId, and they are read or cancelled
only with params {"trigger": True}. Venue errors become the base.py family (ccxt_errors); writes are never
retried here, reads are retried with bounded backoff. RequestBudget (ccxt_budget) keeps the request weight
under Binance's limit; ccxt_convert turns ccxt structures into port values.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

import ccxt

from execution.brokers.base import (BrokerError, ExchangeUnavailable, ExecutionReport, FillReport, FundingReport,
                                    IpBanned, OrderNotFound, RateLimited, VenueBalance, VenueOrder, VenuePosition)
from execution.brokers.ccxt_budget import WEIGHTS, RequestBudget
from execution.brokers.ccxt_convert import (ALGO_STATES, ORDER_STATES, UNIFIED_STATES, _dec, algo_state,
                                            fill_report, funding_report, order_args, order_state, strip_prefix,
                                            venue_client_id, venue_order)
from execution.brokers.ccxt_errors import describe, translate_error, venue_code
from execution.oms import OrderIntent, OrderRejected

# The names other modules import from here, wherever they now live.
__all__ = ["ALGO_STATES", "DIALECTS", "FUNDING_PAGE", "ORDER_STATES", "UNIFIED_STATES", "WEIGHTS", "CcxtBroker",
           "Dialect", "RequestBudget", "algo_state", "describe", "fill_report", "funding_report", "order_args",
           "order_state", "strip_prefix", "translate_error", "venue_code", "venue_order"]

logger = logging.getLogger(__name__)
FUNDING_PAGE = 1000         # Binance's most income rows a request


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the venues this broker speaks to."""

    conditional_orders: bool = False        # stops and take-profits supported (and tested) here
    working_type_param: str = ""            # the order param choosing the trigger price (mark or last)
    client_id_prefix: str = ""              # the venue's mandatory client id prefix
    client_id_is_order_id: bool = False     # fetch and cancel take the client id in place of the order id
    client_id_max_length: int | None = None  # longer ids go out in their short form (oms.compact_client_id)
    trades_order_param: str = ""            # the trade-list filter by order id, when the venue has one


DIALECTS = {
    "binanceusdm": Dialect(conditional_orders=True, working_type_param="workingType", trades_order_param="orderId"),
    "bitget": Dialect(),
    # Gate wants "t-" first (ccxt adds it only to ids not starting with "t", and ours start with "tb-")
    # and at most 28 characters with it: ours (up to 32) go out in their 26-character short form.
    "gate": Dialect(client_id_prefix="t-", client_id_is_order_id=True, client_id_max_length=28),
}


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
        order_type, price, params = order_args(intent, self.trigger_params, self.dialect.client_id_prefix,
                                               self.dialect.client_id_max_length)
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

    def funding_payments(self, symbol: str | None, since_ms: int) -> list[FundingReport]:
        """Return the USDT funding booked since `since_ms` (every symbol when None), oldest first, each once.

        Binance's income history (FUNDING_FEE rows of /fapi/v1/income) keeps three months and answers
        at most FUNDING_PAGE rows a request; the next page starts at the last row's time, inclusive,
        so rows sharing that instant are read again and kept once (by tranId).
        """
        unified = self._market(symbol)["symbol"] if symbol else None
        found: dict[str, FundingReport] = {}
        start_ms = since_ms
        while True:
            page = self._read(lambda: self.exchange.fetch_funding_history(unified, start_ms, FUNDING_PAGE),
                              WEIGHTS["income"])
            for income in page:
                report = self._funding_of(income)
                if report is not None:
                    found.setdefault(report.venue_id or f"{report.symbol}:{report.ts_ms}", report)
            last_ms = max((int(income["timestamp"]) for income in page), default=start_ms)
            # A full page of one instant cannot advance: stop rather than ask for it forever.
            if len(page) < FUNDING_PAGE or last_ms <= start_ms:
                break
            start_ms = last_ms
        return sorted(found.values(), key=lambda report: (report.ts_ms, report.symbol, report.venue_id))

    def _funding_of(self, income: Mapping) -> FundingReport | None:
        if (income.get("code") or "USDT") != "USDT":
            return None     # multi-assets mode books USDC-margined funding in USDC: not this wallet
        market_id = (income.get("info") or {}).get("symbol") or self._market(income["symbol"])["id"]
        return funding_report(income, market_id)

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
        venue_id = venue_client_id(client_order_id, self.dialect.client_id_prefix, self.dialect.client_id_max_length)
        if self.dialect.client_id_is_order_id:
            return venue_id, params
        return "", params | {"clientOrderId": venue_id}

    def market_price(self, symbol: str) -> Decimal | None:
        """Return the venue's last traded price of `symbol`: what the limit-entry chase prices from."""
        market = self._market(symbol)
        if self.exchange.has.get("fetchLastPrices"):
            # Binance GET /fapi/v2/ticker/price (every symbol, weight 2: ccxt parses the list form only).
            prices = self._read(lambda: self.exchange.fetch_last_prices([market["symbol"]]), WEIGHTS["price"])
            return _dec((prices.get(market["symbol"]) or {}).get("price"))
        return _dec(self._read(lambda: self.exchange.fetch_ticker(market["symbol"]), WEIGHTS["price"]).get("last"))

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
        try:
            return self._request_once(call, weight, write=write)
        except BrokerError as exc:
            if venue_code(exc.__cause__ or exc) != -1021:
                raise
            # -1021: Binance refused the timestamp before doing anything, so sending once more after
            # resyncing the clock offset is safe, writes included.
            logger.warning("%s: clock skew (-1021): resyncing the time offset and sending once more", self.exchange.id)
            self.exchange.load_time_difference()
            return self._request_once(call, weight, write=write)

    def _request_once(self, call: Callable, weight: int, *, write: bool):
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
