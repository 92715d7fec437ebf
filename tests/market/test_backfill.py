import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from market.backfill import (
    BackfillJob, What, backfill_run, funding_frame, mark_index_frame, ohlcv_frame,
)
from market.exchanges.client import ClientOptions, RetryPolicy, exchange_client
from market.exchanges.errors import ExchangeUnavailable
from market.models import Candle, DataSource, DerivativesSample, Instrument, MarketType
from market.services import instrument_ensure
from market.tasks import candles_update_all

RECORDED = Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance" / "response.json"
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
JUNE_7 = 1749254400000  # 2025-06-07 00:00 UTC: inside the BTCUSDT 1m, funding recordings
NOW_MS = JUNE_7 + 30 * DAY_MS  # any "now" after the recordings; tests bound runs with until_ms
FAST = RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=5.0)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def source(name: str) -> pd.DataFrame:
    return pd.read_csv(Path(settings.MARKET_DATA_DIR) / name, dtype=str, keep_default_na=False)


@pytest.fixture
def client(binance_emulator):
    client = exchange_client(ClientOptions("binanceusdm", api_url=binance_emulator.url))
    client.load_markets()
    return client


@pytest.fixture
def btc(db):
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type=MarketType.SWAP)


def run(client, instrument, what=What.CANDLES, period="1m", since=JUNE_7, until=JUNE_7 + 3 * DAY_MS,
        now_ms=NOW_MS, sleep=lambda s: None, **kwargs):
    job = BackfillJob(instrument.id, "BTC/USDT:USDT", what, period, since, until)
    return backfill_run(client, job, now_ms=now_ms, policy=FAST, sleep=sleep, **kwargs)


def stored_times(instrument, timeframe="1m") -> list[int]:
    rows = Candle.objects.filter(instrument=instrument, timeframe=timeframe).values_list("open_time", flat=True)
    return sorted(ms(t) for t in rows)


# Parsing path


def test_ohlcv_frame_recorded_payload_gives_recorded_candles():
    entry = json.loads(RECORDED.read_text())["methods"]["fetchOHLCV"][0]
    client = exchange_client(ClientOptions("binanceusdm"))

    frame = ohlcv_frame(client.parse_ohlcvs(entry["httpResponse"], None, "1m"))

    expected = [[row[0], *(D(str(v)) for v in row[1:])] for row in entry["parsedResponse"]]
    assert [[t, *(D(frame.at[i, c]) for c in ("open", "high", "low", "close", "volume"))]
            for i, t in enumerate(frame["open_time_ms"])] == expected
    assert frame["close"].map(D).tolist() == [D(row[4]) for row in entry["httpResponse"]]  # "71481.90" == 71481.9


def test_mark_index_frame_basis_is_mark_minus_index():
    frame = mark_index_frame([[0, 1.0, 2.0, 0.5, 100.3, 0.0]], [[0, 1.0, 2.0, 0.5, 100.1, 0.0], [60, 1, 1, 1, 1, 0]])

    assert frame.to_dict("records") == [{"ts_ms": 0, "mark_price": "100.3", "index_price": "100.1", "basis": "0.2"}]


def test_funding_frame_missing_mark_price_stays_empty():
    frame = funding_frame([{"timestamp": 5, "fundingRate": -2.89e-05, "info": {}}])

    assert frame.to_dict("records") == [{"ts_ms": 5, "funding_rate": "-2.89e-05", "mark_price": None}]


# Candles: pagination, resume, retries


def test_backfill_run_three_days_of_1m_pages_and_stores_each_bar_once(binance_emulator, client, btc):
    stats = run(client, btc)

    times = stored_times(btc)
    assert stats.rows_new == len(times) == len(set(times)) == 4320
    assert times == list(range(JUNE_7, JUNE_7 + 3 * DAY_MS, MINUTE_MS))
    assert binance_emulator.count("/fapi/v1/klines") == stats.requests >= 3
    starts = [int(p["startTime"]) for p in binance_emulator.params("/fapi/v1/klines")]
    assert starts == [JUNE_7 + i * 1000 * MINUTE_MS for i in range(len(starts))]


def test_backfill_run_stored_values_match_the_recording(client, btc):
    run(client, btc, until=JUNE_7 + HOUR_MS)

    open_ms = JUNE_7 + 30 * MINUTE_MS
    row = source("binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz").set_index("open_time_ms").loc[str(open_ms)]
    candle = Candle.objects.get(instrument=btc, timeframe="1m", open_time=datetime.fromtimestamp(open_ms / 1000, UTC))
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == tuple(
        D(row[c]) for c in ("open", "high", "low", "close", "volume"))


def test_backfill_run_second_run_requests_nothing_and_adds_nothing(binance_emulator, client, btc):
    run(client, btc)
    requests_before = binance_emulator.count("/fapi/v1/klines")

    stats = run(client, btc)

    assert stats.rows_new == 0
    assert binance_emulator.count("/fapi/v1/klines") == requests_before
    assert Candle.objects.filter(instrument=btc).count() == 4320


