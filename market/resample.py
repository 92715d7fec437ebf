"""Build higher-timeframe candles from lower ones, the way the exchange builds its own. Pure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from market.timeframes import floor_open_time_ms, timeframe_ms

PRICE_COLUMNS = ("open", "high", "low", "close")
SUM_COLUMNS = ("volume", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
# Binance volumes carry at most 8 decimals, so rounding float sums to 8 places returns the exact
# decimal for any sum below about 1e7; above that the error stays within float64 precision.
SUM_DECIMALS = 8


def resample(numbers: pd.DataFrame, source: str, target: str, *, complete_only: bool = True) -> pd.DataFrame:
    """Return `target` candles (float64, column open_time_ms) aggregated from `source` candles.

    `numbers` has int64 open_time_ms sorted ascending without duplicates, and float columns.
    open is the first open, high the max, low the min, close the last close; volume-like
    columns are summed (NaN if any input is NaN). With `complete_only`, a bucket is kept only
    when every source bar in it exists. 1w buckets start Monday 00:00 UTC.
    """
    columns = [c for c in (*PRICE_COLUMNS, *SUM_COLUMNS) if c in numbers.columns]
    if numbers.empty:
        bucket_bounds(np.array([], dtype="int64"), source, target)   # the same error for an impossible pair
        return pd.DataFrame({"open_time_ms": np.array([], dtype="int64"), **{c: [] for c in columns}})
    buckets, starts, ends, complete = bucket_bounds(numbers["open_time_ms"].to_numpy(dtype="int64"), source, target)
    out = {"open_time_ms": buckets[starts]}
    for column in columns:
        values = numbers[column].to_numpy(dtype="float64")
        out[column] = _aggregate(column, values, starts, ends)
    frame = pd.DataFrame(out)
    if complete_only:
        frame = frame[complete].reset_index(drop=True)
    return frame


def resample_columns(open_time_ms: np.ndarray, columns: dict[str, np.ndarray], source: str,
                     target: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return (open_time_ms, {column: values}) of the complete `target` buckets, as `resample` computes them.

    The same aggregation without a DataFrame, for callers that hold arrays (the live snapshot's views).
    """
    buckets, starts, ends, complete = bucket_bounds(np.asarray(open_time_ms, dtype="int64"), source, target)
    if not len(buckets):
        return buckets, {name: np.array([], dtype="float64") for name in columns}
    return buckets[starts][complete], {
        name: _aggregate(name, np.asarray(values, dtype="float64"), starts, ends)[complete]
        for name, values in columns.items()}


def bucket_bounds(open_time: np.ndarray, source: str, target: str):
    """Return (bucket of each bar, first and last index of each bucket, which buckets are complete)."""
    step, source_step = timeframe_ms(target), timeframe_ms(source)
    if step % source_step or step <= source_step:
        raise ValueError(f"cannot build {target} from {source}")
    buckets = floor_open_time_ms(open_time, target)
    if not len(buckets):
        empty = np.array([], dtype="int64")
        return buckets, empty, empty, np.array([], dtype=bool)
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], len(open_time)) - 1
    return buckets, starts, ends, (ends - starts + 1) == step // source_step


def _aggregate(column: str, values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    if column == "open":
        return values[starts]
    if column == "close":
        return values[ends]
    if column == "high":
        return np.maximum.reduceat(values, starts)
    if column == "low":
        return np.minimum.reduceat(values, starts)
    return np.add.reduceat(values, starts)


def to_decimal_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with value columns as shortest decimal strings (None for NaN), for storage."""
    out = {"open_time_ms": frame["open_time_ms"].to_numpy(dtype="int64")}
    for column in frame.columns.drop("open_time_ms"):
        values = frame[column].to_numpy(dtype="float64")
        if column == "trades":
            text = pd.Series(np.nan_to_num(values).astype("int64")).astype(str).to_numpy(dtype=object)
        else:
            rounded = values if column in PRICE_COLUMNS else np.round(values, SUM_DECIMALS)
            text = pd.Series(rounded).astype(str).to_numpy(dtype=object)
        out[column] = np.where(np.isnan(values), None, text)
    return pd.DataFrame(out)
