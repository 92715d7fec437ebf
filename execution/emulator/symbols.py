"""The emulator's instruments: filters, exchangeInfo and leverage brackets.

exchangeInfo is a SYNTHETIC subset (BTCUSDT, ETHUSDT perpetuals) with Binance's real filter values
(tickSize, stepSize, MIN_NOTIONAL) from /fapi/v1/exchangeInfo. Leverage brackets are SYNTHETIC: one
bracket per symbol, max leverage 125 and a 0.4 % maintenance margin rate (Binance's first BTCUSDT tier).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from execution.emulator import errors


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    base: str
    tick_size: Decimal
    step_size: Decimal
    min_notional_usdt: Decimal
    price_precision: int     # decimals Binance accepts in a price
    quantity_precision: int  # decimals Binance accepts in a quantity
    max_leverage: int = 125
    maint_margin_rate: Decimal = Decimal("0.004")

    def format_price(self, value: Decimal) -> str:
        """Return `value` with the symbol's price decimals, as Binance prints order prices."""
        return _fixed(value, self.price_precision)

    def format_quantity(self, value: Decimal) -> str:
        """Return `value` with the symbol's quantity decimals."""
        return _fixed(value, self.quantity_precision)


def _fixed(value: Decimal, places: int) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


SYMBOLS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", "BTC", Decimal("0.10"), Decimal("0.001"), Decimal("100"), 2, 3),
    "ETHUSDT": SymbolSpec("ETHUSDT", "ETH", Decimal("0.01"), Decimal("0.001"), Decimal("20"), 2, 3),
}


def spec_for(symbol: str | None) -> SymbolSpec:
    """Return the spec of a venue symbol; raise -1121 for an unknown one."""
    if symbol not in SYMBOLS:
        raise errors.invalid_symbol()
    return SYMBOLS[symbol]


def exchange_info(server_time_ms: int) -> dict:
    """Return the /fapi/v1/exchangeInfo body."""
    return {
        "timezone": "UTC", "serverTime": server_time_ms, "futuresType": "U_MARGINED",
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                       {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(spec) for spec in SYMBOLS.values()],
    }


def _symbol_info(spec: SymbolSpec) -> dict:
    tick, step, notional = f"{spec.tick_size:f}", f"{spec.step_size:f}", f"{spec.min_notional_usdt:f}"
    return {
        "symbol": spec.symbol, "pair": spec.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": spec.base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": spec.price_precision, "quantityPrecision": spec.quantity_precision,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
        "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "4529764", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
            {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120", "stepSize": step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": notional},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def leverage_brackets(symbol: str | None) -> list[dict]:
    """Return the /fapi/v1/leverageBracket body (SYNTHETIC: one bracket per symbol)."""
    specs = [spec_for(symbol)] if symbol else list(SYMBOLS.values())
    return [{"symbol": spec.symbol, "notionalCoef": 1.0, "brackets": [{
        "bracket": 1, "initialLeverage": spec.max_leverage, "notionalCap": 1_000_000_000, "notionalFloor": 0,
        "maintMarginRatio": float(spec.maint_margin_rate), "cum": 0.0}]} for spec in specs]
