"""The live socket end to end in one process: real services publish, events wait for the commit.

Each event comes from the code that produces it (an approval places the order, books the fill and
opens the position; the cycle decides and judges the gates; the engine records equity), inside a
transaction held open while the client listens: nothing may arrive before the commit.
"""
import asyncio
import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import close_old_connections, transaction

from dashboard import selectors
from dashboard.consumers import LiveConsumer, StateReads
from decisions.approvals import decision_approve
from decisions.models import Decision
from decisions.services import decision_run
from execution.models import EquityPoint, Fill, Order, Position
from execution.services import account_ensure, equity_record
from market.ingest import candles_upsert
from market.services import instrument_ensure
from tests.approval_fixtures import pending_decision_create
from tests.dashboard.conftest import user_with_role
from tests.dashboard.factories import TradingConfigFactory
from tests.market_fixtures import BTC_15M_FILE, WARMUP_BARS, real_frame

# The consumer reads the database from a worker thread, which a rolled-back test transaction would hide.
pytestmark = pytest.mark.django_db(transaction=True)

# A Wednesday afternoon, inside the default trading hours (07:00-23:00 Warsaw).
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)
QUIET_SECONDS = 0.3   # how long the open transaction is watched for a premature event


@database_sync_to_async
def make_user(name: str = "viewer", role: str | None = None):
    from django.contrib.auth import get_user_model

    return user_with_role(get_user_model(), name, role)


@database_sync_to_async
def pending_decision() -> Decision:
    """Store a HYBRID decision waiting for approval, priced by closed 1m candles inside its entry zone."""
    return pending_decision_create(NOW)


async def connect(user) -> WebsocketCommunicator:
    """Return a connected client whose first message, the state, has been read."""
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["event"] == "state"
    return communicator


async def events_until(communicator, wanted: set[str], timeout: float = 5) -> dict[str, list[dict]]:
    """Return every message received until each of `wanted` has arrived, by event name."""
    seen: dict[str, list[dict]] = {}
    while not wanted <= seen.keys():
        message = await communicator.receive_json_from(timeout=timeout)
        seen.setdefault(message["event"], []).append(message["data"])
    return seen


async def run_committed(communicator, work):
    """Run `work` in a transaction; return (its result, whether the client heard nothing before the commit)."""
    def inside_transaction():
        try:
            with transaction.atomic():
                result = work()
                # Listen while the transaction is still open: on_commit must hold every event back.
                quiet = async_to_sync(communicator.receive_nothing)(timeout=QUIET_SECONDS)
            return result, quiet
        finally:
            close_old_connections()

    # Not the thread-sensitive thread: the consumer needs it to dispatch, and an event held up
    # there would pass for one held back by the transaction.
    return await sync_to_async(inside_transaction, thread_sensitive=False)()


async def test_stream_approval_sends_decision_order_fill_position_only_after_commit():
    decision = await pending_decision()
    communicator = await connect(await make_user())

    _, quiet = await run_committed(communicator, lambda: decision_approve(
        decision_id=decision.pk, actor="operator", now=NOW))

    assert quiet
    seen = await events_until(communicator, {"decision", "order", "fill", "position"})
    fill = await database_sync_to_async(Fill.objects.select_related("order").get)(order__decision=decision)
    position = await database_sync_to_async(Position.objects.get)(decision=decision)
    sent = seen["fill"][0]
    assert {key: Decimal(sent.pop(key)) for key in ("price", "quantity", "fee_usdt")} == \
        {"price": fill.price, "quantity": fill.quantity, "fee_usdt": fill.fee_usdt}
    assert sent == {"client_order_id": fill.order.client_order_id, "trade_id": fill.trade_id, "leg": "entry",
                    "side": "buy", "instrument": "binanceusdm:BTC/USDT:USDT", "liquidity": fill.liquidity,
                    "ts": fill.ts.isoformat().replace("+00:00", "Z")}
    assert seen["order"][-1]["client_order_id"] == fill.order.client_order_id
    assert seen["order"][-1]["status"] == Order.Status.FILLED
    assert seen["position"][0]["id"] == position.pk and seen["position"][0]["status"] == "open"
    assert seen["decision"][-1] == {**seen["decision"][-1], "id": decision.pk, "outcome": "executed"}
    await communicator.disconnect()


@database_sync_to_async
def market_with_real_candles() -> tuple:
    """Store warm-up plus ten real BTCUSDT 15m bars; return (instrument, paper account, last close)."""
    frame = real_frame(Path(settings.MARKET_DATA_DIR), BTC_15M_FILE, WARMUP_BARS + 10)
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    close = dt.datetime.fromtimestamp((int(frame["open_time_ms"].iloc[-1]) + 900_000) / 1000, tz=dt.UTC)
    return instrument, account_ensure(name="paper"), close


