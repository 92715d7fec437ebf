"""run_bot's choice of market data: exchange when it answers, else replay, else simulation."""
import pytest

from execution.sources import choose_source
from market.models import DataSource, Instrument

pytestmark = pytest.mark.django_db


def test_choose_source_auto_with_exchange_answering_uses_exchange(binance_emulator, settings):
    settings.EXCHANGE_API_URL = binance_emulator.url

    choice = choose_source(wanted="auto", symbol="BTCUSDT", timeframe="5m")

    assert choice.kind == "exchange" and choice.feed is None
    assert choice.instrument.data_source == DataSource.EXCHANGE and choice.instrument.is_active


def test_choose_source_auto_offline_replays_real_candles(closed_port_url, settings):
    settings.EXCHANGE_API_URL = closed_port_url

    choice = choose_source(wanted="auto", symbol="BTCUSDT", timeframe="5m")

    assert choice.kind == "replay"
    assert choice.label.startswith("REPLAY of real Binance USD-M BTCUSDT 5m candles")
    assert list(Instrument.objects.filter(is_active=True)) == [choice.instrument]


def test_choose_source_auto_offline_without_data_simulates(closed_port_url, settings, tmp_path):
    settings.EXCHANGE_API_URL = closed_port_url
    settings.MARKET_DATA_DIR = tmp_path

    choice = choose_source(wanted="auto", symbol="BTCUSDT", timeframe="5m")

    assert choice.kind == "simulated"
    assert choice.label == "SIMULATED market - not real prices"


def test_choose_source_exchange_required_but_offline_raises(closed_port_url, settings):
    settings.EXCHANGE_API_URL = closed_port_url

    with pytest.raises(RuntimeError, match="cannot be reached"):
        choose_source(wanted="exchange", symbol="BTCUSDT", timeframe="5m")
