"""Writes of instruments and market rows; views, commands and tasks call these."""
from __future__ import annotations

from decimal import Decimal

from market.models import DataSource, Instrument, MarketType

# Binance USD-M filters for the symbols the platform trades, used until the exchange's own
# markets are loaded (offline imports, replays). Source: /fapi/v1/exchangeInfo.
KNOWN_FILTERS: dict[str, dict[str, str]] = {
    "BTCUSDT": {"tick_size": "0.1", "step_size": "0.001", "min_notional": "100"},
    "ETHUSDT": {"tick_size": "0.01", "step_size": "0.001", "min_notional": "20"},
    "SOLUSDT": {"tick_size": "0.01", "step_size": "1", "min_notional": "5"},
    "BNBUSDT": {"tick_size": "0.01", "step_size": "0.01", "min_notional": "5"},
}
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC")


def split_exchange_symbol(exchange_symbol: str) -> tuple[str, str]:
    """Return (base, quote) for a Binance-style id such as BTCUSDT; raise ValueError if unknown."""
    for quote in _QUOTES:
        if exchange_symbol.endswith(quote) and len(exchange_symbol) > len(quote):
            return exchange_symbol[: -len(quote)], quote
    raise ValueError(f"cannot split {exchange_symbol!r} into base and quote")


def instrument_ensure(
    *,
    exchange: str,
    exchange_symbol: str,
    market_type: str,
    data_source: str = DataSource.EXCHANGE,
    filters: dict[str, str] | None = None,
) -> Instrument:
    """Return the instrument for a venue id such as BTCUSDT, creating it when missing.

    `market_type` is "spot" or "swap"; a swap gets the ccxt linear symbol BASE/QUOTE:QUOTE.
    """
    base, quote = split_exchange_symbol(exchange_symbol)
    symbol = f"{base}/{quote}:{quote}" if market_type == MarketType.SWAP else f"{base}/{quote}"
    defaults = {"exchange_symbol": exchange_symbol, "market_type": market_type, "base": base, "quote": quote}
    known = filters or KNOWN_FILTERS.get(exchange_symbol, {})
    defaults.update({k: Decimal(v) for k, v in known.items()})
    instrument, created = Instrument.objects.get_or_create(
        exchange=exchange, symbol=symbol, data_source=data_source, defaults=defaults
    )
    if not created and filters:
        for key, value in filters.items():
            setattr(instrument, key, Decimal(value))
        instrument.save(update_fields=list(filters))
    return instrument
