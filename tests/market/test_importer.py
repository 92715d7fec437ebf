import gzip
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from market.csvformat import CsvFormatError
from market.importer import gap_report, market_file_import, resample_missing
from market.models import Candle, DerivativesSample, Instrument

T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC
MINUTE = 60_000
HEADER = "open_time_ms,open,high,low,close,volume,quote_volume,trades,taker_buy_base,taker_buy_quote"


def candle_lines(count: int, start: int = 0, skip: tuple[int, ...] = ()) -> list[str]:
    return [
        f"{T0 + i * MINUTE},{100 + i}.5,{102 + i},{99 + i},{101 + i}.25,0.5,50.25,3,,"
        for i in range(start, start + count) if i not in skip
    ]


def write(tmp_path, name: str, lines: list[str], header: str | None = HEADER):
    path = tmp_path / name
    text = "\n".join(([header] if header else []) + lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


@pytest.fixture
def minute_file(tmp_path):
    return write(tmp_path, "binance_usdm_BTCUSDT_1m_2024-06-01_2024-06-01.csv.gz", candle_lines(120))


@pytest.mark.django_db
def test_market_file_import_second_import_adds_nothing(minute_file):
    first = market_file_import(minute_file)
    second = market_file_import(minute_file)

    assert (first.rows_read, first.rows_new) == (120, 120)
    assert (second.rows_read, second.rows_new) == (120, 0)
    assert Candle.objects.count() == 120


@pytest.mark.django_db
def test_market_file_import_stores_exact_decimals_and_utc_times(minute_file):
    market_file_import(minute_file)

    candle = Candle.objects.order_by("open_time").first()

    assert (candle.open, candle.close, candle.quote_volume, candle.trades) == (
        Decimal("100.5"), Decimal("101.25"), Decimal("50.25"), 3)
    assert candle.open_time.timestamp() * 1000 == T0
    assert candle.taker_buy_base is None


@pytest.mark.django_db
def test_market_file_import_broken_file_writes_nothing(tmp_path, minute_file):
    market_file_import(minute_file)
    lines = candle_lines(200)
    lines[150] = lines[150].replace(",0.5,", ",-0.5,")
    broken = write(tmp_path, "binance_usdm_BTCUSDT_1m_2024-06-02_2024-06-02.csv.gz", lines)

    with pytest.raises(CsvFormatError, match=r"line 152: volume -0.5 is negative"):
        market_file_import(broken)

    assert Candle.objects.count() == 120


@pytest.mark.django_db
def test_market_file_import_broken_new_symbol_creates_no_instrument(tmp_path):
    broken = write(tmp_path, "binance_spot_SOLUSDT_1m_2024-06-01_2024-06-01.csv", candle_lines(3) + ["1,2"])

    with pytest.raises(CsvFormatError, match="line 5: expected 10 columns, found 2"):
        market_file_import(broken)

    assert not Instrument.objects.exists()


@pytest.mark.django_db
def test_market_file_import_spot_and_usdm_stay_apart(tmp_path, minute_file):
    spot = write(tmp_path, "binance_spot_BTCUSDT_1m_2024-06-01_2024-06-01.csv.gz", candle_lines(10))

    market_file_import(minute_file)
    market_file_import(spot)

    rows = {(i.exchange, i.market_type, i.symbol): i.candles.count() for i in Instrument.objects.all()}
    assert rows == {("binanceusdm", "swap", "BTC/USDT:USDT"): 120, ("binance", "spot", "BTC/USDT"): 10}


@pytest.mark.django_db
def test_market_file_import_funding_and_open_interest_go_to_derivatives(tmp_path):
    funding = write(tmp_path, "binance_usdm_ETHUSDT_funding_2024-06-01_2024-06-02.csv.gz",
                    [f"{T0 + i * 8 * 3_600_000 + 3},0.000{i + 1}," for i in range(4)],
                    header="funding_time_ms,funding_rate,mark_price")
    oi = write(tmp_path, "binance_usdm_ETHUSDT_openinterest-4h_2024-06-01_2024-06-01.csv.gz",
               [f"{T0 + i * 4 * 3_600_000},{1000 + i},{3_500_000 + i}.5" for i in range(6)],
               header="timestamp_ms,open_interest,open_interest_value")

    results = [market_file_import(funding), market_file_import(oi)]

    assert [(r.kind, r.interval, r.rows_new) for r in results] == [("funding", "8h", 4), ("open_interest", "4h", 6)]
    samples = DerivativesSample.objects.filter(instrument__exchange="binanceusdm",
                                               instrument__exchange_symbol="ETHUSDT")
    assert samples.filter(kind="funding", period="8h").count() == 4
    assert samples.filter(kind="open_interest", period="4h").count() == 6
    assert samples.get(kind="funding", funding_rate=Decimal("0.0004")).ts.timestamp() * 1000 == T0 + 24 * 3_600_000 + 3


@pytest.mark.django_db
def test_market_file_import_dump_without_market_defaults_to_usdm(tmp_path):
    lines = [f"{(T0 + i * 3_600_000) * 1000},1.5,2,1,1.5,10,{(T0 + (i + 1) * 3_600_000 - 1) * 1000},15,4,5,7.5,0"
             for i in range(3)]
    dump = write(tmp_path, "BTCUSDT-1h-2024-06-01.csv", lines, header=None)

    result = market_file_import(dump)

    assert "assumed usdm" in result.note
    assert result.instrument == "binanceusdm:BTC/USDT:USDT"
    assert Candle.objects.filter(timeframe="1h").count() == 3


@pytest.mark.django_db
def test_market_file_import_order_book_file_is_skipped(tmp_path):
    book = write(tmp_path, "binance_usdm_BTCUSDT_depth-snapshot_2022-11-01.csv.gz", ["a,b"], header=None)

    result = market_file_import(book)

    assert result.skipped and "skipped" in result.note
    assert not Instrument.objects.exists()


@pytest.mark.django_db
def test_resample_missing_builds_only_complete_unstored_buckets(tmp_path):
    minutes = write(tmp_path, "binance_spot_BTCUSDT_1m_2024-06-01_2024-06-01.csv.gz",
                    candle_lines(180, skip=(150,)))
    # The exchange's own first hour is already stored, with a close the 1m data would not give.
    hour = write(tmp_path, "binance_spot_BTCUSDT_1h_2024-06-01_2024-06-01.csv.gz",
                 [f"{T0},100.5,200,99,150,1,,,,"])
    market_file_import(minutes)
    market_file_import(hour)
    instrument = Instrument.objects.get()

    added = resample_missing(instrument, "1h")

    hours = Candle.objects.filter(timeframe="1h").order_by("open_time")
    assert added == 1 and resample_missing(instrument, "1h") == 0
    assert [(c.open, c.high, c.low, c.close, c.volume, c.trades) for c in hours] == [
        (Decimal("100.5"), 200, 99, 150, 1, None),
        (Decimal("160.5"), 221, 159, Decimal("220.25"), 30, 180),
    ]


@pytest.mark.django_db
def test_gap_report_counts_missing_minutes(tmp_path):
    market_file_import(write(tmp_path, "binance_spot_BTCUSDT_1m_2024-06-01_2024-06-01.csv.gz",
                             candle_lines(100, skip=(10, 11, 50))))

    [row] = gap_report()

    assert (row.instrument, row.timeframe) == ("binance:BTC/USDT", "1m")
    assert (row.summary.rows, len(row.summary.gaps), row.summary.missing_bars) == (97, 2, 3)


@pytest.mark.django_db
def test_import_candles_command_reports_rows_and_fails_on_broken_file(tmp_path, minute_file, capsys):
    broken = write(tmp_path, "binance_usdm_ETHUSDT_1m_2024-06-01_2024-06-01.csv",
                   candle_lines(3) + candle_lines(1, start=1))

    with pytest.raises(CommandError) as caught:
        call_command("import_candles", str(minute_file), str(broken), "--resample", "1h", verbosity=0)

    out = capsys.readouterr().out
    assert "120 rows read, 120 new" in out
    assert "binanceusdm:BTC/USDT:USDT 1h: 2 candles built from 1m" in out
    assert str(caught.value).splitlines()[1:] == [
        f"{broken.name}: line 5: duplicate time {T0 + MINUTE} (also on line 3)"]
    assert not Instrument.objects.filter(exchange_symbol="ETHUSDT").exists()


@pytest.mark.django_db
def test_gap_report_and_resample_commands_print_per_series(minute_file, capsys):
    call_command("import_candles", str(minute_file), verbosity=0)

    call_command("resample_candles", "--symbol", "BTCUSDT", "--to", "15m", "1h")
    call_command("gap_report", "--exchange", "binanceusdm")

    out = capsys.readouterr().out
    assert "binanceusdm:BTC/USDT:USDT 1m -> 15m: 8 candles added" in out
    assert "binanceusdm:BTC/USDT:USDT 1m: first 2024-06-01 00:00, last 2024-06-01 01:59, rows 120, gaps 0" in out


@pytest.mark.django_db
def test_instrument_admin_gap_report_action_shows_gaps(client, tmp_path):
    # Lives here until tests/market/test_admin.py exists.
    market_file_import(write(tmp_path, "binance_spot_BTCUSDT_1m_2024-06-01_2024-06-01.csv.gz",
                             candle_lines(30, skip=(5,))))
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)

    response = client.post("/admin/market/instrument/", {
        "action": "gap_report_action", "_selected_action": [Instrument.objects.get().pk]}, follow=True)

    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["binance:BTC/USDT 1m: first 2024-06-01 00:00, last 2024-06-01 00:29, rows 29, gaps 1, "
                        "missing bars 1, biggest: 2024-06-01 00:05 (1)"]
