"""Account, settings, user-stream and public endpoints. Each handler takes (venue, params) -> body.

SYNTHETIC replies (no recording exists; shapes from the Binance docs): leverage, marginType,
positionSide/dual, listenKey, premiumIndex, ticker/price, commissionRate, and the spot-wallet coin list
(/sapi/v1/capital/config/getall, margin/allPairs) that ccxt's load_markets asks for whenever keys are configured.
Income (/fapi/v1/income) copies the field names of the recorded fetchFundingHistory reply, which is a
portfolio-margin one (time and tranId as strings); the USD-M docs ("Get Income History") give both as
numbers, and so does the emulator.
"""
from __future__ import annotations

from decimal import Decimal

from execution.emulator import errors, events, ledger, marketdata, payloads, symbols
from execution.emulator.params import boolean, required
from execution.emulator.state import Income
from execution.emulator.symbols import SYMBOLS, spec_for
from execution.emulator.venue import Venue

SUCCESS = {"code": 200, "msg": "success"}
INCOME_LIMIT_MAX = 1000          # Binance: default 100, max 1000
INCOME_RECENT_MS = 7 * 86_400_000  # without startTime and endTime Binance answers the last 7 days


def _positions(venue: Venue, params: dict, *, v2: bool) -> list[dict]:
    wanted = spec_for(params["symbol"]).symbol if params.get("symbol") else None
    taker = venue.config.engine.taker_fee_rate
    with venue.lock:
        if v2:  # v2 lists every symbol and leg, flat ones included
            sides = ("LONG", "SHORT") if venue.state.dual_side else ("BOTH",)
            legs = [venue.state.position(symbol, side) for symbol in SYMBOLS for side in sides]
            return [payloads.position_v2(venue.state, p, venue.leverage(p.symbol), taker)
                    for p in legs if wanted in (None, p.symbol)]
        legs = sorted((p for p in venue.state.positions.values() if p.amount), key=lambda p: (p.symbol,
                                                                                               p.position_side))
        return [payloads.position_v3(venue.state, p, venue.leverage(p.symbol), taker)
                for p in legs if wanted in (None, p.symbol)]


def position_risk_v3(venue: Venue, params: dict) -> list:
    return _positions(venue, params, v2=False)


def position_risk_v2(venue: Venue, params: dict) -> list:
    return _positions(venue, params, v2=True)


def account(venue: Venue, params: dict) -> dict:
    positions = _positions(venue, {}, v2=False)
    return payloads.account_v3(venue.summary(), positions, venue.state.update_ms)


def balance(venue: Venue, params: dict) -> list:
    return payloads.balance_entries(venue.summary(), venue.state.update_ms)


def _income_body(row: Income) -> dict:
    return {"symbol": row.symbol, "incomeType": row.income_type, "income": payloads.fixed(row.amount, 8),
            "asset": row.asset, "info": row.income_type, "time": row.time_ms, "tranId": row.tran_id,
            "tradeId": row.trade_id}


def income(venue: Venue, params: dict) -> list:
    """Answer GET /fapi/v1/income for FUNDING_FEE, REALIZED_PNL and COMMISSION rows, oldest first.

    startTime and endTime are inclusive. From a startTime the first `limit` rows follow it (Binance's
    paging); without one, the last `limit` rows up to endTime (or of the last 7 days when neither is sent).
    """
    symbol = spec_for(params["symbol"]).symbol if params.get("symbol") else None
    income_type = params.get("incomeType") or None
    limit = int(params.get("limit") or 100)
    if not 1 <= limit <= INCOME_LIMIT_MAX:
        raise ValueError(f"limit {limit} is outside 1..{INCOME_LIMIT_MAX}")
    start_ms = int(params["startTime"]) if params.get("startTime") else None
    end_ms = int(params["endTime"]) if params.get("endTime") else None
    if start_ms is None and end_ms is None:
        start_ms = venue.now_ms() - INCOME_RECENT_MS
    with venue.lock:
        rows = [row for row in ledger.income_history(venue.state)
                if symbol in (None, row.symbol) and income_type in (None, row.income_type)
                and (start_ms is None or row.time_ms >= start_ms) and (end_ms is None or row.time_ms <= end_ms)]
    page = rows[:limit] if params.get("startTime") else rows[-limit:]
    return [_income_body(row) for row in page]


