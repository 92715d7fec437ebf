"""Chart page: login, the JSON of candles and overlays, and the 400s of bad requests."""
import datetime as dt
from decimal import Decimal

import factory
import numpy as np
import pytest
from django.urls import reverse

from analytics.features.fvg import fvg_series
from analytics.features.sessions import sessions
from dashboard.chart_data import MAX_BARS
from decisions.models import TradingConfig
from market.models import LiquidationZone
from tests.dashboard.factories import (
    AccountFactory,
    CandleFactory,
    DecisionFactory,
    InstrumentFactory,
    PositionFactory,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
DATA = reverse("dashboard:chart-data")


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def data(client, **params):
    return client.get(DATA, params)


@pytest.fixture
def btc():
    return InstrumentFactory()


@pytest.fixture
def hourly(btc):
    """Five 1h candles with distinct prices, 12:00 to 16:00 UTC."""
    rows = []
    for n in range(5):
        base = Decimal("65000") + 100 * n
        rows.append(CandleFactory(instrument=btc, timeframe="1h", open_time=T0 + dt.timedelta(hours=n),
                                  open=base, high=base + Decimal("150.5"), low=base - Decimal("49.9"),
                                  close=base + 80, volume=Decimal("12.25") + n))
    return rows


@pytest.fixture
def real_bars(btc_15m):
    """The btc_15m fixture's candles as the analytics read them (float64, open times in ms)."""
    instrument, frame = btc_15m
    arrays = {name: frame[name].astype(float).to_numpy() for name in ("high", "low", "close")}
    return instrument, frame, arrays


# --- login and roles -----------------------------------------------------------------------
@pytest.mark.parametrize("url", [reverse("dashboard:chart"), DATA])
def test_chart_anonymous_redirects_to_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_chart_page_viewer_sees_selectors_and_library(viewer_client, hourly, btc):
    response = viewer_client.get(reverse("dashboard:chart"))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<option value="{btc.pk}" data-symbol="BTCUSDT" data-source="replay">' in html
    assert "vendor/lightweight-charts/lightweight-charts.standalone.production.js" in html
    assert "dashboard/chart.js" in html
    assert '"timeframes": ["1h"]' in html


def test_chart_page_without_candles_says_so(viewer_client):
    response = viewer_client.get(reverse("dashboard:chart"))

    assert response.status_code == 200
    assert "No candles stored yet" in response.content.decode()


# --- candles -------------------------------------------------------------------------------
def test_chart_data_returns_exact_candles_oldest_first(viewer_client, hourly):
    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h").json()

    assert body["instrument"]["symbol"] == "BTCUSDT"
    assert body["timeframe"] == "1h" and body["timeframe_seconds"] == 3600
    assert body["candles"][0] == {"time": epoch(T0), "open": "65000", "high": "65150.5", "low": "64950.1",
                                  "close": "65080", "volume": "12.25"}
    assert body["candles"][4] == {"time": epoch(T0) + 4 * 3600, "open": "65400", "high": "65550.5",
                                  "low": "65350.1", "close": "65480", "volume": "16.25"}
    assert len(body["candles"]) == 5


def test_chart_data_bars_takes_the_newest(viewer_client, hourly):
    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h", bars=2).json()

    assert [c["time"] for c in body["candles"]] == [epoch(T0) + 3 * 3600, epoch(T0) + 4 * 3600]


def test_chart_data_range_is_start_inclusive_end_exclusive(viewer_client, hourly):
    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h", start="2024-03-01T13:00:00Z",
                end="2024-03-01T15:00").json()

    assert [c["open"] for c in body["candles"]] == ["65100", "65200"]


def test_chart_data_end_only_takes_the_newest_before_it(viewer_client, hourly):
    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h", end="2024-03-01T14:00", bars=1).json()

    assert [c["open"] for c in body["candles"]] == ["65100"]


