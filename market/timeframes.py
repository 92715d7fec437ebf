"""Timeframe arithmetic on epoch milliseconds. Pure: no Django, no clock."""

MINUTE_MS = 60_000

TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
    "3d": 3 * 1440 * MINUTE_MS,
    "1w": 7 * 1440 * MINUTE_MS,
}

# Binance weekly candles open on Monday 00:00 UTC; the epoch (1970-01-01) was a Thursday.
_WEEK_OFFSET_MS = 4 * 1440 * MINUTE_MS


def timeframe_ms(timeframe: str) -> int:
    """Return the length of `timeframe` in milliseconds; raise ValueError for an unknown one."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}") from None


def floor_open_time_ms(ts_ms: int, timeframe: str) -> int:
    """Return the open time (ms) of the `timeframe` bar that contains `ts_ms`."""
    step = timeframe_ms(timeframe)
    offset = _WEEK_OFFSET_MS if timeframe == "1w" else 0
    return (ts_ms - offset) // step * step + offset