def settle_funding(venue: Venue, symbol: str, rate: Decimal, mark_price: Decimal,
                   ts_ms: int | None = None) -> list[Income]:
    """Test hook: settle one funding of `symbol` at `rate` and `mark_price` (at `ts_ms`, else now).

    Each open leg pays -amount * mark * rate to the wallet and gets a FUNDING_FEE income row; the user
    stream sees ACCOUNT_UPDATE "FUNDING_FEE" with the wallet only, as Binance sends it for cross margin.
    """
    with venue.change() as now_ms:
        rows = ledger.settle_funding(venue.state, spec_for(symbol).symbol, Decimal(rate), Decimal(mark_price),
                                     now_ms if ts_ms is None else ts_ms)
        if rows:
            venue.engine.events.append(events.account_update("FUNDING_FEE", venue.state.wallet_usdt, [], {}, now_ms))
    return rows


def leverage_set(venue: Venue, params: dict) -> dict:
    symbol = spec_for(required(params, "symbol")).symbol
    text = required(params, "leverage")
    if not text.isdigit():
        raise errors.leverage_invalid(text)
    leverage = venue.set_leverage(symbol, int(text))
    return {"leverage": leverage, "maxNotionalValue": "1000000000", "symbol": symbol}


def margin_type_set(venue: Venue, params: dict) -> dict:
    venue.set_margin_type(spec_for(required(params, "symbol")).symbol, required(params, "marginType").upper())
    return SUCCESS


def dual_side_get(venue: Venue, params: dict) -> dict:
    return {"dualSidePosition": venue.state.dual_side}


def dual_side_set(venue: Venue, params: dict) -> dict:
    required(params, "dualSidePosition")
    venue.set_dual_side(boolean(params, "dualSidePosition"))
    return SUCCESS


def leverage_bracket(venue: Venue, params: dict) -> list:
    return symbols.leverage_brackets(params.get("symbol"))


def symbol_config(venue: Venue, params: dict) -> list:
    rows = payloads.symbol_config(venue.state, venue.config.engine.default_leverage)
    return [row for row in rows if params.get("symbol") in (None, row["symbol"])]


def commission_rate(venue: Venue, params: dict) -> dict:
    symbol = spec_for(required(params, "symbol")).symbol
    engine = venue.config.engine
    return {"symbol": symbol, "makerCommissionRate": payloads.plain(engine.maker_fee_rate),
            "takerCommissionRate": payloads.plain(engine.taker_fee_rate)}


def capital_config(venue: Venue, params: dict) -> list:
    coins = ["USDT", *sorted({spec.base for spec in SYMBOLS.values()})]
    return [{"coin": coin, "name": coin, "isLegalMoney": False, "trading": True, "depositAllEnable": False,
             "withdrawAllEnable": False, "free": "0", "locked": "0", "networkList": []} for coin in coins]


def listen_key_new(venue: Venue, params: dict) -> dict:
    return {"listenKey": venue.listen_key_create()}


def listen_key_keepalive(venue: Venue, params: dict) -> dict:
    return {"listenKey": venue.listen_key_keepalive()}


def listen_key_close(venue: Venue, params: dict) -> dict:
    venue.listen_key_delete()
    return {}


def exchange_info(venue: Venue, params: dict) -> dict:
    return symbols.exchange_info(venue.now_ms())


def _data_dir(venue: Venue):
    if venue.data_dir is None:
        raise errors.BinanceError(-1121, "Invalid symbol. (the emulator was started without a data directory)")
    return venue.data_dir


def _price_row(venue: Venue, symbol: str) -> tuple[str, Decimal, Decimal]:
    price = venue.engine.price(spec_for(symbol).symbol)
    return symbol, price.last, price.mark