def test_chart_data_default_shows_500_newest_real_bars(viewer_client, btc_15m):
    instrument, frame = btc_15m
    CandleFactory.create_batch(150, instrument=instrument, timeframe="15m", open_time=factory_times(frame, 150))

    body = data(viewer_client, symbol="BTCUSDT", timeframe="15m").json()

    assert len(body["candles"]) == 500
    assert body["candles"][-1]["time"] == int(frame["open_time_ms"].iloc[-1]) // 1000 + 150 * 900


def factory_times(frame, count: int):
    """Open times of `count` bars after the frame's last, for CandleFactory batches."""
    last = dt.datetime.fromtimestamp(int(frame["open_time_ms"].iloc[-1]) / 1000, tz=dt.UTC)
    return factory.Iterator([last + dt.timedelta(minutes=15 * (n + 1)) for n in range(count)])


def test_chart_data_source_picks_among_same_symbol(viewer_client, hourly):
    exchange = InstrumentFactory(data_source="exchange", is_active=False)
    CandleFactory(instrument=exchange, timeframe="1h", open_time=T0, open=Decimal("1"), high=Decimal("2"),
                  low=Decimal("1"), close=Decimal("2"))

    replay = data(viewer_client, symbol="BTCUSDT", timeframe="1h").json()
    chosen = data(viewer_client, symbol="btc/usdt:usdt", source="exchange", timeframe="1h").json()

    assert replay["instrument"]["source"] == "replay" and len(replay["candles"]) == 5
    assert chosen["instrument"]["source"] == "exchange" and chosen["candles"][0]["open"] == "1"


def test_chart_data_without_timeframe_uses_the_decision_timeframe(viewer_client, hourly, btc):
    TradingConfig.objects.create(decision_timeframe="1h")
    CandleFactory(instrument=btc, timeframe="15m", open_time=T0)

    body = data(viewer_client).json()

    assert body["instrument"]["id"] == btc.pk and body["timeframe"] == "1h"


