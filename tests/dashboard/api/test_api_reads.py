"""Read endpoints: what each returns (money as exact text, UTC times), filtering, ordering and pagination."""
import datetime as dt
from decimal import Decimal

import pytest

from decisions.models import Decision
from execution.models import Position
from tests.dashboard.api.world import MINUTE, world_build
from tests.dashboard.factories import CandleFactory, DecisionFactory, InstrumentFactory, T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return world_build()


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_candles_are_oldest_first_with_prices_as_exact_text(world, viewer_api):
    rows = results(viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m"}))

    assert [r["open_time"] for r in rows] == [f"2024-03-01T12:0{n}:00Z" for n in range(5)]
    assert rows[0] | {"open_time": None} == {
        "open_time": None, "open": "65000", "high": "65100", "low": "64900", "close": "65050", "volume": "12.5",
        "quote_volume": None, "trades": None, "taker_buy_base": None, "taker_buy_quote": None}


def test_candles_without_symbol_and_timeframe_is_400_naming_both(world, viewer_api):
    response = viewer_api.get("/api/candles/")

    assert response.status_code == 400
    assert response.json() == {"symbol": ["This field is required."], "timeframe": ["This field is required."]}


def test_candles_bad_timeframe_and_time_are_400(world, viewer_api):
    response = viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "7m", "start": "yesterday"})

    assert response.status_code == 400
    assert set(response.json()) == {"timeframe", "start"}
    assert "7m is not one of the available choices" in response.json()["timeframe"][0]


def test_candles_range_and_ccxt_symbol_and_descending_order(world, viewer_api):
    params = {"symbol": "btc/usdt:usdt", "timeframe": "1m", "start": "2024-03-01T12:01:00Z",
              "end": "2024-03-01T12:03:00Z", "ordering": "-open_time"}

    rows = results(viewer_api.get("/api/candles/", params))

    assert [r["open_time"][11:16] for r in rows] == ["12:03", "12:02", "12:01"]


def test_candles_symbol_of_two_sources_reads_one_series(world, viewer_api):
    replay = InstrumentFactory(data_source="replay", is_active=False)
    CandleFactory(instrument=replay, timeframe="1m", open_time=T0 + 10 * MINUTE, close=Decimal("1"))

    active = results(viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m"}))
    replayed = results(viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m",
                                                        "data_source": "replay"}))

    assert len(active) == 5 and {r["close"] for r in active} == {"65050"}
    assert [r["close"] for r in replayed] == ["1"]


def test_candles_unknown_symbol_is_an_empty_page(world, viewer_api):
    assert results(viewer_api.get("/api/candles/", {"symbol": "DOGEUSDT", "timeframe": "1m"})) == []


def test_candles_page_size_is_bounded(world, viewer_api):
    response = viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m", "limit": 100000})

    assert response.status_code == 200
    assert response.json()["count"] == 5  # the ceiling (5000) caps the page, not the count


def test_list_pagination_limit_offset_and_links(world, viewer_api):
    for n in range(1, 5):
        DecisionFactory(instrument=world.instrument, as_of=T0 + n * MINUTE, outcome="flat", action="FLAT")

    first = viewer_api.get("/api/decisions/", {"limit": 2}).json()
    second = viewer_api.get("/api/decisions/", {"limit": 2, "offset": 2}).json()

    assert first["count"] == 5
    assert [r["as_of"][11:16] for r in first["results"]] == ["12:04", "12:03"]
    assert [r["as_of"][11:16] for r in second["results"]] == ["12:02", "12:01"]
    assert "limit=2" in first["next"] and "offset=2" in first["next"] and first["previous"] is None


def test_list_limit_above_the_ceiling_returns_at_most_1000(world, viewer_api):
    Decision.objects.bulk_create([Decision(instrument=world.instrument, timeframe="1m", as_of=T0 + n * MINUTE,
                                           action="FLAT", mode="SAFE", outcome="flat", reason="no signal")
                                  for n in range(1, 1005)])

    page = viewer_api.get("/api/decisions/", {"limit": 5000}).json()

    assert page["count"] == 1005 and len(page["results"]) == 1000


