"""Offline market feeds: a replay of a recorded candle file and the simulated market.

Pure: no Django, no clock. The caller owns the clock and passes its time in; a feed hands out
only bars that have closed by then (open_time_ms + interval <= now), so nothing leaks ahead.
"""
from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from market.simfeed import BAR_DTYPE, Bar, SimulatedMarket
from market.timeframes import MINUTE_MS, TIMEFRAME_MS, timeframe_ms

CSV_HEADER = [
    "open_time_ms", "open", "high", "low", "close", "volume",
    "quote_volume", "trades", "taker_buy_base", "taker_buy_quote",
]
_VALUE_COLUMNS = CSV_HEADER[1:]
_FILE_NAME = re.compile(
    r"^binance_(?P<market>[a-z]+)_(?P<symbol>[A-Z0-9]+)_(?P<timeframe>\d+[mhdw])_"
    r"(?P<first>\d{4}-\d{2}-\d{2})_(?P<last>\d{4}-\d{2}-\d{2})\.csv\.gz$"
)
_MARKET_NAMES = {"usdm": "USD-M", "spot": "spot"}


@dataclass(frozen=True, slots=True)
class ReplayBar:
    """One recorded candle with its values as the exact decimal strings of the file ('' when empty)."""

    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: str
    taker_buy_base: str
    taker_buy_quote: str
    simulated: bool = False


FeedBar = Bar | ReplayBar


@runtime_checkable
class Feed(Protocol):
    """A source of closed candles driven by the caller's clock."""

    name: str
    label: str              # shown to the operator on every page that shows these prices
    is_simulated: bool      # True when prices are not live exchange prices (replay or simulation)

    def next_bars(self, up_to_ms: int) -> list[FeedBar]:
        """Return the bars not yet handed out whose close time is <= `up_to_ms`, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class CandleFileInfo:
    """What a market data file name says about its contents."""

    path: Path
    market: str
    symbol: str
    timeframe: str
    first_date: date
    last_date: date

    @property
    def span_days(self) -> int:
        """Return the number of calendar days between the first and last open."""
        return (self.last_date - self.first_date).days


def parse_candle_file_name(path: Path | str) -> CandleFileInfo | None:
    """Return what a `binance_<market>_<SYMBOL>_<interval>_<first>_<last>.csv.gz` name says, else None."""
    path = Path(path)
    match = _FILE_NAME.match(path.name)
    if match is None or match["timeframe"] not in TIMEFRAME_MS:
        return None
    return CandleFileInfo(
        path=path, market=match["market"], symbol=match["symbol"], timeframe=match["timeframe"],
        first_date=date.fromisoformat(match["first"]), last_date=date.fromisoformat(match["last"]),
    )


def choose_replay_file(data_dir: Path | str, exchange_symbol: str = "BTCUSDT", market: str = "usdm",
                       timeframe: str = "5m") -> Path:
    """Return the candle file in `data_dir` covering the longest span; raise FileNotFoundError if none."""
    infos = [parse_candle_file_name(p) for p in sorted(Path(data_dir).glob("*.csv.gz"))]
    matching = [
        i for i in infos
        if i is not None and (i.market, i.symbol, i.timeframe) == (market, exchange_symbol, timeframe)
    ]
    if not matching:
        raise FileNotFoundError(f"no {market} {exchange_symbol} {timeframe} candle file in {data_dir}")
    # Ties go to the most recent file: its prices are closer to today's.
    return max(matching, key=lambda i: (i.span_days, i.last_date)).path


def read_candle_file(path: Path | str) -> list[ReplayBar]:
    """Return every candle of a gzip CSV market data file, values kept as the file's strings."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != CSV_HEADER:
            raise ValueError(f"{path}: header {header} is not {','.join(CSV_HEADER)}")
        return [ReplayBar(int(row[0]), *row[1:]) for row in reader if row]