# --- overlays ------------------------------------------------------------------------------
def test_chart_fvg_overlay_equals_the_analytics_function(viewer_client, real_bars):
    instrument, frame, bars = real_bars
    TradingConfig.objects.create(atr_period=10)

    body = data(viewer_client, symbol="BTCUSDT", timeframe="15m").json()

    gaps = fvg_series(bars["high"], bars["low"], bars["close"], 10, 50)
    times = (frame["open_time_ms"].to_numpy() // 1000).tolist()
    formed = np.flatnonzero(gaps.gap)
    assert len(formed) > 5, "the real day must hold some gaps for this test to mean anything"
    assert [(g["time"], g["direction"], g["bottom"], g["top"]) for g in body["fvg"]["formed"]] == [
        (times[i], "bullish" if gaps.gap[i] > 0 else "bearish", gaps.gap_bottom[i], gaps.gap_top[i]) for i in formed]
    assert [g["size_atr"] for g in body["fvg"]["formed"]] == [
        None if np.isnan(gaps.gap_size_atr[i]) else gaps.gap_size_atr[i] for i in formed]
    for side in ("below", "above"):
        assert_runs_cover(body["fvg"]["nearest"], side, times, gaps)
    assert body["fvg"]["open_below"] == gaps.open_below[-1] and body["fvg"]["open_above"] == gaps.open_above[-1]


def assert_runs_cover(runs, side, times, gaps):
    """Expand the runs of one side back to per-bar values and compare them with fvg_series."""
    bottom, top = np.full(len(times), np.nan), np.full(len(times), np.nan)
    age = np.full(len(times), -1)
    index = {t: i for i, t in enumerate(times)}
    for run in (r for r in runs if r["side"] == side):
        for i in range(index[run["from"]], index[run["to"]] + 1):
            bottom[i], top[i], age[i] = run["bottom"], run["top"], i - index[run["formed"]]
    np.testing.assert_array_equal(bottom, getattr(gaps, f"{side}_bottom"))
    np.testing.assert_array_equal(top, getattr(gaps, f"{side}_top"))
    np.testing.assert_array_equal(age, getattr(gaps, f"{side}_age"))


def test_chart_sessions_follow_the_analytics_definition(viewer_client, real_bars):
    instrument, frame, bars = real_bars

    body = data(viewer_client, symbol="BTCUSDT", timeframe="15m").json()

    # 2025-07-05 (a full day inside the fixture): Asia 00:00-08:00, London 07:00-16:00, New York 13:30-20:00.
    day = epoch(dt.datetime(2025, 7, 5, tzinfo=dt.UTC))
    of_day = {s["name"]: s for s in body["sessions"] if day <= s["from"] < day + 86400}
    assert {n: (s["label"], s["from"] - day, s["to"] - day) for n, s in of_day.items()} == {
        "asia": ("Asia", 0, 8 * 3600), "eu": ("London", 7 * 3600, 16 * 3600),
        "us": ("New York", 13 * 3600 + 1800, 20 * 3600)}
    ms = frame["open_time_ms"].to_numpy()
    asia = (ms >= day * 1000) & (ms < (day + 8 * 3600) * 1000)
    assert of_day["asia"]["high"] == bars["high"][asia].max() and of_day["asia"]["low"] == bars["low"][asia].min()
    series = sessions(ms, bars["high"], bars["low"])
    last_us = np.flatnonzero((ms >= (day + 13 * 3600 + 1800) * 1000) & (ms < (day + 20 * 3600) * 1000))[-1]
    assert of_day["us"]["high"] == series.high[last_us, 2]


def test_chart_sessions_are_left_out_above_one_hour(viewer_client, btc):
    CandleFactory.create_batch(3, instrument=btc, timeframe="4h",
                               open_time=factory.Iterator([T0 + dt.timedelta(hours=4 * n) for n in range(3)]))

    body = data(viewer_client, symbol="BTCUSDT", timeframe="4h").json()

    assert len(body["candles"]) == 3 and body["sessions"] == []


def test_chart_liquidation_zones_overlapping_the_span_only(viewer_client, hourly, btc):
    kept = LiquidationZone.objects.create(instrument=btc, side="long", price_low=Decimal("64500.5"),
                                          price_high=Decimal("64700"), size_usd=Decimal("12500000.00"),
                                          known_at=T0 - dt.timedelta(days=1), source="coinglass")
    ending = LiquidationZone.objects.create(instrument=btc, side="short", price_low=Decimal("66000"),
                                            price_high=Decimal("66250"), size_usd=Decimal("800000"),
                                            known_at=T0 - dt.timedelta(days=2), valid_until=T0 + dt.timedelta(hours=1))
    LiquidationZone.objects.create(instrument=btc, side="long", price_low=1, price_high=2, size_usd=1,
                                   known_at=T0 - dt.timedelta(days=3), valid_until=T0)      # over before the span
    LiquidationZone.objects.create(instrument=btc, side="long", price_low=1, price_high=2, size_usd=1,
                                   known_at=T0 + dt.timedelta(hours=5))                       # after the span

    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h").json()

    assert body["liquidation_zones"] == [
        {"id": kept.pk, "side": "long", "price_low": "64500.5", "price_high": "64700", "size_usd": "12500000",
         "known_at": epoch(T0) - 86400, "valid_until": None, "source": "coinglass"},
        {"id": ending.pk, "side": "short", "price_low": "66000", "price_high": "66250", "size_usd": "800000",
         "known_at": epoch(T0) - 2 * 86400, "valid_until": epoch(T0) + 3600, "source": ""},
    ]


def test_chart_trades_carry_entry_stops_targets_and_exit(viewer_client, hourly, btc):
    decision = DecisionFactory(instrument=btc, stop_price=Decimal("64700"), take_profits=[
        {"price": "65300", "share": "0.5"}, {"price": "65600", "share": "0.5"}])
    closed = PositionFactory(instrument=btc, decision=decision, status="closed", open_key=None,
                             opened_at=T0 + dt.timedelta(hours=1), closed_at=T0 + dt.timedelta(hours=3),
                             entry_price=Decimal("65100.0"), stop_price=Decimal("65100"), exit_price=Decimal("65600"),
                             exit_reason="tp", initial_quantity=Decimal("0.020"), quantity=Decimal("0"),
                             realized_pnl_usdt=Decimal("9.5"),
                             take_profits=[{"price": "65300", "share": "0.5", "filled": True},
                                           {"price": "65600", "share": "0.5", "filled": True}])
    still_open = PositionFactory(instrument=btc, account=AccountFactory(name="replay"), side="SHORT",
                                 opened_at=T0 + dt.timedelta(hours=4), entry_price=Decimal("65450"),
                                 stop_price=Decimal("65700"), target_price=Decimal("65000"))
    PositionFactory(instrument=btc, status="closed", open_key=None, opened_at=T0 - dt.timedelta(days=2),
                    closed_at=T0 - dt.timedelta(days=1))                                     # before the span

    trades = data(viewer_client, symbol="BTCUSDT", timeframe="1h").json()["trades"]

    assert trades == [
        {"id": closed.pk, "account": "paper", "side": "LONG", "status": "closed", "opened_at": epoch(T0) + 3600,
         "closed_at": epoch(T0) + 3 * 3600, "entry_price": "65100", "exit_price": "65600", "exit_reason": "tp",
         "quantity": "0.02", "stop_price": "65100", "initial_stop_price": "64700",
         "take_profits": [{"label": "TP1", "price": "65300", "share": "0.5", "filled": True},
                          {"label": "TP2", "price": "65600", "share": "0.5", "filled": True}],
         "realized_pnl_usdt": "9.5", "decision_id": decision.pk},
        {"id": still_open.pk, "account": "replay", "side": "SHORT", "status": "open", "opened_at": epoch(T0) + 4 * 3600,
         "closed_at": None, "entry_price": "65450", "exit_price": None, "exit_reason": "", "quantity": "0.015",
         "stop_price": "65700", "initial_stop_price": None,
         "take_profits": [{"label": "TP1", "price": "65000", "share": "1", "filled": False}],
         "realized_pnl_usdt": "0", "decision_id": None},
    ]


# --- bad requests --------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"symbol": "DOGEUSDT", "timeframe": "1h"}, "symbol: unknown symbol 'DOGEUSDT'; known: BTCUSDT"),
    ({"symbol": "BTCUSDT", "source": "exchange"}, "symbol: unknown symbol 'BTCUSDT' with data source 'exchange'"),
    ({"symbol": "BTCUSDT", "source": "mars"}, "source: unknown data source mars"),
    ({"symbol": "BTCUSDT", "timeframe": "7m"}, "timeframe: unknown timeframe '7m'; expected one of 1m, 3m"),
    ({"symbol": "BTCUSDT", "timeframe": "4h"}, "timeframe: no 4h candles stored for BTCUSDT (replay); stored: 1h"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "start": "2024-03-02", "end": "2024-03-01"},
     "start: start must be before end"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "start": "yesterday"}, "start: not an ISO 8601 date and time"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "bars": str(MAX_BARS + 1)}, "bars: must be between 1 and 5000, got 5001"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "bars": "0"}, "bars: must be between 1 and 5000, got 0"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "bars": "many"}, "bars: must be a whole number"),
    ({"symbol": "BTCUSDT", "timeframe": "1h", "start": "2024-03-01", "bars": "3"},
     "bars: the range holds more than 3 1h bars; narrow it or choose a longer timeframe (at most 5000 bars)"),
])
def test_chart_data_bad_parameter_is_400_with_message(viewer_client, hourly, params, message):
    response = data(viewer_client, **params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    field = message.split(":")[0]
    assert field in response.json()["errors"]


def test_chart_data_range_within_the_cap_is_served(viewer_client, hourly):
    body = data(viewer_client, symbol="BTCUSDT", timeframe="1h", start="2024-03-01", bars="5").json()

    assert len(body["candles"]) == 5


def test_chart_data_empty_range_has_no_candles_and_no_overlays(viewer_client, hourly):
    response = data(viewer_client, symbol="BTCUSDT", timeframe="1h", start="2024-04-01", end="2024-04-02")

    body = response.json()
    assert response.status_code == 200
    assert body["candles"] == [] and body["sessions"] == [] and body["trades"] == []
    assert body["fvg"]["formed"] == [] and body["fvg"]["nearest"] == [] and body["fvg"]["open_below"] == 0
