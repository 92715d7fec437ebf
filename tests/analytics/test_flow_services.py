import datetime as dt
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings

from analytics import services
from analytics.flow import build_flow
from analytics.inputs import flow_inputs_load
from analytics.models import Flow
from analytics.services import flow_record, flow_run
from market.importer import market_file_import
from market.models import DerivativesSample, Instrument, SentimentInput
from tests.dashboard.factories import InstrumentFactory

K = dt.datetime(2024, 3, 12, 13, 30, tzinfo=dt.UTC)
pytestmark = pytest.mark.django_db


def add_funding(instrument, rates, end=K):
    for i, rate in enumerate(rates):
        DerivativesSample.objects.create(instrument=instrument, kind="funding", period="8h",
                                         ts=end - dt.timedelta(hours=8 * (len(rates) - 1 - i)),
                                         funding_rate=Decimal(rate))


def test_flow_run_stores_what_build_flow_returns():
    instrument = InstrumentFactory()
    add_funding(instrument, ["0.0001"] * 20 + ["0.0006"])

    row = flow_run(instrument=instrument, as_of=K)

    expected = build_flow(flow_inputs_load(instrument=instrument, as_of=K))
    assert (row.as_of, row.crowd_bias, row.trap_index) == (K, expected.crowd_bias.value, expected.trap_index.value)
    assert row.global_risk_score == expected.global_risk.value
    assert [w["name"] for w in row.warnings] == ["funding_extreme_long"]
    row.refresh_from_db()
    parts = row.parts["crowd_bias"]["parts"]
    assert sum(p["contribution"] for p in parts) == pytest.approx(row.crowd_bias)


def test_flow_run_twice_for_same_as_of_replaces_the_row():
    instrument = InstrumentFactory()
    flow_run(instrument=instrument, as_of=K)
    SentimentInput.objects.create(asset="BTC", score=Decimal("-0.5"), source="desk", known_at=K)

    row = flow_run(instrument=instrument, as_of=K)

    assert Flow.objects.count() == 1
    assert row.crowd_bias == pytest.approx(-0.5 * 0.15)


def test_flow_run_build_failure_stores_nothing(monkeypatch):
    instrument = InstrumentFactory()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "build_flow", broken)
    with pytest.raises(RuntimeError, match="boom"):
        flow_run(instrument=instrument, as_of=K)

    assert not Flow.objects.exists()


def test_flow_record_json_failure_rolls_back(monkeypatch):
    instrument = InstrumentFactory()
    flow = build_flow(flow_inputs_load(instrument=instrument, as_of=K))
    monkeypatch.setattr(type(flow), "inputs_json", lambda self: {"bad": {1, 2}})

    with pytest.raises(TypeError):
        flow_record(instrument=instrument, flow=flow)

    assert not Flow.objects.exists()


def test_flow_admin_changelist_renders_with_filters(admin_client):
    flow_run(instrument=InstrumentFactory(), as_of=K)

    for query in ("", "?trap=low", "?warned=yes", "?warned=no"):
        response = admin_client.get("/admin/analytics/flow/" + query)
        assert response.status_code == 200
    assert admin_client.get("/admin/analytics/flow/add/").status_code == 403


def test_flow_run_real_funding_and_open_interest_match_pandas():
    data = Path(settings.MARKET_DATA_DIR)
    funding_file = data / "binance_usdm_BTCUSDT_funding_2026-01-12_2026-03-20.csv.gz"
    oi_file = data / "binance_usdm_BTCUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz"
    market_file_import(funding_file)
    market_file_import(oi_file)
    instrument = Instrument.objects.get(exchange="binanceusdm", symbol="BTC/USDT:USDT")
    as_of = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    as_of_ms = int(as_of.timestamp() * 1000)

    row = flow_run(instrument=instrument, as_of=as_of)

    funding = pd.read_csv(funding_file)
    funding = funding[funding.funding_time_ms <= as_of_ms]
    last = funding.iloc[-1]
    history = funding[(funding.funding_time_ms > last.funding_time_ms - 30 * 86_400_000)].iloc[:-1].funding_rate
    oi = pd.read_csv(oi_file).set_index("timestamp_ms").open_interest
    oi = oi[oi.index <= as_of_ms]
    context = row.parts["context"]["derivatives"]
    assert context["funding_rate"] == pytest.approx(last.funding_rate, rel=1e-12)
    assert context["funding_annualised_pct"] == pytest.approx(last.funding_rate * 1095 * 100, rel=1e-12)
    assert context["funding_z"] == pytest.approx((last.funding_rate - history.mean()) / history.std(), rel=1e-9)
    changes = dict(context["oi_change_pct"])
    last_ts = oi.index[-1]
    assert changes["1h"] is None  # 4h samples cannot measure a 1h change
    assert changes["4h"] == pytest.approx((oi.iloc[-1] / oi[last_ts - 4 * 3_600_000] - 1) * 100, rel=1e-9)
    assert changes["24h"] == pytest.approx((oi.iloc[-1] / oi[last_ts - 24 * 3_600_000] - 1) * 100, rel=1e-9)
    statuses = {i["name"]: i["status"] for i in row.inputs}
    assert (statuses["funding"], statuses["open_interest"]) == ("ok", "ok")
    # (last - 30 d, last): the sample 30 days back is stamped a few ms later than the last one, so it counts.
    assert len(history) == 90


@pytest.mark.django_db
def test_flow_run_leaves_out_series_with_gap_and_names_it():
    from datetime import UTC, datetime

    import pandas as pd

    from analytics.services import flow_run
    from market.ingest import derivatives_upsert
    from market.services import instrument_ensure

    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    hour = 3_600_000
    as_of = datetime(2025, 7, 10, 20, 0, tzinfo=UTC)
    end_ms = int(as_of.timestamp() * 1000)
    oi_times = [end_ms - k * 4 * hour for k in range(12, 0, -1) if k != 3]  # one 4h sample missing
    derivatives_upsert(instrument_id=instrument.pk, kind="open_interest", period="4h", frame=pd.DataFrame(
        {"ts_ms": oi_times, "open_interest": ["100"] * len(oi_times), "open_interest_value": ["1e7"] * len(oi_times)}))

    flow = flow_run(instrument=instrument, as_of=as_of)
    allowed = flow_run(instrument=instrument, as_of=as_of, allow_gaps=True)

    names = [w["name"] for w in flow.warnings]
    assert "gap_in_input:open_interest" in names
    detail = next(w["detail"] for w in flow.warnings if w["name"] == "gap_in_input:open_interest")
    assert "2025-07-10 08:00" in detail
    assert "gap_in_input:open_interest" not in [w["name"] for w in allowed.warnings]