def premium_index(venue: Venue, params: dict) -> dict | list:
    def row(symbol: str) -> dict:
        _, last, mark = _price_row(venue, symbol)
        now_ms = venue.now_ms()
        return {"symbol": symbol, "markPrice": payloads.fixed(mark, 8),
                "indexPrice": payloads.fixed(mark * marketdata.INDEX_FACTOR, 8),
                "estimatedSettlePrice": payloads.fixed(mark, 8), "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000", "nextFundingTime": (now_ms // 28_800_000 + 1) * 28_800_000,
                "time": now_ms}

    if params.get("symbol"):
        return row(params["symbol"])
    return [row(symbol) for symbol in SYMBOLS if symbol in venue.state.prices]


def ticker_price(venue: Venue, params: dict) -> dict | list:
    def row(symbol: str) -> dict:
        _, last, _ = _price_row(venue, symbol)
        return {"symbol": symbol, "price": spec_for(symbol).format_price(last), "time": venue.now_ms()}

    if params.get("symbol"):
        return row(params["symbol"])
    return [row(symbol) for symbol in SYMBOLS if symbol in venue.state.prices]


def depth(venue: Venue, params: dict) -> dict:
    spec = spec_for(required(params, "symbol"))
    return marketdata.depth(spec.symbol, venue.engine.price(spec.symbol).last, spec.tick_size,
                            int(params.get("limit", 500)), venue.now_ms())


ROUTES = {
    ("GET", "/fapi/v1/ping"): lambda venue, params: {},
    ("GET", "/fapi/v1/time"): lambda venue, params: {"serverTime": venue.now_ms()},
    ("GET", "/fapi/v1/exchangeInfo"): exchange_info,
    ("GET", "/fapi/v1/klines"): lambda venue, params: marketdata.klines(_data_dir(venue), params, None),
    ("GET", "/fapi/v1/markPriceKlines"): lambda venue, params: marketdata.klines(_data_dir(venue), params,
                                                                                  Decimal(1)),
    ("GET", "/fapi/v1/indexPriceKlines"): lambda venue, params: marketdata.klines(
        _data_dir(venue), params, marketdata.INDEX_FACTOR),
    ("GET", "/fapi/v1/fundingRate"): lambda venue, params: marketdata.funding_rates(_data_dir(venue), params),
    ("GET", "/futures/data/openInterestHist"): lambda venue, params: marketdata.open_interest_history(
        _data_dir(venue), params),
    ("GET", "/fapi/v1/premiumIndex"): premium_index,
    ("GET", "/fapi/v1/ticker/price"): ticker_price,
    ("GET", "/fapi/v2/ticker/price"): ticker_price,
    ("GET", "/fapi/v1/depth"): depth,
}

SIGNED_ROUTES = {
    ("GET", "/fapi/v3/positionRisk"): position_risk_v3,
    ("GET", "/fapi/v2/positionRisk"): position_risk_v2,
    ("GET", "/fapi/v3/account"): account,
    ("GET", "/fapi/v2/account"): account,
    ("GET", "/fapi/v3/balance"): balance,
    ("GET", "/fapi/v2/balance"): balance,
    ("POST", "/fapi/v1/leverage"): leverage_set,
    ("POST", "/fapi/v1/marginType"): margin_type_set,
    ("GET", "/fapi/v1/positionSide/dual"): dual_side_get,
    ("POST", "/fapi/v1/positionSide/dual"): dual_side_set,
    ("GET", "/fapi/v1/leverageBracket"): leverage_bracket,
    ("GET", "/fapi/v1/symbolConfig"): symbol_config,
    ("GET", "/fapi/v1/commissionRate"): commission_rate,
    ("GET", "/fapi/v1/income"): income,
    ("GET", "/sapi/v1/capital/config/getall"): capital_config,
    ("GET", "/sapi/v1/margin/allPairs"): lambda venue, params: [],  # no spot margin here
}

USER_STREAM_ROUTES = {
    ("POST", "/fapi/v1/listenKey"): listen_key_new,
    ("PUT", "/fapi/v1/listenKey"): listen_key_keepalive,
    ("DELETE", "/fapi/v1/listenKey"): listen_key_close,
}
