"""The backtests page starts runs over the recorded CSV files: the form's source and market reach the job."""
import pytest
from django.urls import reverse

from execution.backtest.jobs import backtest_execute
from execution.models import BacktestRun
from tests.execution.backtest.test_backtest_csv_source import (  # noqa: F401  (fixtures)
    END, FILES, FUNDING_FILE, START, data_dir, spot_btc)


@pytest.fixture
def recordings(settings, data_dir):  # noqa: F811
    settings.MARKET_DATA_DIR = data_dir
    return data_dir


def form_data(**overrides) -> dict:
    data = {"symbols": "BTCUSDT", "timeframe": "15m", "start": START.strftime("%Y-%m-%dT%H:%M"),
            "end": END.strftime("%Y-%m-%dT%H:%M"), "starting_equity": "10000", "parameters": "",
            "source": "csv", "market": "spot"}
    return data | overrides


def test_page_offers_the_csv_source_to_operators(operator_client, spot_btc):  # noqa: F811
    page = operator_client.get(reverse("dashboard:backtests")).content.decode()

    assert page.count('name="source"') == 3 and page.count('name="market"') == 3     # run, walk-forward, sweep
    assert '<option value="csv">recorded CSV files (MARKET_DATA_DIR)</option>' in page


def test_start_csv_run_from_the_form_reads_the_files(operator_client, spot_btc, recordings):  # noqa: F811
    response = operator_client.post(reverse("dashboard:backtest-start"), form_data())

    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:backtest", args=[run.pk])
    assert (run.status, run.parameters["source"], run.parameters["market"]) == ("queued", "csv", "spot")
    done = backtest_execute(run.pk)
    assert done.status == "done" and done.parameters["source_files"] == [*FILES, FUNDING_FILE]
    report = operator_client.get(response["Location"]).content.decode()
    assert "source_files" in report and FILES[0] in report


def test_start_csv_run_with_a_missing_file_shows_it_on_the_source_field(operator_client, spot_btc, settings,  # noqa: F811
                                                                       tmp_path):
    settings.MARKET_DATA_DIR = tmp_path                    # no recordings at all

    response = operator_client.post(reverse("dashboard:backtest-start"), form_data())

    page = response.content.decode()
    assert response.status_code == 400 and 'data-field-error="source"' in page
    assert f"no file binance_spot_BTCUSDT_15m_*.csv.gz in {tmp_path}" in page
    assert not BacktestRun.objects.exists()


def test_start_market_without_the_csv_source_is_refused_on_the_market_field(operator_client, spot_btc):  # noqa: F811
    response = operator_client.post(reverse("dashboard:backtest-start"), form_data(source="db"))

    assert response.status_code == 400 and 'data-field-error="market"' in response.content.decode()
    assert not BacktestRun.objects.exists()