async def test_stream_decision_run_sends_decision_and_gate_verdicts_only_after_commit():
    instrument, account, close = await market_with_real_candles()
    communicator = await connect(await make_user())

    decision, quiet = await run_committed(communicator, lambda: decision_run(
        instrument=instrument, now=close, account=account))

    assert quiet
    seen = await events_until(communicator, {"decision", "gates"})
    stored = await database_sync_to_async(Decision.objects.get)(pk=decision.pk)
    gates = seen["gates"][0]
    assert (gates["decision_id"], gates["outcome"]) == (stored.pk, stored.outcome)
    assert gates["gates"] == stored.gates and gates["gates"]
    first_block = next((g["name"] for g in stored.gates if g["verdict"] == "block"), None)
    assert gates["blocked_by"] == first_block
    assert seen["decision"][0]["id"] == stored.pk
    await communicator.disconnect()


async def test_stream_equity_record_sends_equity_point_only_after_commit():
    await database_sync_to_async(TradingConfigFactory)()
    account = await database_sync_to_async(account_ensure)(name="paper")
    communicator = await connect(await make_user())

    point, quiet = await run_committed(communicator, lambda: equity_record(account=account, now=NOW))

    assert quiet
    equity = (await events_until(communicator, {"equity"}))["equity"][0]
    stored = await database_sync_to_async(EquityPoint.objects.get)(pk=point.pk)
    assert (equity["account_id"], Decimal(equity["equity_usdt"])) == (account.pk, stored.equity_usdt)
    assert equity["ts"] == "2026-11-25T14:10:00Z"
    await communicator.disconnect()


async def test_stream_rolled_back_transaction_sends_nothing():
    decision = await pending_decision()
    communicator = await connect(await make_user())

    def approve_then_roll_back():
        with transaction.atomic():
            decision_approve(decision_id=decision.pk, actor="operator", now=NOW)
            transaction.set_rollback(True)

    await sync_to_async(approve_then_roll_back)()

    assert await communicator.receive_nothing(timeout=QUIET_SECONDS)
    assert not await database_sync_to_async(Position.objects.exists)()
    await communicator.disconnect()


async def test_stream_reconnect_receives_current_state_with_position_opened_meanwhile():
    decision = await pending_decision()
    user = await make_user()
    first = await connect(user)
    await first.disconnect()

    await database_sync_to_async(decision_approve)(decision_id=decision.pk, actor="operator", now=NOW)
    again = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    again.scope["user"] = user
    assert (await again.connect())[0]
    message = await again.receive_json_from()

    position = await database_sync_to_async(Position.objects.get)(decision=decision)
    assert message["event"] == "state"
    assert message["data"]["mode"] == "HYBRID"
    assert [(p["id"], p["side"], p["entry_price"]) for p in message["data"]["positions"]] == \
        [(position.pk, "LONG", str(position.entry_price.normalize()))]
    await again.disconnect()


@pytest.mark.parametrize("role", [None, "operator", "admin"])
async def test_stream_client_command_other_than_refresh_is_refused_and_changes_nothing(role):
    decision = await pending_decision()
    communicator = await connect(await make_user("someone", role))

    await communicator.send_json_to({"type": "approve", "decision_id": decision.pk})

    reply = await communicator.receive_json_from()
    assert reply == {"event": "refused", "data": {
        "type": "approve", "reason": 'the live socket is read-only; only {"type": "refresh"} is accepted'}}
    stored = await database_sync_to_async(Decision.objects.get)(pk=decision.pk)
    assert (stored.outcome, stored.approval) == ("pending", "pending")
    await communicator.disconnect()


@pytest.mark.parametrize("frame", [{"text_data": "not json"}, {"bytes_data": b"\x00\x01"}, {"text_data": "[1, 2]"}])
async def test_stream_malformed_frame_is_refused_and_stream_goes_on(frame):
    communicator = await connect(await make_user())

    await communicator.send_to(**frame)

    assert (await communicator.receive_json_from())["event"] == "refused"
    await communicator.send_json_to({"type": "refresh"})
    assert (await communicator.receive_json_from())["event"] == "state"
    await communicator.disconnect()


async def until(check) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_state_reads_asked_during_a_read_share_the_next_read_not_the_running_one(monkeypatch):
    calls, release = [], threading.Event()

    def overview_state():
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            release.wait(5)  # the first read is slow: asks meanwhile must not get it
        return {"read": len(calls)}

    monkeypatch.setattr(selectors, "overview_state", overview_state)
    reads = StateReads()
    first = asyncio.ensure_future(reads.get())
    await until(lambda: calls)

    meanwhile = [asyncio.ensure_future(reads.get()) for _ in range(5)]
    await asyncio.sleep(0.05)
    release.set()

    assert await first == {"read": 1}
    assert [await ask for ask in meanwhile] == [{"read": 2}] * 5
    assert calls == [1, 2]


async def test_stream_many_pages_connecting_at_once_all_get_the_state_from_fewer_reads():
    await database_sync_to_async(TradingConfigFactory)(mode="ON")
    users = [await make_user(f"page{n}") for n in range(12)]
    reads = StateReads.of_loop()
    before = reads.reads

    communicators = await asyncio.gather(*(connect(user) for user in users))

    assert reads.reads - before < len(users)
    await asyncio.gather(*(c.disconnect() for c in communicators))
