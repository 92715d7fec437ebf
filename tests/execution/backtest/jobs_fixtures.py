"""Fixtures of the backtest job tests (jobs, sweeps, walk-forward, the backtests page): real candles, live messages."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from dashboard.events import LIVE_GROUP
from decisions.models import Mode
from decisions.selectors import trading_config_get

STEP = timedelta(minutes=15)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def close_of(frame, index: int) -> datetime:
    """Return the close of the stored bar at `index` (its open plus one bar)."""
    return datetime.fromtimestamp(int(frame["open_time_ms"].iloc[index]) / 1000, tz=timezone.utc) + STEP


@pytest.fixture
def market(btc_15m):
    """Real BTCUSDT 15m bars with the live configuration in mode ON, edge bar 0.5 (trades happen)."""
    instrument, frame = btc_15m
    config = trading_config_get()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    config.save()
    return instrument, frame


@pytest.fixture
def live_messages(settings):
    """Return a function that drains the "live" group's messages seen by one subscribed channel."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                           "CONFIG": {"capacity": 2000}}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(LIVE_GROUP, channel)

    async def drain():
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), 0.05))
            except asyncio.TimeoutError:
                return messages
    return lambda: async_to_sync(drain)()


def backtest_events(messages, run_id=None):
    """Return the data of the "backtest" live events among `messages`, of one run when given."""
    return [m["data"] for m in messages
            if m["event"] == "backtest" and (run_id is None or m["data"]["run_id"] == run_id)]


@pytest.fixture
def eth_15m(market_data_dir, market):
    """Store the same span of real USD-M ETHUSDT 15m candles next to BTCUSDT's; return the active instrument."""
    from market.ingest import candles_upsert
    from market.services import instrument_ensure
    from tests.market_fixtures import DAY_BARS, WARMUP_BARS, real_frame

    frame = real_frame(market_data_dir, "binance_usdm_ETHUSDT_15m_2025-07-04_2025-12-31.csv.gz", WARMUP_BARS + DAY_BARS)
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    return instrument