def test_decisions_filter_by_outcome_action_symbol_and_range(world, viewer_api):
    other = InstrumentFactory(symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT")
    DecisionFactory(instrument=world.instrument, as_of=T0 + 5 * MINUTE, outcome="blocked", action="SHORT")
    DecisionFactory(instrument=world.instrument, as_of=T0 + 9 * MINUTE, outcome="blocked", action="LONG")
    DecisionFactory(instrument=other, as_of=T0 + 5 * MINUTE, outcome="blocked", action="SHORT")

    def ids(**params):
        return [(r["symbol"], r["as_of"][11:16]) for r in results(viewer_api.get("/api/decisions/", params))]

    assert ids(outcome="blocked", action="SHORT", symbol="BTCUSDT") == [("BTCUSDT", "12:05")]
    assert ids(outcome="blocked", instrument=other.pk) == [("ETHUSDT", "12:05")]
    assert ids(start="2024-03-01T12:06:00Z") == [("BTCUSDT", "12:09")]
    assert ids(end="2024-03-01T12:00:00Z") == [("BTCUSDT", "12:00")]


def test_decisions_filter_bad_values_are_400_naming_the_parameter(world, viewer_api):
    response = viewer_api.get("/api/decisions/", {"outcome": "won", "instrument": 999999, "end": "soon"})

    assert response.status_code == 400
    assert set(response.json()) == {"outcome", "instrument", "end"}


def test_decision_list_has_rationale_and_detail_adds_gates_and_score_parts(world, viewer_api):
    listed = results(viewer_api.get("/api/decisions/"))[0]
    detail = viewer_api.get(f"/api/decisions/{world.decision.pk}/").json()

    assert listed["rationale"] == ["trend: up on 5m"] and "gates" not in listed
    assert (listed["entry_price"], listed["stop_price"], listed["quantity"]) == ("65050", "64800.5", "0.015")
    assert detail["gates"] == [{"name": "daily_loss", "passed": True, "reason": "0.1% lost"}]
    assert "score_parts" in detail and detail["as_of"] == "2024-03-01T12:00:00Z"


def test_orders_filter_by_state_instrument_and_account(world, viewer_api):
    def count(**params):
        return len(results(viewer_api.get("/api/orders/", params)))

    assert count(state="filled", instrument=world.instrument.pk, account=world.account.pk) == 1
    assert count(state="canceled") == 0
    assert viewer_api.get("/api/orders/", {"state": "done"}).status_code == 400


def test_order_and_fill_money_is_exact_text(world, viewer_api):
    order = viewer_api.get(f"/api/orders/{world.order.pk}/").json()
    fill = results(viewer_api.get("/api/fills/", {"account": world.account.pk}))[0]

    assert (order["average_price"], order["quantity"], order["status"]) == ("65050.5", "0.015", "filled")
    assert (fill["price"], fill["fee_usdt"], fill["ts"]) == ("65050.5", "0.390303", "2024-03-01T12:00:00Z")


def test_positions_open_and_closed(world, viewer_api):
    Position.objects.create(account=world.account, instrument=world.instrument, side="SHORT", status="closed",
                            quantity=0, entry_price=Decimal("66000"), stop_price=Decimal("66300"),
                            target_price=Decimal("65400"), opened_at=T0 - dt.timedelta(hours=2),
                            closed_at=T0 - dt.timedelta(hours=1), exit_price=Decimal("65400"),
                            realized_pnl_usdt=Decimal("8.91"))

    opened = results(viewer_api.get("/api/positions/", {"status": "open"}))
    closed = results(viewer_api.get("/api/positions/", {"status": "closed"}))

    assert [(p["side"], p["symbol"], p["entry_price"]) for p in opened] == [("LONG", "BTCUSDT", "65000")]
    assert [(p["side"], p["realized_pnl_usdt"]) for p in closed] == [("SHORT", "8.91")]


def test_backtest_list_has_metrics_and_detail_has_trades_and_equity(world, viewer_api):
    listed = results(viewer_api.get("/api/backtests/", {"status": "done"}))[0]
    detail = viewer_api.get(f"/api/backtests/{world.backtest.pk}/").json()

    assert listed["metrics"] == {"trades": 1, "profit_factor": 2.0} and listed["final_equity_usdt"] == "10123.45"
    assert "trades" not in listed and "equity" not in listed
    assert detail["trades"] == [{"entry": "65000", "exit": "65500", "r": 1.2}]
    assert detail["equity"] == [[1709294400000, "10000"]]
    assert detail["drawdown"] == [[1709294400000, "0.00000000"]]


def test_backtest_detail_drawdown_is_each_points_fall_below_the_running_peak(world, viewer_api):
    run = world.backtest
    # From 10000: up to 10400 (a peak), down to 9880 (520 below it), back up to 10140, a new peak 10500.
    run.equity = [[1000, "10400"], [2000, "9880"], [3000, "10140"], [4000, "10500"]]
    run.save(update_fields=["equity"])

    detail = viewer_api.get(f"/api/backtests/{run.pk}/").json()

    # 520 / 10400 = 0.05, 260 / 10400 = 0.025
    assert detail["drawdown"] == [[1000, "0.00000000"], [2000, "0.05000000"], [3000, "0.02500000"], [4000, "0.00000000"]]


def test_market_and_analytics_lists_filter_by_symbol(world, viewer_api):
    assert len(results(viewer_api.get("/api/derivatives/", {"symbol": "BTCUSDT", "kind": "funding"}))) == 1
    assert results(viewer_api.get("/api/derivatives/", {"symbol": "ETHUSDT"})) == []
    assert results(viewer_api.get("/api/snapshots/", {"symbol": "BTCUSDT", "timeframe": "5m"}))[0]["trend"] == "up"
    assert results(viewer_api.get("/api/flows/", {"symbol": "BTCUSDT"}))[0]["crowd_bias"] == 0.2
    assert [i["exchange_symbol"] for i in results(viewer_api.get("/api/instruments/", {"is_active": "true"}))] == [
        "BTCUSDT"]


def test_unknown_id_is_404(world, viewer_api):
    assert viewer_api.get("/api/decisions/999999/").status_code == 404
    assert viewer_api.get("/api/decisions/abc/").status_code == 404


def test_control_state_shows_mode_pause_and_broker(world, viewer_api):
    assert viewer_api.get("/api/control/").json() == {
        "mode": "SAFE", "configured_mode": "SAFE", "breaker_until": None, "paused": False, "broker": "paper",
        "config_version": 1}


def test_health_returns_each_check_with_its_verdict(world, viewer_api):
    body = viewer_api.get("/api/health/").json()

    database = next(c for c in body["checks"] if c["group"] == "database")
    assert database["ok"] is True and body["failing"] == len(body["failing_names"])
