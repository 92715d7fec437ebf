"""Price paths through real candles, for stepping the emulator's prices through a recording."""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from execution.emulator.marketdata import kline_table


def candle_path(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> list[Decimal]:
    """Return the prices a candle visits: open, the nearer extreme first, the other extreme, close."""
    # A rising candle most likely dipped before it rallied; a falling one rallied first.
    extremes = [low, high] if close >= open_ else [high, low]
    path = [open_, *extremes, close]
    return [price for i, price in enumerate(path) if i == 0 or price != path[i - 1]]


def kline_paths(data_dir: Path, symbol: str, start_ms: int = 0) -> Iterator[tuple[int, list[Decimal]]]:
    """Yield (open_time_ms, price path) for each real 1m candle of `symbol` from `start_ms` on."""
    table = kline_table(Path(data_dir), symbol, "1m")
    rows = table[table["open_time_ms"] >= start_ms]
    for row in rows.itertuples(index=False):
        yield int(row.open_time_ms), candle_path(
            Decimal(row.open), Decimal(row.high), Decimal(row.low), Decimal(row.close))
