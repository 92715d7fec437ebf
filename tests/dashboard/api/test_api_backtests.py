"""Starting a backtest over the API: execution.backtest.jobs checks the request and queues the run."""
import datetime as dt

import pytest

from execution.models import BacktestRun
from tests.dashboard.factories import CandleFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
BAR = dt.timedelta(minutes=15)


@pytest.fixture
def btc_15m():
    """400 synthetic 15m candles: enough for the default 300-bar warm-up and a day of decisions."""
    btc = InstrumentFactory(data_source="exchange")
    for n in range(400):
        CandleFactory(instrument=btc, timeframe="15m", open_time=T0 + n * BAR)
    return btc


def start_body(**changes) -> dict:
    return {"symbols": ["BTCUSDT"], "timeframe": "15m", "start": (T0 + 320 * BAR).isoformat(),
            "end": (T0 + 390 * BAR).isoformat(), "starting_equity": "5000"} | changes


def test_start_queues_a_run_requested_by_the_operator(btc_15m, operator_api, monkeypatch):
    queued = []
    monkeypatch.setattr("execution.backtest.jobs.enqueue_on_commit", lambda task, ids: queued.append((task, ids)))

    response = operator_api.post("/api/backtests/", start_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    run = BacktestRun.objects.get(pk=body["id"])
    assert (run.requested_by, run.starting_equity_usdt, run.instrument) == ("api-operator", 5000, btc_15m)
    assert (body["status"], body["starting_equity_usdt"], body["symbol"]) == (run.status, "5000", "BTCUSDT")
    assert queued == [("execution.tasks_backtest.backtest_execute", [run.pk])]


@pytest.mark.parametrize("changes, field", [
    ({"symbols": ["DOGEUSDT"]}, "symbols"),
    ({"symbols": []}, "symbols"),
    ({"timeframe": "7m"}, "timeframe"),
    ({"start": "not a time"}, "start"),
    ({"end": (T0 + 300 * BAR).isoformat()}, "end"),
    ({"start": (T0 + 320 * BAR + dt.timedelta(minutes=1)).isoformat()}, "start"),
    ({"starting_equity": "-1"}, "starting_equity"),
    ({"parameters": {"risk_per_trade_fraction": "0.9"}}, "parameters.risk_per_trade_fraction"),
])
def test_start_bad_request_is_400_naming_the_field_and_stores_nothing(btc_15m, operator_api, changes, field):
    response = operator_api.post("/api/backtests/", start_body(**changes), format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not BacktestRun.objects.exists()


def test_start_by_viewer_is_403(btc_15m, viewer_api):
    assert viewer_api.post("/api/backtests/", start_body(), format="json").status_code == 403
    assert not BacktestRun.objects.exists()
