"""Point-in-time loading: a row entered at K is invisible before K and after its valid_until."""
import datetime as dt
from decimal import Decimal

import pytest

from analytics.inputs import flow_inputs_load, to_ms
from analytics.models import Flow
from analytics.services import flow_run
from market.models import Candle, DerivativesSample, EtfFlow, LiquidationZone, SentimentInput
from tests.dashboard.factories import InstrumentFactory

K = dt.datetime(2024, 3, 12, 13, 30, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
pytestmark = pytest.mark.django_db


@pytest.fixture
def instrument():
    return InstrumentFactory()


def etf_flow(known_at=K, **kw):
    fields = dict(asset="BTC", fund="IBIT", date=dt.date(2024, 3, 11), net_flow_usd=Decimal("-250000000.00"),
                  known_at=known_at)
    return EtfFlow.objects.create(**(fields | kw))


def zone(instrument, known_at=K, valid_until=None):
    return LiquidationZone.objects.create(instrument=instrument, side="long", price_low=Decimal("64000"),
                                          price_high=Decimal("64500"), size_usd=Decimal("300000000"),
                                          known_at=known_at, valid_until=valid_until)


def sentiment(known_at=K, valid_until=None, score="0.600"):
    return SentimentInput.objects.create(asset="BTC", score=Decimal(score), source="desk", known_at=known_at,
                                         valid_until=valid_until)


def stored_status(instrument, as_of) -> dict:
    row = flow_run(instrument=instrument, as_of=as_of)
    return {i["name"]: i["count"] for i in row.inputs}


def test_flow_run_etf_flow_invisible_before_known_at_visible_from_it(instrument):
    etf_flow()

    assert stored_status(instrument, K - SECOND)["etf_flows"] == 0
    assert stored_status(instrument, K)["etf_flows"] == 1
    assert Flow.objects.get(as_of=K).parts["context"]["etf"]["total_1d_usd"] == -250_000_000.0


def test_flow_run_liquidation_zone_invisible_before_known_at_and_after_valid_until(instrument):
    zone(instrument, valid_until=K + dt.timedelta(hours=6))

    assert stored_status(instrument, K - SECOND)["liquidation_zones"] == 0
    assert stored_status(instrument, K)["liquidation_zones"] == 1
    assert stored_status(instrument, K + dt.timedelta(hours=6))["liquidation_zones"] == 0


def test_flow_run_sentiment_invisible_before_known_at_and_after_valid_until(instrument):
    sentiment(valid_until=K + dt.timedelta(hours=1))

    assert stored_status(instrument, K - SECOND)["sentiment"] == 0
    assert stored_status(instrument, K)["sentiment"] == 1
    assert stored_status(instrument, K + dt.timedelta(hours=1))["sentiment"] == 0


def test_flow_inputs_load_sentiment_decays_with_age(instrument):
    sentiment()

    inputs = flow_inputs_load(instrument=instrument, as_of=K + dt.timedelta(hours=24))
    row = flow_run(instrument=instrument, as_of=K + dt.timedelta(hours=24))

    assert [(p.score, p.known_at_ms) for p in inputs.sentiment] == [(0.6, to_ms(K))]
    assert row.parts["context"]["sentiment"]["score"] == pytest.approx(0.3)


def test_flow_inputs_load_other_asset_and_instrument_ignored(instrument):
    other = InstrumentFactory(symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", base="ETH")
    etf_flow(asset="ETH")
    zone(other)

    inputs = flow_inputs_load(instrument=instrument, as_of=K)

    assert (inputs.etf_flows, inputs.liquidation_zones) == ((), ())


def test_flow_inputs_load_derivatives_cut_at_as_of_and_lookback(instrument):
    for hours, rate in [(-24 * 40, "0.0009"), (-8, "0.0001"), (0, "0.0002"), (8, "0.0003")]:
        DerivativesSample.objects.create(instrument=instrument, kind="funding", period="8h",
                                         ts=K + dt.timedelta(hours=hours), funding_rate=Decimal(rate))

    inputs = flow_inputs_load(instrument=instrument, as_of=K)

    assert [(p.ts_ms, p.rate) for p in inputs.funding] == [(to_ms(K) - 8 * 3_600_000, 0.0001), (to_ms(K), 0.0002)]


def test_flow_inputs_load_open_interest_prefers_finest_period(instrument):
    for period, hours in [("1d", 0), ("4h", 0), ("4h", -4)]:
        DerivativesSample.objects.create(instrument=instrument, kind="open_interest", period=period,
                                         ts=K + dt.timedelta(hours=hours), open_interest=Decimal("100"))

    inputs = flow_inputs_load(instrument=instrument, as_of=K)

    assert len(inputs.open_interest) == 2


def test_flow_inputs_load_candle_still_forming_is_left_out(instrument):
    for minutes in (-120, -60):
        Candle.objects.create(instrument=instrument, timeframe="1h", open_time=K + dt.timedelta(minutes=minutes),
                              open=1, high=1, low=1, close=1, volume=1, taker_buy_base=Decimal("0.5"))

    inputs = flow_inputs_load(instrument=instrument, as_of=K - dt.timedelta(minutes=1))

    assert [c.close_time_ms for c in inputs.candles] == [to_ms(K - dt.timedelta(minutes=60))]


def test_flow_inputs_load_naive_as_of_raises(instrument):
    with pytest.raises(ValueError, match="aware UTC"):
        flow_inputs_load(instrument=instrument, as_of=dt.datetime(2024, 3, 12))
