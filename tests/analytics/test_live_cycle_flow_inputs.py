"""The flow's inputs in one read equal a plain read of each source, and an upload or edit shows in the next cycle."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db.models import Q

from analytics.flow import DEFAULT_PARAMS
from analytics.flow.types import (
    BasisPoint, CandlePoint, CvdPoint, EtfFlowPoint, FundingPoint, LiquidationZonePoint, OpenInterestPoint,
    SentimentPoint,
)
from analytics.inputs import flow_inputs_load, to_ms
from analytics.services import flow_run
from market.models import Candle, DerivativesSample, EtfFlow, LiquidationZone, SentimentInput
from market.services import instrument_ensure
from market.timeframes import TIMEFRAME_MS

pytestmark = pytest.mark.django_db
AS_OF = datetime(2025, 7, 9, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
P = DEFAULT_PARAMS


@pytest.fixture
def btc():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


@pytest.fixture
def eth():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")


def _market(instrument, scale: D):
    """Store two days of derivatives (two OI periods) and 15m candles with decimals of every width."""
    samples = []
    for k in range(48 * 4):
        ts = AS_OF - k * timedelta(minutes=15)
        samples.append(DerivativesSample(instrument=instrument, kind="open_interest", period="5m", ts=ts,
                                         open_interest=scale * (D("81234.123456789") + k),
                                         open_interest_value=scale * D("7012345678.0123456789")))
        samples.append(DerivativesSample(instrument=instrument, kind="cvd", period="15m", ts=ts,
                                         cvd=scale * D("-1234.5678901234") + k))
        if k % 4 == 0:
            samples.append(DerivativesSample(instrument=instrument, kind="open_interest", period="1h", ts=ts,
                                             open_interest=scale * D("80000.5")))
            samples.append(DerivativesSample(instrument=instrument, kind="mark_index", period="1h", ts=ts,
                                             mark_price=scale * D("108123.45"), index_price=scale * D("108100.1")))
        if k % 32 == 0:
            samples.append(DerivativesSample(instrument=instrument, kind="funding", period="8h", ts=ts,
                                             funding_rate=D("0.0001234567") - D("0.0000001") * k))
    DerivativesSample.objects.bulk_create(samples)
    Candle.objects.bulk_create([
        Candle(instrument=instrument, timeframe="15m", open_time=AS_OF - (k + 1) * timedelta(minutes=15),
               open=scale * 100, high=scale * 101, low=scale * 99, close=scale * (D("108000.1") + k),
               volume=scale * D("1234567.1234567891"), quote_volume=D("1"),
               taker_buy_base=None if k == 3 else scale * D("600.25"))
        for k in range(3 * 24 * 4)])


def _manual(instrument, asset: str):
    """Store ETF flows (one revised), liquidation zones (two known together at one price) and sentiment."""
    EtfFlow.objects.create(asset=asset, fund="IBIT", date=date(2025, 7, 8), net_flow_usd=D("-250000000.25"),
                           known_at=AS_OF - 20 * HOUR, valid_until=AS_OF - 2 * HOUR)
    EtfFlow.objects.create(asset=asset, fund="IBIT", date=date(2025, 7, 8), net_flow_usd=D("-240000000.75"),
                           known_at=AS_OF - 2 * HOUR)
    EtfFlow.objects.create(asset=asset, fund="FBTC", date=date(2025, 7, 8), net_flow_usd=D("12.5"),
                           known_at=AS_OF - 3 * HOUR)
    for side, size in (("short", D("300000000.5")), ("long", D("120000000"))):
        LiquidationZone.objects.create(instrument=instrument, side=side, price_low=D("104000.1234567891"),
                                       price_high=D("104500"), size_usd=size, known_at=AS_OF - 5 * HOUR,
                                       valid_until=AS_OF + 5 * HOUR)
    LiquidationZone.objects.create(instrument=instrument, side="long", price_low=D("99000"), price_high=D("99500"),
                                   size_usd=D("1"), known_at=AS_OF - 4 * HOUR)
    SentimentInput.objects.create(asset=asset, score=D("0.612"), source="desk", known_at=AS_OF - HOUR)
    SentimentInput.objects.create(asset=asset, score=D("-0.305"), source="news", known_at=AS_OF - HOUR,
                                  valid_until=AS_OF + HOUR)


def _finest(rows):
    periods = {r.period for r in rows}
    best = min(periods, key=lambda p: TIMEFRAME_MS.get(p, float("inf"))) if periods else None
    return [r for r in rows if r.period == best]


def _reference(instrument, as_of, timeframe="15m"):
    """Return the inputs read source by source with plain ORM queries, as the flow read them before."""
    hour = HOUR
    oi_window = max((*P.oi_windows_ms, P.oi_trend_window_ms, P.oi_spike_window_ms))
    lookbacks = {"funding": timedelta(milliseconds=P.funding_z_window_ms + P.max_age("funding")) + hour,
                 "open_interest": timedelta(milliseconds=oi_window * (1 + P.oi_window_tolerance)
                                            + P.max_age("open_interest")),
                 "mark_index": timedelta(milliseconds=P.max_age("basis")),
                 "cvd": timedelta(milliseconds=P.cvd_window_ms + P.max_age("cvd")) + hour}
    first = {"funding": "funding_rate", "open_interest": "open_interest", "mark_index": "mark_price", "cvd": "cvd"}
    samples = {kind: _finest(list(DerivativesSample.objects.filter(
        instrument=instrument, kind=kind, ts__lte=as_of, ts__gt=as_of - lookbacks[kind],
        **{f"{first[kind]}__isnull": False}).order_by("ts"))) for kind in lookbacks}
    step = timedelta(milliseconds=TIMEFRAME_MS[timeframe])
    lookback = timedelta(milliseconds=P.cvd_window_ms + P.max_age("candles")) + 2 * step
    candles = Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__lte=as_of - step,
                                    open_time__gt=as_of - lookback).order_by("open_time")
    manual_since = as_of - timedelta(milliseconds=P.manual_lookback_ms)
    valid = Q(known_at__lte=as_of) & (Q(valid_until__gt=as_of)
                                      | Q(valid_until__isnull=True, known_at__gte=manual_since))
    etf = (EtfFlow.objects.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=as_of), asset=instrument.base,
                                  known_at__lte=as_of, date__gte=manual_since.date())
           .order_by("date", "fund", "known_at"))
    zones = LiquidationZone.objects.filter(valid, instrument=instrument).order_by("known_at", "price_low", "id")
    moods = (SentimentInput.objects.filter(valid, Q(superseded_at__isnull=True) | Q(superseded_at__gt=as_of),
                                           asset=instrument.base).order_by("known_at", "id"))
    ms = to_ms
    return {
        "funding": tuple(FundingPoint(ms(s.ts), float(s.funding_rate)) for s in samples["funding"]),
        "open_interest": tuple(OpenInterestPoint(ms(s.ts), float(s.open_interest),
                                                 None if s.open_interest_value is None else
                                                 float(s.open_interest_value)) for s in samples["open_interest"]),
        "basis": tuple(BasisPoint(ms(s.ts), float(s.mark_price), float(s.index_price))
                       for s in samples["mark_index"] if s.index_price is not None),
        "cvd": tuple(CvdPoint(ms(s.ts), float(s.cvd)) for s in samples["cvd"]),
        "candles": tuple(CandlePoint(ms(c.open_time), ms(c.open_time + step), float(c.close), float(c.volume),
                                     None if c.taker_buy_base is None else float(c.taker_buy_base))
                         for c in candles),
        "etf_flows": tuple(EtfFlowPoint(e.date, e.fund, float(e.net_flow_usd), ms(e.known_at)) for e in etf),
        "liquidation_zones": tuple(LiquidationZonePoint(z.side, float(z.price_low), float(z.price_high),
                                                        float(z.size_usd), ms(z.known_at), ms(z.valid_until))
                                   for z in zones),
        "sentiment": tuple(SentimentPoint(float(s.score), s.source, ms(s.known_at), ms(s.valid_until))
                           for s in moods),
    }


def _loaded(instrument, as_of, timeframe="15m"):
    inputs = flow_inputs_load(instrument=instrument, as_of=as_of, candle_timeframe=timeframe)
    return {name: getattr(inputs, name) for name in ("funding", "open_interest", "basis", "cvd", "candles",
                                                     "etf_flows", "liquidation_zones", "sentiment")}


@pytest.mark.parametrize("hours_back", [0, 3, 30, 24 * 30])
def test_flow_inputs_load_equals_a_plain_read_of_each_source(btc, eth, hours_back):
    _market(btc, D(1))
    _market(eth, D("0.037"))
    _manual(btc, "BTC")
    _manual(eth, "ETH")
    as_of = AS_OF - hours_back * HOUR

    for instrument in (btc, eth):
        loaded = _loaded(instrument, as_of)

        assert loaded == _reference(instrument, as_of), instrument
    assert _loaded(btc, AS_OF)["open_interest"] and _loaded(btc, AS_OF)["liquidation_zones"]


def test_flow_inputs_load_without_data_is_empty(btc):
    loaded = _loaded(btc, AS_OF)

    assert loaded == _reference(btc, AS_OF)
    assert all(series == () for series in loaded.values())


def test_flow_inputs_load_sees_uploads_and_edits_in_the_next_cycle(btc):
    _market(btc, D(1))
    _manual(btc, "BTC")
    before = _loaded(btc, AS_OF)

    later = SentimentInput.objects.create(asset="BTC", score=D("0.100"), source="whale", known_at=AS_OF)
    SentimentInput.objects.filter(source="desk").update(superseded_at=AS_OF - timedelta(minutes=1))
    LiquidationZone.objects.filter(price_low=D("99000")).update(valid_until=AS_OF - timedelta(minutes=1))
    EtfFlow.objects.create(asset="BTC", fund="ARKB", date=date(2025, 7, 9), net_flow_usd=D("5"), known_at=AS_OF)
    Candle.objects.filter(instrument=btc, open_time=AS_OF - timedelta(minutes=15)).update(close=D("1.5"))
    after = _loaded(btc, AS_OF)

    assert after == _reference(btc, AS_OF)
    assert [s.source for s in after["sentiment"]] == ["news", later.source]
    assert len(after["liquidation_zones"]) == len(before["liquidation_zones"]) - 1
    assert {e.fund for e in after["etf_flows"]} == {"IBIT", "FBTC", "ARKB"}
    assert after["candles"][-1].close == 1.5


def test_flow_inputs_load_is_one_query(btc, django_assert_num_queries):
    _market(btc, D(1))
    _manual(btc, "BTC")
    flow_inputs_load(instrument=btc, as_of=AS_OF - HOUR, candle_timeframe="15m")  # the shape, compiled once

    with django_assert_num_queries(1):
        inputs = flow_inputs_load(instrument=btc, as_of=AS_OF, candle_timeframe="15m")

    assert inputs.candles and inputs.funding and inputs.sentiment


def test_flow_run_is_the_read_and_the_write(btc, django_assert_num_queries):
    _market(btc, D(1))
    flow_run(instrument=btc, as_of=AS_OF - HOUR, candle_timeframe="15m")

    with django_assert_num_queries(2):
        flow = flow_run(instrument=btc, as_of=AS_OF, candle_timeframe="15m")

    assert flow.as_of == AS_OF


@pytest.mark.parametrize(("table", "columns"), [
    # Each derivatives kind's look-back is a range of ts (the unique key puts the period before ts).
    ("market_derivativessample", ["instrument_id", "kind", "ts"]),
    # Zones and readings valid at as_of: valid_until later, or none and known inside the look-back.
    ("market_liquidationzone", ["instrument_id", "valid_until", "known_at"]),
    ("market_sentimentinput", ["asset", "valid_until", "known_at"]),
])
def test_flow_inputs_read_has_its_indexes(table, columns):
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)

    assert any(c["index"] and c["columns"] == columns for c in constraints.values()), constraints
