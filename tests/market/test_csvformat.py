import gzip
import io
import zipfile

import pytest

from market.csvformat import (
    CsvFormatError,
    FileKind,
    FileSpec,
    MAX_PROBLEMS,
    parse_candles,
    parse_file_name,
    parse_funding,
    parse_open_interest,
)

HEADER = "open_time_ms,open,high,low,close,volume,quote_volume,trades,taker_buy_base,taker_buy_quote"
DUMP_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume," \
              "taker_buy_quote_volume,ignore"
T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC
MINUTE = 60_000


def row(i: int, o="100.50", h="101", low="100", c="100.7", v="1.5", rest="150.7,10,,") -> str:
    return f"{T0 + i * MINUTE},{o},{h},{low},{c},{v},{rest}"


def recorded(lines: list[str], header: bool = True) -> bytes:
    return ("\n".join(([HEADER] if header else []) + lines) + "\n").encode()


def dump_row(i: int, scale: int = 1) -> str:
    t = T0 + i * MINUTE
    return f"{t * scale},100.5,101,100,100.7,1.5,{(t + MINUTE - 1) * scale},150.7,10,0.7,70.3,0"


def test_parse_candles_recorded_format_keeps_decimal_strings():
    table = parse_candles(recorded([row(0), row(1)]), "x.csv", "1m")

    assert table.rows == 2
    assert table.frame["open"].tolist() == ["100.50", "100.50"]
    assert table.frame["taker_buy_base"].tolist() == [None, None]
    assert table.numbers["open"].tolist() == [100.5, 100.5]
    assert table.frame["open_time_ms"].tolist() == [T0, T0 + MINUTE]


@pytest.mark.parametrize(
    "lines",
    [
        # Binance dump with header, ms timestamps
        [DUMP_HEADER, dump_row(0), dump_row(1)],
        # without header
        [dump_row(0), dump_row(1)],
        # µs timestamps, as Binance spot dumps from 2025 on
        [dump_row(0, 1000), dump_row(1, 1000)],
    ],
)
def test_parse_candles_binance_dump_reads_ms_and_us(lines):
    table = parse_candles(("\n".join(lines) + "\n").encode(), "BTCUSDT-1m-2024-06.csv", "1m")

    assert table.frame["open_time_ms"].tolist() == [T0, T0 + MINUTE]
    assert table.frame["trades"].tolist() == ["10", "10"]
    assert table.frame["taker_buy_quote"].tolist() == ["70.3", "70.3"]
    assert "close_time" not in table.frame.columns