class ReplayFeed:
    """Hand out the candles of a recorded file in order as the caller's simulated clock advances."""

    is_simulated = True  # real prices, but not live ones

    def __init__(self, path: Path | str, timeframe: str | None = None, start_ms: int | None = None) -> None:
        """Load `path`; the timeframe comes from the file name unless given; skip bars opening before `start_ms`."""
        path = Path(path)
        info = parse_candle_file_name(path)
        timeframe = timeframe or (info.timeframe if info else None)
        if timeframe is None:
            raise ValueError(f"cannot tell the timeframe of {path.name}; pass timeframe=")
        self.timeframe = timeframe
        self.interval_ms = timeframe_ms(timeframe)
        self._bars = [b for b in read_candle_file(path) if start_ms is None or b.open_time_ms >= start_ms]
        self._pos = 0
        market = _MARKET_NAMES.get(info.market, info.market) if info else "unknown market"
        symbol = info.symbol if info else "unknown symbol"
        self.name = f"replay:{path.name}"
        self.label = f"REPLAY of real Binance {market} {symbol} {timeframe} candles from {path.name}, simulated clock"

    def __len__(self) -> int:
        return len(self._bars)

    @property
    def exhausted(self) -> bool:
        """Return True once every bar of the file has been handed out."""
        return self._pos >= len(self._bars)

    @property
    def next_close_ms(self) -> int | None:
        """Return when the next bar closes (epoch ms), the time to advance the clock to; None when exhausted."""
        return None if self.exhausted else self._bars[self._pos].open_time_ms + self.interval_ms

    def next_bars(self, up_to_ms: int) -> list[ReplayBar]:
        """Return the bars not yet handed out that closed by `up_to_ms`, oldest first; [] when exhausted."""
        start = self._pos
        while self._pos < len(self._bars) and self._bars[self._pos].open_time_ms + self.interval_ms <= up_to_ms:
            self._pos += 1
        return self._bars[start:self._pos]


class SimulatedFeed:
    """Hand out bars of a SimulatedMarket, aggregated to `timeframe`, as the caller's clock advances."""

    is_simulated = True

    def __init__(self, market: SimulatedMarket, timeframe: str = "1m") -> None:
        """Wrap `market`; its next bar must open on a `timeframe` boundary."""
        self.market = market
        self.timeframe = timeframe
        self.interval_ms = timeframe_ms(timeframe)
        if self.interval_ms % MINUTE_MS or market.next_open_ms % self.interval_ms:
            raise ValueError(f"the market's next bar ({market.next_open_ms}) does not open on a {timeframe} boundary")
        self.name = f"simulated:{timeframe}:seed={market.config.seed}"
        self.label = market.label

    @property
    def next_close_ms(self) -> int:
        """Return when the next bar closes (epoch ms)."""
        return self.market.next_open_ms + self.interval_ms

    def next_bars(self, up_to_ms: int) -> list[Bar]:
        """Return the simulated bars that closed by `up_to_ms`, oldest first."""
        count = max(0, (up_to_ms - self.market.next_open_ms) // self.interval_ms)
        per_bar = self.interval_ms // MINUTE_MS
        minutes = self.market.bars(count * per_bar)
        return [_bar_from_minutes(minutes[i:i + per_bar]) for i in range(0, len(minutes), per_bar)]


def _bar_from_minutes(rows: np.ndarray) -> Bar:
    sums = {name: rows[name].sum().item() for name in ("volume", "quote_volume", "trades",
                                                       "taker_buy_base", "taker_buy_quote")}
    # Sums of rounded floats pick up binary noise; round back to the resolution of the parts.
    for name in ("volume", "taker_buy_base"):
        sums[name] = round(sums[name], 8)
    for name in ("quote_volume", "taker_buy_quote"):
        sums[name] = round(sums[name], 4)
    return Bar(
        open_time_ms=int(rows["open_time_ms"][0]), open=float(rows["open"][0]), high=float(rows["high"].max()),
        low=float(rows["low"].min()), close=float(rows["close"][-1]), **sums,
    )


def bars_to_frame(bars: list[FeedBar] | np.ndarray) -> pd.DataFrame:
    """Return bars (Bar, ReplayBar or a BAR_DTYPE array) as the frame `candles_upsert` expects."""
    if isinstance(bars, np.ndarray):
        frame = pd.DataFrame({name: bars[name] for name in BAR_DTYPE.names})
    else:
        frame = pd.DataFrame(
            {name: [getattr(b, name) for b in bars] for name in CSV_HEADER},
            columns=CSV_HEADER,
        )
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    # Keep strings as strings (no float round trip); an empty cell means the source lacked the value.
    return frame.replace({"": None}) if len(frame) else frame
