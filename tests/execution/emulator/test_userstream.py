"""The user data stream: listenKey REST endpoints and the websocket, driven by ccxt.pro."""
import asyncio
from decimal import Decimal as D

import aiohttp
import ccxt
import pytest

from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"


@pytest.fixture
async def pro(trading_emulator):
    client = usdm_client(trading_emulator, pro=True)
    await client.load_markets()
    yield client
    await client.close()


async def eventually(predicate, timeout_s: float = 5.0):
    """Return predicate()'s first truthy value, polling; ccxt.pro keeps every update in its caches."""
    for _ in range(int(timeout_s / 0.02)):
        if value := predicate():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def cached_order(client, order_id: str, status: str) -> dict | None:
    return next((o for o in (client.orders or []) if o["id"] == order_id and o["status"] == status), None)


async def until_subscribed(emulator, timeout_s: float = 5.0) -> None:
    """Wait until a websocket client is attached, so no event is published before it listens."""
    for _ in range(int(timeout_s / 0.02)):
        if any(emulator.server.hub.clients.values()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no user-stream client connected")


def test_listen_key_create_is_stable_keepalive_and_delete(usdm):
    first = usdm.fapiPrivatePostListenKey()["listenKey"]

    assert usdm.fapiPrivatePostListenKey()["listenKey"] == first
    assert usdm.fapiPrivatePutListenKey()["listenKey"] == first
    usdm.fapiPrivateDeleteListenKey()
    with pytest.raises(ccxt.AuthenticationError, match="-1125"):
        usdm.fapiPrivatePutListenKey()


async def test_watch_orders_receives_new_and_trade_updates(trading_emulator, pro):
    watching = asyncio.ensure_future(pro.watch_orders(BTC))
    await until_subscribed(trading_emulator)

    placed = await pro.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "ws-1"})
    first = await asyncio.wait_for(watching, 5)

    last = await eventually(lambda: cached_order(pro, placed["id"], "closed"))
    assert first[0]["clientOrderId"] == "ws-1"
    assert (last["filled"], last["average"], last["fee"]["cost"]) == (0.01, 60000.0, 0.3)


async def test_watch_orders_receives_algo_update_when_stop_fires(trading_emulator, pro):
    await pro.create_order(BTC, "market", "buy", 0.01)
    watching = asyncio.ensure_future(pro.watch_orders(BTC))
    await until_subscribed(trading_emulator)
    stop = await pro.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000,
                                                                       "reduceOnly": True})
    await asyncio.wait_for(watching, 5)

    await asyncio.get_running_loop().run_in_executor(None, trading_emulator.set_price, "BTCUSDT", D("58900"))

    finished = await eventually(lambda: cached_order(pro, stop["id"], "closed"))
    assert (finished["info"]["X"], finished["clientOrderId"]) == ("FINISHED", stop["clientOrderId"])


async def test_watch_positions_snapshot_then_update(trading_emulator, pro):
    snapshot = await asyncio.wait_for(pro.watch_positions([BTC]), 5)
    assert snapshot == []
    watching = asyncio.ensure_future(pro.watch_positions([BTC]))
    await until_subscribed(trading_emulator)

    await pro.create_order(BTC, "market", "sell", 0.02)
    positions = await asyncio.wait_for(watching, 5)

    assert [(p["side"], p["contracts"], p["entryPrice"]) for p in positions] == [("short", 0.02, 60000.0)]


async def test_watch_balance_reports_wallet_after_fill(trading_emulator, pro):
    watching = asyncio.ensure_future(pro.watch_balance())
    await until_subscribed(trading_emulator)

    await pro.create_order(BTC, "market", "buy", 0.01)
    balance = await asyncio.wait_for(watching, 5)

    assert balance["USDT"]["total"] == 9999.7  # 10 000 less 0.3 commission


async def test_expired_listen_key_sends_listen_key_expired_and_closes(trading_emulator, usdm):
    key = usdm.fapiPrivatePostListenKey()["listenKey"]
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{trading_emulator.ws_url}/{key}") as ws:
        await until_subscribed(trading_emulator)

        trading_emulator.expire_listen_key()
        message = await asyncio.wait_for(ws.receive_json(), 5)
        closing = await asyncio.wait_for(ws.receive(), 5)

    assert (message["e"], message["listenKey"]) == ("listenKeyExpired", key)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_drop_user_stream_closes_without_message(trading_emulator, usdm):
    key = usdm.fapiPrivatePostListenKey()["listenKey"]
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{trading_emulator.url}/private/ws?listenKey={key}") as ws:
        await until_subscribed(trading_emulator)

        trading_emulator.drop_user_stream()
        closing = await asyncio.wait_for(ws.receive(), 5)

    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_unknown_listen_key_is_refused(trading_emulator):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError, match="400"):
            await session.ws_connect(f"{trading_emulator.ws_url}/not-a-key")