def test_backfill_run_after_deleting_last_rows_restores_exactly_those(binance_emulator, client, btc):
    run(client, btc)
    cut = JUNE_7 + 3 * DAY_MS - 250 * MINUTE_MS
    Candle.objects.filter(instrument=btc, open_time__gte=datetime.fromtimestamp(cut / 1000, UTC)).delete()
    requests_before = binance_emulator.count("/fapi/v1/klines")

    stats = run(client, btc)

    assert stats.rows_new == 250
    assert binance_emulator.params("/fapi/v1/klines")[requests_before]["startTime"] == str(cut)
    assert stored_times(btc) == list(range(JUNE_7, JUNE_7 + 3 * DAY_MS, MINUTE_MS))


def test_backfill_run_429_twice_retries_and_completes(binance_emulator, client, btc):
    binance_emulator.fail("/fapi/v1/klines", status=429, times=2, retry_after_s=2)
    slept = []

    stats = run(client, btc, sleep=slept.append)

    assert stats.retries == 2 and slept == [2.0, 2.0]
    assert stats.done and Candle.objects.filter(instrument=btc).count() == 4320


def test_backfill_run_interrupted_keeps_pages_and_rerun_resumes(binance_emulator, client, btc):
    run(client, btc, max_pages=2)
    binance_emulator.fail("/fapi/v1/klines", status=503, times=FAST.attempts)

    with pytest.raises(ExchangeUnavailable):
        run(client, btc)
    assert Candle.objects.filter(instrument=btc).count() == 2000

    stats = run(client, btc)

    assert stats.rows_new == 2320
    assert stored_times(btc) == list(range(JUNE_7, JUNE_7 + 3 * DAY_MS, MINUTE_MS))


def test_backfill_run_excludes_the_bar_still_forming(client, btc):
    now_ms = JUNE_7 + 10 * MINUTE_MS + 30_000

    run(client, btc, until=None, now_ms=now_ms)

    assert stored_times(btc)[-1] == JUNE_7 + 9 * MINUTE_MS


# Derivatives


def test_backfill_run_funding_stores_the_recorded_rates(binance_emulator, client, btc):
    since, until = JUNE_7 - 20 * DAY_MS, JUNE_7 + 10 * DAY_MS
    recorded = source("binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz")
    times = recorded["funding_time_ms"].astype("int64")
    expected = recorded[(times >= since) & (times < until)]

    stats = run(client, btc, What.FUNDING, "", since, until)

    rows = DerivativesSample.objects.filter(instrument=btc, kind="funding", period="8h").order_by("ts")
    assert stats.rows_new == rows.count() == len(expected) == 90
    assert [str(r.funding_rate.normalize()) for r in rows[:3]] == [
        str(D(v).normalize()) for v in expected["funding_rate"][:3]]
    assert ms(rows.last().ts) == int(expected["funding_time_ms"].iloc[-1])


def test_backfill_run_open_interest_stores_the_recorded_history(binance_emulator, client, btc):
    recorded = source("binance_usdm_BTCUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz")
    since, until = ms(datetime(2026, 2, 20, tzinfo=UTC)), ms(datetime(2026, 3, 20, tzinfo=UTC))

    stats = run(client, btc, What.OPEN_INTEREST, "4h", since, until, now_ms=until + DAY_MS)

    rows = DerivativesSample.objects.filter(instrument=btc, kind="open_interest", period="4h").order_by("ts")
    assert stats.rows_new == rows.count() == len(recorded) - 1  # the 2026-03-20 00:00 row is at until
    first = recorded.iloc[0]
    assert (ms(rows[0].ts), rows[0].open_interest) == (int(first["timestamp_ms"]), D(first["open_interest"]))
    # SQLite keeps 15 significant digits of a decimal; MariaDB keeps all of them.
    assert float(rows[0].open_interest_value) == pytest.approx(float(first["open_interest_value"]), rel=1e-14)
    assert binance_emulator.params("/futures/data/openInterestHist")[0]["period"] == "4h"


def test_backfill_run_open_interest_older_than_30_days_is_not_requested(binance_emulator, client, btc):
    now_ms = ms(datetime(2026, 3, 20, tzinfo=UTC))

    run(client, btc, What.OPEN_INTEREST, "4h", now_ms - 60 * DAY_MS, None, now_ms=now_ms)

    first_start = int(binance_emulator.params("/futures/data/openInterestHist")[0]["startTime"])
    assert first_start >= now_ms - 30 * DAY_MS


