"""Backfill of candles and derivatives from an exchange through ccxt, page by page, resumable.

Every page is written through market.ingest before the next is requested, so an interrupted run
loses at most one page and a rerun continues from the last stored row.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Callable

import ccxt
import pandas as pd

from market.exchanges.client import (
    NO_RETRY, CallStats, RetryPolicy, call_with_retry, exchange_client_from_settings,
)
from market.exchanges.errors import ExchangeError
from market.ingest import candles_upsert, derivatives_upsert
from market.models import Candle, DataSource, DerivativesKind, DerivativesSample, Instrument
from market.timeframes import floor_open_time_ms, timeframe_ms

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
CANDLE_PAGE_LIMIT = 1000  # ccxt caps Binance klines at 1000; 1000 also costs less weight than 1500
FUNDING_PAGE_LIMIT = 1000
OPEN_INTEREST_PAGE_LIMIT = 500
# Binance serves only the latest 30 days of open interest history; ask for a little less.
OPEN_INTEREST_HISTORY_MS = 29 * DAY_MS
OPEN_INTEREST_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
FUNDING_PERIOD = "8h"  # Binance's usual settlement interval; the period label of stored funding rates
OHLCV_FIELDS = ("open", "high", "low", "close", "volume")


class What(StrEnum):
    CANDLES = "candles"
    FUNDING = "funding"
    OPEN_INTEREST = "open_interest"
    MARK_INDEX = "mark_index"


@dataclass(frozen=True, slots=True)
class BackfillJob:
    instrument_id: int
    symbol: str  # ccxt unified symbol
    what: What
    period: str = ""  # timeframe of candles and mark/index, sampling period of open interest
    since_ms: int | None = None  # None: resume from the last stored row, else `default_days` back
    until_ms: int | None = None  # exclusive; None: now
    default_days: int = 30


@dataclass
class BackfillStats(CallStats):
    pages: int = 0
    rows_new: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    done: bool = False  # False when max_pages stopped the run before it caught up


def _text(value) -> str | None:
    if value is None:
        return None
    return repr(value) if isinstance(value, float) else str(value)


def ohlcv_frame(rows: list[list]) -> pd.DataFrame:
    """Return a candles_upsert frame from ccxt OHLCV rows [ms, open, high, low, close, volume]."""
    frame = pd.DataFrame(
        [[int(r[0]), *(_text(v) for v in r[1:6])] for r in rows], columns=["open_time_ms", *OHLCV_FIELDS]
    )
    return frame.astype({"open_time_ms": "int64"})


def funding_frame(items: list[dict]) -> pd.DataFrame:
    """Return a derivatives_upsert frame from ccxt funding rate history entries."""
    rows = [(int(i["timestamp"]), _text(i.get("fundingRate")), _text((i.get("info") or {}).get("markPrice")))
            for i in items]
    return pd.DataFrame(rows, columns=["ts_ms", "funding_rate", "mark_price"]).astype({"ts_ms": "int64"})


def open_interest_frame(items: list[dict]) -> pd.DataFrame:
    """Return a derivatives_upsert frame from ccxt open interest history entries."""
    rows = [(int(i["timestamp"]), _text(i.get("openInterestAmount")), _text(i.get("openInterestValue")))
            for i in items]
    frame = pd.DataFrame(rows, columns=["ts_ms", "open_interest", "open_interest_value"])
    return frame.astype({"ts_ms": "int64"})


def mark_index_frame(mark_rows: list[list], index_rows: list[list]) -> pd.DataFrame:
    """Return mark close, index close and basis = mark - index for bars present in both lists."""
    index_close = {int(r[0]): Decimal(_text(r[4])) for r in index_rows}
    rows = []
    for r in mark_rows:
        index = index_close.get(int(r[0]))
        if index is not None:
            mark = Decimal(_text(r[4]))
            rows.append((int(r[0]), str(mark), str(index), str(mark - index)))
    frame = pd.DataFrame(rows, columns=["ts_ms", "mark_price", "index_price", "basis"])
    return frame.astype({"ts_ms": "int64"})


def _in_range(frame: pd.DataFrame, column: str, lo_ms: int, hi_ms: int) -> pd.DataFrame:
    keep = (frame[column] >= lo_ms) & (frame[column] < hi_ms)
    return frame[keep].drop_duplicates(column).sort_values(column)


def _fetch_page(client, job: BackfillJob, since_ms: int, end_ms: int, fetch) -> pd.DataFrame:
    """Return one page of rows of `job.what` with timestamps in [since_ms, end_ms)."""
    until = {"until": end_ms - 1}  # ccxt's until is inclusive
    if job.what == What.CANDLES:
        rows = fetch(lambda: client.fetch_ohlcv(job.symbol, job.period, since_ms, CANDLE_PAGE_LIMIT, until))
        return _in_range(ohlcv_frame(rows), "open_time_ms", since_ms, end_ms)
    if job.what == What.MARK_INDEX:
        mark = fetch(lambda: client.fetch_mark_ohlcv(job.symbol, job.period, since_ms, CANDLE_PAGE_LIMIT, until))
        index = fetch(lambda: client.fetch_index_ohlcv(job.symbol, job.period, since_ms, CANDLE_PAGE_LIMIT, until))
        return _in_range(mark_index_frame(mark, index), "ts_ms", since_ms, end_ms)
    if job.what == What.FUNDING:
        items = fetch(lambda: client.fetch_funding_rate_history(job.symbol, since_ms, FUNDING_PAGE_LIMIT, until))
        return _in_range(funding_frame(items), "ts_ms", since_ms, end_ms)
    items = fetch(lambda: client.fetch_open_interest_history(
        job.symbol, job.period, since_ms, OPEN_INTEREST_PAGE_LIMIT, until))
    return _in_range(open_interest_frame(items), "ts_ms", since_ms, end_ms)


def _write(job: BackfillJob, frame: pd.DataFrame) -> int:
    if job.what == What.CANDLES:
        return candles_upsert(instrument_id=job.instrument_id, timeframe=job.period, frame=frame)
    return derivatives_upsert(instrument_id=job.instrument_id, kind=_kind(job.what), period=_period(job),
                              frame=frame)


def _kind(what: What) -> str:
    return {What.FUNDING: DerivativesKind.FUNDING, What.OPEN_INTEREST: DerivativesKind.OPEN_INTEREST,
            What.MARK_INDEX: DerivativesKind.MARK_INDEX}[what]


def _period(job: BackfillJob) -> str:
    # The same label as import_candles (market.csvformat), so imported and fetched rates share rows.
    return FUNDING_PERIOD if job.what == What.FUNDING else job.period


def _step_ms(job: BackfillJob) -> int:
    # Funding times drift a few ms past the hour, so step past the last one by 1 ms only.
    return 1 if job.what == What.FUNDING else timeframe_ms(job.period)


def _last_stored_ms(job: BackfillJob, lo_ms: int, hi_ms: int) -> int | None:
    lo, hi = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (lo_ms, hi_ms))
    if job.what == What.CANDLES:
        rows = Candle.objects.filter(instrument_id=job.instrument_id, timeframe=job.period, open_time__gte=lo,
                                     open_time__lt=hi)
        last = rows.order_by("-open_time").values_list("open_time", flat=True).first()
    else:
        rows = DerivativesSample.objects.filter(instrument_id=job.instrument_id, kind=_kind(job.what),
                                                period=_period(job), ts__gte=lo, ts__lt=hi)
        last = rows.order_by("-ts").values_list("ts", flat=True).first()
    return None if last is None else int(last.timestamp() * 1000)


def backfill_window(job: BackfillJob, now_ms: int) -> tuple[int, int]:
    """Return [start_ms, end_ms) still to fetch: resumed after the last stored row, closed bars only."""
    if job.what in (What.FUNDING, What.OPEN_INTEREST):
        end_ms = now_ms + 1
    else:  # the bar containing now is still forming: leave it to the next run
        end_ms = floor_open_time_ms(now_ms, job.period)
    if job.until_ms is not None:
        end_ms = min(end_ms, job.until_ms)
    last_ms = _last_stored_ms(job, job.since_ms or 0, end_ms)
    if last_ms is not None:  # resume, even from further back than default_days
        start_ms = max(job.since_ms or 0, last_ms + _step_ms(job))
    else:
        start_ms = job.since_ms if job.since_ms is not None else now_ms - job.default_days * DAY_MS
    if job.what == What.OPEN_INTEREST:
        start_ms = max(start_ms, now_ms - OPEN_INTEREST_HISTORY_MS)
    return start_ms, end_ms


def backfill_run(
    client: ccxt.Exchange,
    job: BackfillJob,
    *,
    now_ms: int,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[BackfillStats, int], None] | None = None,
    max_pages: int | None = None,
) -> BackfillStats:
    """Fetch and store `job` page by page up to now (or its until); return what was done.

    Raise ExchangeUnavailable when retries run out (rows stored so far stay; a rerun resumes),
    ExchangeRejected when the venue refuses the request. Precondition: markets are loaded.
    """
    stats = BackfillStats()
    since_ms, end_ms = backfill_window(job, now_ms)
    stats.first_ms = since_ms
    step_ms = _step_ms(job)

    def fetch(call):
        return call_with_retry(client, call, policy=policy, sleep=sleep, stats=stats)

    while since_ms < end_ms:
        if max_pages is not None and stats.pages >= max_pages:
            return stats
        frame = _fetch_page(client, job, since_ms, end_ms, fetch)
        if frame.empty:
            break
        stats.pages += 1
        stats.rows_new += _write(job, frame)
        stats.last_ms = int(frame.iloc[-1, 0])
        since_ms = stats.last_ms + step_ms
        if on_page is not None:
            on_page(stats, len(frame))
    stats.done = True
    return stats


# The live update runs every minute: short timeouts and few retries keep one run well inside
# that minute even with the network gone; what it misses the next run fetches.
LIVE_TIMEOUT_MS = 5_000
LIVE_POLICY = RetryPolicy(attempts=2, base_delay_s=1.0, max_delay_s=5.0)
LIVE_MAX_PAGES = 3


def candles_update_active(
    *, now_ms: int, timeframes: list[str], api_url: str | None = None,
    policy: RetryPolicy = LIVE_POLICY, sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Fetch the newest closed candles of every active exchange instrument; return new rows per instrument.

    Network failures are logged, never raised: the next run catches up from the last stored row.
    Overlapping runs are harmless because every write is an idempotent upsert.
    """
    instruments = Instrument.objects.filter(is_active=True, data_source=DataSource.EXCHANGE)
    added: dict[str, int] = {}
    for exchange_id in sorted(set(instruments.values_list("exchange", flat=True))):
        try:
            client = exchange_client_from_settings(exchange_id, api_url=api_url, timeout_ms=LIVE_TIMEOUT_MS)
            call_with_retry(client, client.load_markets, policy=NO_RETRY, sleep=sleep, stats=CallStats())
        except ExchangeError as exc:
            logger.warning("candle update skipped %s: %s", exchange_id, exc)
            continue
        for instrument in instruments.filter(exchange=exchange_id):
            added[str(instrument)] = _instrument_update(client, instrument, timeframes, now_ms, policy, sleep)
    return added


def _instrument_update(client, instrument, timeframes, now_ms, policy, sleep) -> int:
    new_rows = 0
    for timeframe in timeframes:
        job = BackfillJob(instrument.id, instrument.symbol, What.CANDLES, timeframe, default_days=1)
        try:
            stats = backfill_run(client, job, now_ms=now_ms, policy=policy, sleep=sleep, max_pages=LIVE_MAX_PAGES)
        except ExchangeError as exc:
            logger.warning("candle update of %s %s failed: %s", instrument, timeframe, exc)
            continue
        new_rows += stats.rows_new
    return new_rows
