"""Public market data from real recordings, in Binance USD-M REST formats.

Payloads follow the Binance USD-M REST docs ("Kline/Candlestick Data", "Mark Price Kline",
"Index Price Kline", "Get Funding Rate History", "Open Interest Statistics") and were checked against
the recorded ccxt payloads in shared/fixtures/ccxt_binance/ (fetchOHLCV: 12-field arrays, decimals as
strings, times as int ms).

What is real and what is synthetic:
- klines: REAL Binance USD-M 1m candles from the data directory; other intervals are aggregated from
  them. Columns the recordings lack (quote volume, trades, taker quote) are sent as "0"/0.
- markPriceKlines / indexPriceKlines: SYNTHETIC, derived from the trade candles
  (mark = trade price, index = trade price x 0.9998); the recordings hold no mark/index prices.
- fundingRate: REAL funding history (markPrice is omitted: the recordings lack it).
- openInterestHist: REAL 4h and 1d open interest history.
- depth: SYNTHETIC, ten levels a tick apart around the emulator's current price.
"""
from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pandas as pd

from execution.emulator import errors

KLINE_1M_FILES = {
    "BTCUSDT": "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz",
    "ETHUSDT": "binance_usdm_ETHUSDT_1m_2025-06-07_2025-06-17.csv.gz",
}
FUNDING_FILES = {"BTCUSDT": "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz"}
OPEN_INTEREST_FILES = {
    ("BTCUSDT", "4h"): "binance_usdm_BTCUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz",
    ("BTCUSDT", "1d"): "binance_usdm_BTCUSDT_openinterest-1d_2026-02-21_2026-03-20.csv.gz",
    ("ETHUSDT", "4h"): "binance_usdm_ETHUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz",
}
INDEX_FACTOR = Decimal("0.9998")
INTERVAL_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
    "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000,
}


def _read(data_dir: Path, name: str) -> pd.DataFrame:
    path = data_dir / name
    if not path.is_file():
        raise errors.BinanceError(-1121, f"Invalid symbol. (no recording {name} in {data_dir})")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@lru_cache(maxsize=8)
def kline_table(data_dir: Path, symbol: str, interval: str) -> pd.DataFrame:
    """Return candles of `interval` as strings, aggregated from the real 1m recording."""
    if symbol not in KLINE_1M_FILES:
        raise errors.invalid_symbol()
    if interval not in INTERVAL_MS:
        raise errors.BinanceError(-1120, "Invalid interval.")
    frame = _read(data_dir, KLINE_1M_FILES[symbol])
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    if interval == "1m":
        return frame
    step = INTERVAL_MS[interval]
    num = frame.assign(
        bucket=frame["open_time_ms"] // step * step,
        **{c: frame[c].map(Decimal) for c in ("open", "high", "low", "close", "volume")},
    )
    agg = num.groupby("bucket").agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"),
    )
    agg = agg.reset_index().rename(columns={"bucket": "open_time_ms"})
    return agg.astype({c: str for c in ("open", "high", "low", "close", "volume")})


def _kline_row(row, step_ms: int, price_factor: Decimal | None) -> list:
    prices = [row.open, row.high, row.low, row.close]
    if price_factor is not None:
        prices = [str((Decimal(p) * price_factor).quantize(Decimal("0.01"))) for p in prices]
    volume = "0" if price_factor is not None else row.volume
    taker = getattr(row, "taker_buy_base", "") or "0"
    return [
        int(row.open_time_ms), *prices, volume, int(row.open_time_ms) + step_ms - 1,
        getattr(row, "quote_volume", "") or "0", int(getattr(row, "trades", "") or 0), taker,
        getattr(row, "taker_buy_quote", "") or "0", "0",
    ]


def _window(times: pd.Series, params: dict, default_limit: int) -> slice:
    """Return the row slice Binance serves: from startTime forward, else the newest before endTime."""
    start, end = params.get("startTime"), params.get("endTime")
    limit = int(params.get("limit", default_limit))
    lo = 0 if start is None else int(times.searchsorted(int(start), side="left"))
    hi = len(times) if end is None else int(times.searchsorted(int(end), side="right"))
    if start is None:
        return slice(max(lo, hi - limit), hi)
    return slice(lo, min(hi, lo + limit))


def _check_limit(params: dict, default: int, maximum: int) -> None:
    if not 1 <= int(params.get("limit", default)) <= maximum:
        raise errors.invalid_value("limit")


def klines(data_dir: Path, params: dict, price_factor: Decimal | None) -> list:
    """Return kline rows; `price_factor` None for trade klines, else mark (1) or index (0.9998)."""
    _check_limit(params, 500, 1500)
    symbol = params.get("symbol") or params.get("pair")
    if not symbol:
        raise errors.mandatory_missing("symbol")
    if "interval" not in params:
        raise errors.mandatory_missing("interval")
    table = kline_table(data_dir, symbol, params["interval"])
    rows = table.iloc[_window(table["open_time_ms"], params, 500)]
    step = INTERVAL_MS[params["interval"]]
    return [_kline_row(row, step, price_factor) for row in rows.itertuples(index=False)]


def funding_rates(data_dir: Path, params: dict) -> list:
    """Return the real funding history of a symbol."""
    symbol = params.get("symbol")
    if symbol not in FUNDING_FILES:
        raise errors.invalid_symbol()
    _check_limit(params, 100, 1000)
    table = _read(data_dir, FUNDING_FILES[symbol])
    rows = table.iloc[_window(table["funding_time_ms"].astype("int64"), params, 100)]
    return [{"symbol": symbol, "fundingTime": int(r.funding_time_ms), "fundingRate": r.funding_rate}
            for r in rows.itertuples(index=False)]


def open_interest_history(data_dir: Path, params: dict) -> list:
    """Return the real open interest history of a symbol and period."""
    key = (params.get("symbol"), params.get("period"))
    if key not in OPEN_INTEREST_FILES:
        raise errors.invalid_symbol()
    _check_limit(params, 30, 500)
    table = _read(data_dir, OPEN_INTEREST_FILES[key])
    rows = table.iloc[_window(table["timestamp_ms"].astype("int64"), params, 30)]
    return [{"symbol": key[0], "sumOpenInterest": r.open_interest,
             "sumOpenInterestValue": r.open_interest_value, "timestamp": int(r.timestamp_ms)}
            for r in rows.itertuples(index=False)]


def last_close(data_dir: Path, symbol: str) -> Decimal | None:
    """Return the close of the newest recorded 1m candle, or None when there is no recording."""
    try:
        table = kline_table(data_dir, symbol, "1m")
    except errors.BinanceError:
        return None
    return Decimal(table["close"].iloc[-1]) if len(table) else None


def depth(symbol: str, price: Decimal, tick: Decimal, limit: int, now_ms: int) -> dict:
    """Return a SYNTHETIC order book: `limit` levels a tick apart on both sides of `price`."""
    levels = range(1, min(limit, 1000) + 1)
    return {
        "lastUpdateId": now_ms, "E": now_ms, "T": now_ms,
        "bids": [[f"{price - tick * i:f}", "1.000"] for i in levels],
        "asks": [[f"{price + tick * i:f}", "1.000"] for i in levels],
    }