def test_backfill_run_mark_index_stores_mark_index_and_basis(binance_emulator, client, btc):
    stats = run(client, btc, What.MARK_INDEX, "1h", JUNE_7, JUNE_7 + DAY_MS)

    rows = DerivativesSample.objects.filter(instrument=btc, kind="mark_index", period="1h").order_by("ts")
    assert stats.rows_new == rows.count() == 24
    recorded = source("binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz").set_index("open_time_ms")
    close_of_first_hour = D(recorded.loc[str(JUNE_7 + 59 * MINUTE_MS), "close"])  # emulator: mark = trade price
    assert rows[0].mark_price == close_of_first_hour
    assert rows[0].index_price == (close_of_first_hour * D("0.9998")).quantize(D("0.01"))
    assert all(r.basis == r.mark_price - r.index_price for r in rows)
    assert binance_emulator.count("/fapi/v1/markPriceKlines") == binance_emulator.count("/fapi/v1/indexPriceKlines")


# The management command


def test_backfill_command_creates_instrument_from_markets_and_fills(binance_emulator, db):
    out = io.StringIO()

    call_command("backfill", "--api-url", binance_emulator.url, "--symbols", "BTCUSDT", "--timeframes", "1h",
                 "--since", "2025-06-07", "--until", "2025-06-08", "--what", "candles", "mark_index", "funding",
                 "--no-progress", stdout=out)


    instrument = Instrument.objects.get(exchange="binanceusdm", symbol="BTC/USDT:USDT", data_source=DataSource.EXCHANGE)
    assert (instrument.tick_size, instrument.step_size, instrument.min_notional) == (D("0.1"), D("0.001"), D("100"))
    assert Candle.objects.filter(instrument=instrument, timeframe="1h").count() == 24
    assert DerivativesSample.objects.filter(instrument=instrument, kind="mark_index").count() == 24
    assert DerivativesSample.objects.filter(instrument=instrument, kind="funding").count() == 3
    assert "BTC/USDT:USDT candles 1h: 24 new rows, 1 requests, 0 retries" in out.getvalue()


def test_backfill_command_without_network_fails_fast_with_one_line(closed_port_url, db, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: pytest.fail("no backoff wait when the exchange is unreachable"))

    with pytest.raises(CommandError, match=r"^cannot reach binanceusdm \(NetworkError: .*\): no network\? "
                                           r"use import_candles for offline data$"):
        call_command("backfill", "--api-url", closed_port_url, "--no-progress")
    assert not Instrument.objects.exists()


def test_backfill_command_without_network_prints_no_traceback(closed_port_url, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}

    result = subprocess.run([sys.executable, "manage.py", "backfill", "--api-url", closed_port_url],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("CommandError: cannot reach binanceusdm")


# The live update task


def test_candles_update_all_fetches_active_exchange_instruments_only(binance_emulator, settings, db):
    settings.EXCHANGE_API_URL, settings.CANDLE_UPDATE_TIMEFRAMES = binance_emulator.url, ["1m", "1h"]
    btc = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type=MarketType.SWAP)
    Instrument.objects.filter(pk=btc.pk).update(is_active=True)
    instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type=MarketType.SWAP)
    replay = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type=MarketType.SWAP,
                               data_source=DataSource.REPLAY)
    Instrument.objects.filter(pk=replay.pk).update(is_active=True)

    with time_machine.travel(datetime(2025, 6, 10, 12, 0, 30, tzinfo=UTC)):
        added = candles_update_all()

    assert added == {str(btc): 1439 + 23}  # the last day's closed bars: 12:01 .. 11:59 and 13:00 .. 11:00
    assert stored_times(btc)[-1] == ms(datetime(2025, 6, 10, 11, 59, tzinfo=UTC))
    assert {p.get("symbol") for p in binance_emulator.params("/fapi/v1/klines")} == {"BTCUSDT"}


def test_candles_update_all_next_minute_adds_the_new_bar_only(binance_emulator, settings, db):
    settings.EXCHANGE_API_URL, settings.CANDLE_UPDATE_TIMEFRAMES = binance_emulator.url, ["1m"]
    btc = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type=MarketType.SWAP)
    Instrument.objects.filter(pk=btc.pk).update(is_active=True)
    with time_machine.travel(datetime(2025, 6, 10, 12, 0, 30, tzinfo=UTC)):
        candles_update_all()

    with time_machine.travel(datetime(2025, 6, 10, 12, 1, 30, tzinfo=UTC)):
        added = candles_update_all()

    assert added == {str(btc): 1}
    assert binance_emulator.params("/fapi/v1/klines")[-1]["startTime"] == str(ms(datetime(2025, 6, 10, 12, tzinfo=UTC)))


def test_candles_update_all_without_network_returns_without_raising(closed_port_url, settings, db, monkeypatch):
    settings.EXCHANGE_API_URL = closed_port_url
    btc = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type=MarketType.SWAP)
    Instrument.objects.filter(pk=btc.pk).update(is_active=True)
    monkeypatch.setattr("time.sleep", lambda s: pytest.fail("no backoff wait when the exchange is unreachable"))

    assert candles_update_all() == {}
    assert not Candle.objects.exists()
