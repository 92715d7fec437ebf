"""Choose where run_bot's market data comes from: the exchange, a replay, or the simulator."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from django.conf import settings

from market.feeds import ReplayFeed, SimulatedFeed, choose_replay_file
from market.models import DataSource, Instrument
from market.services import instrument_ensure
from market.simfeed import SimConfig, SimulatedMarket
from market.timeframes import timeframe_ms

logger = logging.getLogger(__name__)


@dataclass
class SourceChoice:
    kind: str                   # "exchange", "replay" or "simulated"
    label: str                  # said on the console and on every page
    instrument: Instrument
    feed: object | None = None  # None for the exchange: django-q2 schedules drive it


def exchange_reachable(exchange_id: str, timeout_ms: int = 3000) -> bool:
    """Return True when the exchange's public API answers within `timeout_ms`."""
    from market.exchanges.client import exchange_client_from_settings

    try:
        exchange_client_from_settings(exchange_id, timeout_ms=timeout_ms).fetch_time()
        return True
    except Exception as exc:  # any failure means "not usable now"; the reason is logged
        logger.info("exchange %s not reachable: %s", exchange_id, type(exc).__name__)
        return False


def _activate_only(instrument: Instrument) -> None:
    Instrument.objects.exclude(pk=instrument.pk).filter(is_active=True).update(is_active=False)
    if not instrument.is_active:
        instrument.is_active = True
        instrument.save(update_fields=["is_active"])


def _replay(symbol: str, timeframe: str) -> SourceChoice | None:
    data_dir = Path(settings.MARKET_DATA_DIR)
    try:
        path = choose_replay_file(data_dir, exchange_symbol=symbol, market="usdm", timeframe=timeframe)
    except (FileNotFoundError, OSError):
        return None
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=symbol, market_type="swap",
                                   data_source=DataSource.REPLAY)
    last = instrument.candles.filter(timeframe=timeframe).order_by("-open_time").values_list("open_time", flat=True).first()
    # Resume after the last replayed bar so a restart does not rewrite the past.
    start_ms = int(last.timestamp() * 1000) + timeframe_ms(timeframe) if last else None
    feed = ReplayFeed(path, timeframe=timeframe, start_ms=start_ms)
    if feed.exhausted:
        return None
    return SourceChoice("replay", feed.label, instrument, feed)


def _simulated(symbol: str, timeframe: str, seed: int) -> SourceChoice:
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=symbol, market_type="swap",
                                   data_source=DataSource.SIMULATED)
    step = timeframe_ms(timeframe)
    last = instrument.candles.filter(timeframe=timeframe).order_by("-open_time").values_list("open_time", flat=True).first()
    if last is not None:
        start_ms = int(last.timestamp() * 1000) + step
    else:
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        start_ms = (now_ms - int(timedelta(days=3).total_seconds() * 1000)) // step * step
    market = SimulatedMarket(SimConfig(seed=seed, tick_size=float(instrument.tick_size)), start_ms)
    feed = SimulatedFeed(market, timeframe)
    return SourceChoice("simulated", feed.label, instrument, feed)


def choose_source(*, wanted: str, symbol: str, timeframe: str, seed: int = 1) -> SourceChoice:
    """Return the data source to run on: `wanted`, or for "auto" the first that works."""
    if wanted in ("auto", "exchange") and exchange_reachable(settings.EXCHANGE_ID):
        instrument = instrument_ensure(exchange=settings.EXCHANGE_ID, exchange_symbol=symbol, market_type="swap")
        choice = SourceChoice("exchange", f"LIVE exchange data from {settings.EXCHANGE_ID}", instrument)
    elif wanted == "exchange":
        raise RuntimeError(f"DATA_SOURCE=exchange but {settings.EXCHANGE_ID} cannot be reached")
    else:
        choice = _replay(symbol, timeframe) if wanted in ("auto", "replay") else None
        if choice is None and wanted == "replay":
            raise RuntimeError(f"DATA_SOURCE=replay but no unplayed {symbol} {timeframe} file in {settings.MARKET_DATA_DIR}")
        choice = choice or _simulated(symbol, timeframe, seed)
    _activate_only(choice.instrument)
    return choice
