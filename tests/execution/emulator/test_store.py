"""The whole account survives a restart: state is saved atomically after every change."""
import json
from decimal import Decimal as D
from pathlib import Path

from django.conf import settings

from execution.emulator import Emulator
from execution.emulator.state import AccountState, from_jsonable, to_jsonable
from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"


def test_restart_keeps_orders_positions_balance_and_settings(trading_emulator, usdm, emulator_state_file):
    usdm.set_leverage(8, BTC)
    usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "before-crash"})
    resting = usdm.create_order(BTC, "limit", "buy", 0.01, 58000)
    stop = usdm.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})
    wallet = usdm.fetch_balance()["info"]["totalWalletBalance"]
    trading_emulator.stop()

    with Emulator(Path(settings.MARKET_DATA_DIR), state_file=emulator_state_file) as restarted:
        client = usdm_client(restarted)

        assert client.fetch_balance()["info"]["totalWalletBalance"] == wallet
        assert client.fetch_positions([BTC])[0]["contracts"] == 0.01
        assert [o["id"] for o in client.fetch_open_orders(BTC)] == [resting["id"]]
        assert [o["id"] for o in client.fetch_open_orders(BTC, params={"trigger": True})] == [stop["id"]]
        assert client.fetch_order(None, BTC, params={"clientOrderId": "before-crash"})["status"] == "closed"
        assert restarted.venue.leverage("BTCUSDT") == 8
        restarted.set_price("BTCUSDT", D("58900"))  # the reloaded stop still fires
        assert client.fetch_positions([BTC]) == []


def test_restart_keeps_client_id_uniqueness(trading_emulator, usdm, emulator_state_file):
    usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "once"})
    trading_emulator.stop()

    with Emulator(state_file=emulator_state_file) as restarted:
        restarted.set_price("BTCUSDT", D("60000"))
        orders = restarted.venue.state.orders.values()

        assert [o.client_order_id for o in orders] == ["once"]


def test_save_is_atomic_and_leaves_no_temp_file(trading_emulator, usdm, emulator_state_file):
    usdm.create_order(BTC, "market", "buy", 0.01)

    saved = json.loads(emulator_state_file.read_text())

    assert saved["version"] == 1 and saved["account"]["positions"]["BTCUSDT:BOTH"]["amount"] == "0.01"
    assert list(emulator_state_file.parent.glob("*.tmp")) == []


def test_state_round_trips_through_json(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    state = trading_emulator.venue.state

    restored = from_jsonable(AccountState, json.loads(json.dumps(to_jsonable(state))))

    assert restored == state
