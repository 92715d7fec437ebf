"""A local Binance USD-M (fapi) emulator for tests: real recorded data behind Binance's REST formats.

Payloads follow the Binance USD-M REST docs ("Exchange Information", "Kline/Candlestick Data",
"Mark Price Kline", "Index Price Kline", "Get Funding Rate History", "Open Interest Statistics")
and were checked against the recorded ccxt payloads in ../shared/fixtures/ccxt_binance/
(response.json, fetchOHLCV: 12-field arrays, decimals as strings, times as int ms).

Data sources, and what is synthetic:
- klines: REAL Binance USD-M 1m candles from MARKET_DATA_DIR; other intervals are aggregated
  from them. Columns the recordings lack (quote volume, trades, taker quote) are sent as "0"/0.
- markPriceKlines / indexPriceKlines: SYNTHETIC, derived from the real trade candles
  (mark = trade price, index = trade price x 0.9998); the recordings hold no mark/index prices.
- fundingRate: REAL funding history (markPrice is omitted: the recordings lack it).
- openInterestHist: REAL 4h and 1d open interest history.
- exchangeInfo: a SYNTHETIC subset (BTCUSDT, ETHUSDT perpetuals) with Binance's real filter values.

Failures are injected per path with `fail(...)`; every request is recorded in `requests`.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

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
# Binance USD-M filter values (tickSize, stepSize, notional) from /fapi/v1/exchangeInfo.
SYMBOLS = {
    "BTCUSDT": ("BTC", "0.10", "0.001", "100", 2, 3),
    "ETHUSDT": ("ETH", "0.01", "0.001", "20", 2, 3),
}


@dataclass
class Fault:
    """One injected failure: an HTTP status (with optional Retry-After) or a stall of `delay_s`."""

    status: int = 0
    retry_after_s: int | None = None
    delay_s: float = 0.0


def _read(data_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(data_dir / name, dtype=str, keep_default_na=False)


@lru_cache(maxsize=8)
def kline_table(data_dir: Path, symbol: str, interval: str) -> pd.DataFrame:
    """Return candles of `interval` as strings, aggregated from the real 1m recording."""
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


class BinanceEmulator:
    """Serve Binance USD-M public REST endpoints on 127.0.0.1 at a random port."""

    def __init__(self, data_dir: Path, server_time_ms: int | None = None):
        self.data_dir = Path(data_dir)
        self.server_time_ms = server_time_ms
        self.requests: list[tuple[str, dict]] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval makes stop() (and each test's teardown) return in milliseconds.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> BinanceEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail(self, path: str, *, status: int = 0, times: int = 1, retry_after_s: int | None = None,
             delay_s: float = 0.0) -> None:
        """Make the next `times` requests to `path` fail with `status`, or stall for `delay_s`."""
        with self._lock:
            queue = self._faults.setdefault(path, deque())
            queue.extend(Fault(status, retry_after_s, delay_s) for _ in range(times))

    def count(self, path: str) -> int:
        """Return how many requests reached `path`, failed ones included."""
        return Counter(p for p, _ in self.requests)[path]

    def params(self, path: str) -> list[dict]:
        """Return the query parameters of every request to `path`, in order."""
        return [q for p, q in self.requests if p == path]

    def take_fault(self, path: str, params: dict) -> Fault | None:
        """Record a request and return the next fault injected for its path, if any."""
        with self._lock:
            self.requests.append((path, params))
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def route(self, path: str, params: dict) -> tuple[int, object]:
        """Return (status, JSON body) for a request."""
        routes = {
            "/fapi/v1/ping": lambda: {},
            "/fapi/v1/time": lambda: {"serverTime": self._now_ms()},
            "/fapi/v1/exchangeInfo": self._exchange_info,
            "/fapi/v1/klines": lambda: self._klines(params, None),
            "/fapi/v1/markPriceKlines": lambda: self._klines(params, Decimal(1)),
            "/fapi/v1/indexPriceKlines": lambda: self._klines(params, INDEX_FACTOR),
            "/fapi/v1/fundingRate": lambda: self._funding(params),
            "/futures/data/openInterestHist": lambda: self._open_interest(params),
        }
        if path not in routes:
            return 404, {"code": -5000, "msg": f"Path {path}, Method GET is invalid"}
        try:
            return 200, routes[path]()
        except KeyError as exc:
            return 400, {"code": -1121, "msg": f"Invalid symbol {exc}."}
        except ValueError as exc:
            return 400, {"code": -1130, "msg": str(exc)}

    def _now_ms(self) -> int:
        return self.server_time_ms if self.server_time_ms is not None else int(time.time() * 1000)

    def _exchange_info(self) -> dict:
        return {
            "timezone": "UTC", "serverTime": self._now_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                            "limit": 2400}],
            "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True,
                                               "autoAssetExchange": "-10000"}],
            "symbols": [_symbol_info(symbol, *spec) for symbol, spec in SYMBOLS.items()],
        }

    def _klines(self, params: dict, price_factor: Decimal | None) -> list:
        limit = int(params.get("limit", 500))
        if not 1 <= limit <= 1500:
            raise ValueError("Data sent for parameter 'limit' is not valid.")
        symbol = params.get("symbol") or params["pair"]
        table = kline_table(self.data_dir, symbol, params["interval"])
        rows = table.iloc[_window(table["open_time_ms"], params, 500)]
        step = INTERVAL_MS[params["interval"]]
        return [_kline_row(row, step, price_factor) for row in rows.itertuples(index=False)]

    def _funding(self, params: dict) -> list:
        symbol = params["symbol"]
        table = _read(self.data_dir, FUNDING_FILES[symbol])
        times = table["funding_time_ms"].astype("int64")
        if not 1 <= int(params.get("limit", 100)) <= 1000:
            raise ValueError("Data sent for parameter 'limit' is not valid.")
        rows = table.iloc[_window(times, params, 100)]
        return [{"symbol": symbol, "fundingTime": int(r.funding_time_ms), "fundingRate": r.funding_rate}
                for r in rows.itertuples(index=False)]

    def _open_interest(self, params: dict) -> list:
        symbol, period = params["symbol"], params["period"]
        if not 1 <= int(params.get("limit", 30)) <= 500:
            raise ValueError("Data sent for parameter 'limit' is not valid.")
        table = _read(self.data_dir, OPEN_INTEREST_FILES[(symbol, period)])
        rows = table.iloc[_window(table["timestamp_ms"].astype("int64"), params, 30)]
        return [{"symbol": symbol, "sumOpenInterest": r.open_interest,
                 "sumOpenInterestValue": r.open_interest_value, "timestamp": int(r.timestamp_ms)}
                for r in rows.itertuples(index=False)]


def _symbol_info(symbol, base, tick, step, notional, price_precision, qty_precision) -> dict:
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": price_precision, "quantityPrecision": qty_precision, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"], "settlePlan": 0,
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
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


def _handler_for(emulator: BinanceEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query))
            fault = emulator.take_fault(parts.path, params)
            if fault and fault.delay_s:
                time.sleep(fault.delay_s)
            if fault and fault.status:
                self._send(fault.status, _fault_body(fault.status), fault.retry_after_s)
                return
            self._send(*emulator.route(parts.path, params))

        def _send(self, status: int, body: object, retry_after_s: int | None = None) -> None:
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if retry_after_s is not None:
                    self.send_header("Retry-After", str(retry_after_s))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (an injected stall outlasted its timeout)

        def log_message(self, format, *args):  # keep test output quiet
            pass

    return Handler


def _fault_body(status: int) -> dict:
    if status in (418, 429):
        return {"code": -1003, "msg": "Too many requests; current limit is 2400 requests per minute."}
    return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