def test_parse_candles_gzip_and_zip_containers_read_the_same():
    plain = recorded([row(0), row(1)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-06.csv", plain)

    from_gzip = parse_candles(gzip.compress(plain), "x.csv.gz", "1m")
    from_zip = parse_candles(buffer.getvalue(), "x.zip", "1m")

    assert from_gzip.frame.equals(from_zip.frame)


def test_parse_candles_unsorted_rows_are_sorted():
    table = parse_candles(recorded([row(2), row(0), row(1)]), "x.csv", "1m")

    assert table.frame["open_time_ms"].tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]


def test_parse_candles_blank_lines_keep_line_numbers():
    data = (HEADER + "\n" + row(0) + "\n\n" + row(1, h="99") + "\n").encode()

    with pytest.raises(CsvFormatError, match=r"x.csv: line 4: high 99.0 is below"):
        parse_candles(data, "x.csv", "1m")


@pytest.mark.parametrize(
    "bad_row, message",
    [
        # numbers that are not numbers
        (row(1, o="abc"), r"line 3: open 'abc' is not a number"),
        (row(1, v="nan"), r"line 3: volume 'nan' is not a number"),
        (row(1, c=""), r"line 3: close is empty"),
        # prices and volumes out of range
        (row(1, o="0", low="0"), r"line 3: open 0.0 is not positive"),
        (row(1, h="100.6"), r"line 3: high 100.6 is below max\(open, close\) 100.7"),
        (row(1, low="100.6"), r"line 3: low 100.6 is above min\(open, close\) 100.5"),
        (row(1, v="-1"), r"line 3: volume -1.0 is negative"),
        # times
        (row(0), rf"line 3: duplicate time {T0} \(also on line 2\)"),
        (f"{T0 + MINUTE + 1},100.5,101,100,100.7,1.5,,,,", r"line 3: time \d+ is not aligned to 1m"),
        (f"2024-06-01,100.5,101,100,100.7,1.5,,,,", r"line 3: open time '2024-06-01' is not an integer"),
        # layout
        (row(1) + ",7", r"line 3: expected 10 columns, found 11"),
        (row(1, rest="150.7,1.5,,"), r"line 3: trades '1.5' is not a whole number"),
    ],
)
def test_parse_candles_broken_row_names_line(bad_row, message):
    data = recorded([row(0), bad_row, row(2)])

    with pytest.raises(CsvFormatError, match=message):
        parse_candles(data, "x.csv", "1m")


def test_parse_candles_many_problems_reports_first_and_count():
    data = recorded([row(i, v="-1") for i in range(MAX_PROBLEMS + 5)])

    with pytest.raises(CsvFormatError) as caught:
        parse_candles(data, "x.csv", "1m")

    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.total == MAX_PROBLEMS + 5
    assert caught.value.lines()[-1] == f"x.csv: {MAX_PROBLEMS + 5} problems in total, 5 not shown"


def test_parse_candles_truncated_gzip_raises_clear_error():
    data = gzip.compress(recorded([row(i) for i in range(500)]))

    with pytest.raises(CsvFormatError, match=r"x.csv.gz: corrupt or truncated archive"):
        parse_candles(data[: len(data) // 2], "x.csv.gz", "1m")


def test_parse_candles_wrong_first_row_width_raises():
    with pytest.raises(CsvFormatError, match=r"line 1: expected 10 or 12 columns, found 3"):
        parse_candles(b"a,b,c\n1,2,3\n", "x.csv", "1m")


def test_parse_candles_unexpected_header_raises():
    data = HEADER.replace("open_time_ms", "time").encode() + b"\n" + row(0).encode()

    with pytest.raises(CsvFormatError, match=r"line 1: unexpected header time,open"):
        parse_candles(data, "x.csv", "1m")


def test_parse_candles_weekly_bars_must_open_on_monday():
    monday = 1_717_372_800_000  # 2024-06-03 00:00 UTC, a Monday
    lines = [f"{monday},1,2,1,1,1,,,,", f"{monday + 86_400_000},1,2,1,1,1,,,,"]

    with pytest.raises(CsvFormatError, match=r"line 3: time \d+ is not aligned to 1w"):
        parse_candles(recorded(lines), "x.csv", "1w")


def test_parse_funding_keeps_unaligned_times_and_empty_mark_price():
    data = b"funding_time_ms,funding_rate,mark_price\n1721376000003,0.00004855,\n1721404800000,-0.0001,\n"

    table = parse_funding(data, "f.csv")

    assert table.frame["ts_ms"].tolist() == [1721376000003, 1721404800000]
    assert table.frame["funding_rate"].tolist() == ["0.00004855", "-0.0001"]
    assert table.frame["mark_price"].tolist() == [None, None]


def test_parse_open_interest_negative_value_raises():
    data = b"timestamp_ms,open_interest,open_interest_value\n1771560000000,80485.6,-5\n"

    with pytest.raises(CsvFormatError, match=r"line 2: open_interest_value -5.0 is negative"):
        parse_open_interest(data, "oi.csv", "4h")


@pytest.mark.parametrize(
    "name, spec",
    [
        ("binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz", FileSpec(FileKind.CANDLES, "usdm", "BTCUSDT", "1m")),
        ("binance_spot_ETHUSDT_15m_2023-12-31_2025-02-28.csv.gz", FileSpec(FileKind.CANDLES, "spot", "ETHUSDT", "15m")),
        ("binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz",
         FileSpec(FileKind.FUNDING, "usdm", "BTCUSDT", "8h")),
        ("binance_usdm_SOLUSDT_openinterest-4h_2026-02-20_2026-03-20.csv.gz",
         FileSpec(FileKind.OPEN_INTEREST, "usdm", "SOLUSDT", "4h")),
        ("binance_usdm_BTCUSDT_depth-update_2022-11-01.csv.gz", FileSpec(FileKind.ORDER_BOOK)),
        ("binance_usdm_BTCUSDT_book-snapshot-5-tardis_2020-09-01.csv.gz", FileSpec(FileKind.ORDER_BOOK)),
        # Binance data-dump names carry no market
        ("BTCUSDT-1h-2025-01.zip", FileSpec(FileKind.CANDLES, None, "BTCUSDT", "1h")),
        ("ETHUSDT-1m-2025-01-31.csv", FileSpec(FileKind.CANDLES, None, "ETHUSDT", "1m")),
        ("notes.csv", FileSpec(FileKind.UNKNOWN)),
    ],
)
def test_parse_file_name_known_patterns_return_spec(name, spec):
    assert parse_file_name(name) == spec
