"""The end-to-end path seen from a browser: a cycle on real candles reaches a websocket client."""
import asyncio
from decimal import Decimal
from datetime import datetime, timezone

import pandas as pd
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from dashboard import relay
from dashboard.consumers import LiveConsumer
from dashboard.events import ROLE_ENV
from decisions.models import Mode
from decisions.selectors import trading_config_get
from execution.engine import cycle_run
from execution.models import EquityPoint
from market.ingest import candles_upsert
from market.services import instrument_ensure

FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _market(data_dir, bars: int) -> list[datetime]:
    frame = pd.read_csv(data_dir / FILE, dtype=str, nrows=bars)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    config = trading_config_get()
    config.mode = Mode.ON
    config.edge_threshold = 0.5  # the path is under test; on these bars the default edge refuses entries
    config.save()
    return [datetime.fromtimestamp((int(t) + 900_000) / 1000, tz=timezone.utc) for t in frame["open_time_ms"][300:]]


async def _client() -> WebsocketCommunicator:
    user = await database_sync_to_async(get_user_model().objects.create_user)("trader", password="pw")
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["event"] == "state"
    return communicator


async def _events_until(communicator, wanted: set[str], timeout: float = 5) -> dict:
    seen = {}
    while not wanted <= seen.keys():
        message = await communicator.receive_json_from(timeout=timeout)
        seen.setdefault(message["event"], message["data"])
    return seen


async def test_cycle_on_real_candles_reaches_websocket_client(market_data_dir):
    closes = await _market(market_data_dir, 310)
    communicator = await _client()

    await sync_to_async(cycle_run)(now=closes[0], decide=True)

    seen = await _events_until(communicator, {"snapshot", "decision", "price", "equity"})
    assert seen["decision"]["as_of"].startswith(closes[0].strftime("%Y-%m-%dT%H:%M"))
    assert seen["decision"]["action"] in {"LONG", "SHORT", "FLAT"}
    stored = await database_sync_to_async(EquityPoint.objects.get)(ts=closes[0])
    assert Decimal(seen["equity"]["equity_usdt"]) == stored.equity_usdt
    await communicator.disconnect()


async def test_worker_process_events_reach_client_through_outbox_relay(market_data_dir, monkeypatch):
    closes = await _market(market_data_dir, 310)
    communicator = await _client()
    relay.ensure_relay_running()
    await asyncio.sleep(relay.POLL_SECONDS * 2)  # the relay starts from the newest outbox row
    monkeypatch.setenv(ROLE_ENV, "worker")  # as in run_bot's engine and the django-q2 cluster

    await sync_to_async(cycle_run)(now=closes[0], decide=True)

    seen = await _events_until(communicator, {"decision", "equity"})
    assert seen["decision"]["instrument"] == "binanceusdm:BTC/USDT:USDT"
    await communicator.disconnect()
    relay._task.cancel()
