"""Backfill candles, funding, open interest and mark/index prices from an exchange through ccxt."""
from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from market.backfill import OPEN_INTEREST_PERIODS, BackfillJob, What, backfill_run, backfill_window
from market.exchanges.client import (
    DEFAULT_TIMEOUT_MS, NO_RETRY, CallStats, call_with_retry, exchange_client_from_settings, market_filters,
    market_resolve,
)
from market.exchanges.errors import ExchangeError, ExchangeRejected, ExchangeUnavailable
from market.models import MarketType
from market.services import instrument_ensure
from market.timeframes import TIMEFRAME_MS

# Loading markets is the first call: a short timeout there makes "no network" fail in seconds.
PROBE_TIMEOUT_MS = 5_000


def parse_utc_ms(text: str) -> int:
    """Return epoch ms for an ISO date or datetime; a naive value is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not an ISO date or datetime: {text!r} (e.g. 2025-01-01 or 2025-01-01T12:00)")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class Command(BaseCommand):
    help = "Backfill market data from an exchange (public endpoints); a rerun resumes from the last stored row."

    def add_arguments(self, parser):
        parser.add_argument("--exchange", default=settings.EXCHANGE_ID,
                            help="ccxt id: binanceusdm (default), bitget, gateio, ...")
        parser.add_argument("--symbols", nargs="+", default=["BTC/USDT:USDT", "ETH/USDT:USDT"],
                            help="ccxt unified symbols or venue ids (BTCUSDT)")
        parser.add_argument("--timeframes", nargs="+", default=["1m", "5m", "1h"], choices=list(TIMEFRAME_MS),
                            help="candle and mark/index timeframes; those that are open interest periods "
                                 "(5m..1d) also select the open interest period (else 1h)")
        parser.add_argument("--since", help="UTC start, e.g. 2025-01-01 (default: resume, else --days back)")
        parser.add_argument("--until", help="UTC end, exclusive (default: now)")
        parser.add_argument("--days", type=int, default=30, help="history to fetch when nothing is stored yet")
        parser.add_argument("--what", nargs="+", default=[w.value for w in What], choices=[w.value for w in What])
        parser.add_argument("--api-url", default=None,
                            help="replace the exchange's API host, e.g. a local emulator (default: settings)")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def handle(self, *args, **options):
        client = self._connect(options["exchange"], options["api_url"])
        jobs = self._jobs(client, options)
        now_ms = int(timezone.now().timestamp() * 1000)
        for job in jobs:
            self._run(client, job, now_ms, show_progress=not options["no_progress"])

    def _connect(self, exchange_id: str, api_url: str | None):
        try:
            client = exchange_client_from_settings(exchange_id, api_url=api_url, timeout_ms=PROBE_TIMEOUT_MS)
            call_with_retry(client, client.load_markets, policy=NO_RETRY, sleep=time.sleep, stats=CallStats())
        except ExchangeRejected as exc:
            raise CommandError(str(exc)) from None
        except ExchangeUnavailable as exc:
            reason = str(exc).removeprefix(f"{exchange_id}: ").removesuffix(" (after 1 tries)")
            raise CommandError(
                f"cannot reach {exchange_id} ({reason}): no network? use import_candles for offline data"
            ) from None
        client.timeout = DEFAULT_TIMEOUT_MS
        return client

    def _jobs(self, client, options) -> list[BackfillJob]:
        since_ms = parse_utc_ms(options["since"]) if options["since"] else None
        until_ms = parse_utc_ms(options["until"]) if options["until"] else None
        timeframes = options["timeframes"]
        oi_periods = [tf for tf in timeframes if tf in OPEN_INTEREST_PERIODS] or ["1h"]
        periods = {What.CANDLES: timeframes, What.MARK_INDEX: timeframes, What.FUNDING: [""],
                   What.OPEN_INTEREST: oi_periods}
        jobs = []
        for symbol in options["symbols"]:
            instrument, market = self._instrument(client, symbol)
            for what in map(What, options["what"]):
                jobs += [BackfillJob(instrument.id, market["symbol"], what, period, since_ms, until_ms,
                                     options["days"]) for period in periods[what]]
        return jobs

    def _instrument(self, client, symbol: str):
        try:
            market = market_resolve(client, symbol)
        except ExchangeRejected as exc:
            raise CommandError(str(exc)) from None
        if market["type"] not in MarketType.values:
            raise CommandError(f"{symbol}: {market['type']} markets are not supported")
        # Venue ids such as gateio's BTC_USDT do not split into base and quote; store BASEQUOTE then.
        venue_id = market["id"] if market["id"].isalnum() else market["base"] + market["quote"]
        instrument = instrument_ensure(exchange=client.id, exchange_symbol=venue_id, market_type=market["type"],
                                       filters=market_filters(client, market))
        return instrument, market

    def _run(self, client, job: BackfillJob, now_ms: int, show_progress: bool) -> None:
        label = f"{job.symbol} {job.what}{' ' + job.period if job.period else ''}"
        start_ms, end_ms = backfill_window(job, now_ms)
        step = TIMEFRAME_MS.get(job.period) if job.what != What.FUNDING else None
        total = max(0, (end_ms - start_ms) // step) if step else None
        # disable=None lets tqdm hide itself when stderr is not a terminal (cron, CI, django-q).
        with tqdm(total=total, desc=label, unit="row", disable=None if show_progress else True) as bar:
            try:
                stats = backfill_run(client, job, now_ms=now_ms, on_page=lambda _s, n: bar.update(n))
            except ExchangeError as exc:
                raise CommandError(f"{label}: {exc}; rows stored so far are kept, rerun to resume") from None
        self.stdout.write(f"{label}: {stats.rows_new} new rows, {stats.requests} requests, "
                          f"{stats.retries} retries")
