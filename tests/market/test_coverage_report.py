from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command

from market.ingest import candles_upsert, derivatives_upsert
from market.models import EtfFlow
from market.selectors import etf_coverage, instrument_coverage
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
H = 3_600_000
T0 = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def instrument():
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    hours = [T0 + i * H for i in range(48) if i not in (10, 11)]
    frame = pd.DataFrame({"open_time_ms": hours, "open": "1", "high": "2", "low": "1", "close": "1.5", "volume": "3"})
    candles_upsert(instrument_id=instrument.pk, timeframe="1h", frame=frame)
    funding = pd.DataFrame({"ts_ms": [T0 + 5, T0 + 8 * H + 4, T0 + 16 * H + 2], "funding_rate": ["0.0001"] * 3})
    derivatives_upsert(instrument_id=instrument.pk, kind="funding", period="8h", frame=funding)
    return instrument


def test_instrument_coverage_lists_each_series_with_share_and_gaps(instrument):
    coverage = {c.name: c for c in instrument_coverage(instrument)}

    assert set(coverage) == {"candles 1h", "funding 8h"}
    assert coverage["candles 1h"].share == pytest.approx(46 / 48)
    assert coverage["candles 1h"].gaps[0].missing_bars == 2
    assert coverage["funding 8h"].share == 1.0


def test_etf_coverage_counts_weekdays_only():
    for day in (date(2025, 7, 1), date(2025, 7, 2), date(2025, 7, 4)):
        EtfFlow.objects.create(fund="IBIT", date=day, net_flow_usd=Decimal("1"), known_at=datetime(2025, 7, 5, tzinfo=UTC))

    cov = etf_coverage("BTC", start=date(2025, 7, 1), end=date(2025, 7, 8))  # Tue..Mon: 5 weekdays

    assert (cov.rows, cov.expected) == (3, 5)
    assert [g.missing_bars for g in cov.gaps] == [1, 1]


def test_coverage_report_command_prints_share_and_largest_gap(instrument):
    out = StringIO()

    call_command("coverage_report", symbol="BTCUSDT", stdout=out)

    text = out.getvalue()
    assert "candles 1h: 95.8% of 48 expected rows present, 46 rows, 1 gaps" in text
    assert "largest gap 2025-07-01 10:00 (2 rows)" in text


def test_admin_coverage_page_lists_series_share_and_gap(instrument, admin_client):
    response = admin_client.get(f"/admin/market/instrument/{instrument.pk}/coverage/?all=1")

    body = response.content.decode()
    assert response.status_code == 200
    assert "candles 1h" in body and "funding 8h" in body
    assert "2025-07-01 10:00 (2)" in body
    assert "96 %" in body  # 46 of 48 hourly candles


def test_admin_instrument_list_links_to_coverage(instrument, admin_client):
    body = admin_client.get("/admin/market/instrument/").content.decode()

    assert f"/admin/market/instrument/{instrument.pk}/coverage/" in body
