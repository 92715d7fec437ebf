"""POST /api/backtests/ with "source": "csv": the run reads the recorded files; bad sources are named."""
import pytest

from execution.backtest.jobs import backtest_execute
from execution.models import BacktestRun
from tests.execution.backtest.test_backtest_csv_source import (  # noqa: F401  (fixtures)
    END, FILES, FUNDING_FILE, START, data_dir, spot_btc)


def body(**overrides) -> dict:
    return {"symbols": ["BTCUSDT"], "timeframe": "15m", "start": START.isoformat(), "end": END.isoformat(),
            "source": "csv", "market": "spot"} | overrides


def test_api_csv_run_is_queued_with_its_source_and_reads_the_files(operator_api, spot_btc, settings,  # noqa: F811
                                                                   data_dir):  # noqa: F811
    settings.MARKET_DATA_DIR = data_dir

    response = operator_api.post("/api/backtests/", body(), format="json")

    assert response.status_code == 201, response.json()
    run = BacktestRun.objects.get(pk=response.json()["id"])
    assert (run.parameters["source"], run.parameters["market"]) == ("csv", "spot")
    assert backtest_execute(run.pk).status == "done"
    detail = operator_api.get(f"/api/backtests/{run.pk}/").json()
    assert detail["parameters"]["source_files"] == [*FILES, FUNDING_FILE]


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"source": "parquet"}, "source", '"parquet" is not a valid choice.'),
    ({"source": "db"}, "market", "a market chooses among the CSV files: it needs the csv source"),
    ({"market": ""}, "source", "no file binance_usdm_BTCUSDT_15m_*.csv.gz"),
])
def test_api_bad_source_is_a_400_naming_the_field(operator_api, spot_btc, settings, tmp_path,  # noqa: F811
                                                  changes, field, message):
    settings.MARKET_DATA_DIR = tmp_path

    response = operator_api.post("/api/backtests/", body(**changes), format="json")

    assert response.status_code == 400 and message in " ".join(response.json()[field])
    assert not BacktestRun.objects.exists()
