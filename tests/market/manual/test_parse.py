import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.manual.parse import (
    format_size,
    load_json,
    parse_datetime,
    parse_etf_flows,
    parse_liquidation_zones,
    size_problem,
)
from market.manual.schemas import ETF_FLOWS_EXAMPLE, LIQUIDATION_ZONES_EXAMPLE
from tests.market.manual.cases import BAD_FILES, MAX_BYTES, NOW, encode, etf, with_row, zones

PARSERS = {"etf": parse_etf_flows, "zones": parse_liquidation_zones}


@pytest.mark.parametrize(("kind", "content", "path", "words"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_parse_bad_file_returns_problem_and_no_rows(kind, content, path, words):
    parsed = PARSERS[kind](content, now=NOW, max_bytes=MAX_BYTES)

    assert parsed.value is None
    assert not parsed.ok
    assert any(p.path == path and words in p.reason for p in parsed.problems), parsed.problems


def test_parse_etf_flows_example_normalises_rows():
    parsed = parse_etf_flows(encode(ETF_FLOWS_EXAMPLE), now=NOW)

    assert parsed.ok and parsed.problems == ()
    doc = parsed.value
    assert (doc.asset, doc.source, doc.known_at_stated) == ("BTC", "issuer websites", True)
    assert [(r.fund, r.net_flow_usd) for r in doc.rows][:3] == [
        ("IBIT", Decimal("562900000.00")), ("GBTC", Decimal("-494100000.00")), ("FBTC", Decimal("215500000.00"))]
    # A row's own known_at overrides the file's.
    assert doc.rows[3].known_at == datetime(2024, 3, 9, 13, 30, tzinfo=UTC)
    assert doc.rows[0].known_at == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)


def test_parse_etf_flows_without_known_at_uses_now():
    parsed = parse_etf_flows(encode(etf(known_at=None, flows=[ETF_FLOWS_EXAMPLE["flows"][0]])), now=NOW)

    assert parsed.value.known_at == NOW
    assert parsed.value.known_at_stated is False
    assert parsed.value.rows[0].known_at == NOW


def test_parse_etf_flows_lowercase_and_offsets_are_normalised():
    doc = etf(asset="btc", known_at="2024-03-12T15:30:00+02:00",
              flows=[{"date": "2024-03-11", "fund": "ibit", "net_flow_usd": 1.5e3}])

    row = parse_etf_flows(encode(doc), now=NOW).value.rows[0]

    assert (row.asset, row.fund, row.net_flow_usd) == ("BTC", "IBIT", Decimal("1500.00"))
    assert row.known_at == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)


def test_parse_etf_flows_known_at_equal_to_now_is_accepted():
    assert parse_etf_flows(encode(etf(known_at="2024-03-12T14:00:00Z")), now=NOW).ok


def test_parse_etf_flows_utf8_byte_order_mark_is_accepted():
    assert parse_etf_flows(b"\xef\xbb\xbf" + encode(ETF_FLOWS_EXAMPLE), now=NOW).ok


def test_parse_etf_flows_one_bad_row_among_good_yields_nothing():
    doc = etf(flows=[{"date": "2024-03-0" + str(d), "fund": "IBIT", "net_flow_usd": d} for d in range(1, 10)])
    doc = with_row(doc, "flows", 5, net_flow_usd="-")

    parsed = parse_etf_flows(encode(doc), now=NOW)

    assert parsed.value is None
    assert [p.path for p in parsed.problems] == ["/flows/5/net_flow_usd"]


def test_parse_etf_flows_reports_every_problem_of_the_file():
    doc = with_row(with_row(etf(), "flows", 0, fund=""), "flows", 2, date="2030-01-01")

    paths = {p.path for p in parse_etf_flows(encode(doc), now=NOW).problems}

    assert paths == {"/flows/0/fund", "/flows/2/date"}


def test_parse_etf_flows_same_fund_on_other_days_is_not_duplicate():
    doc = etf(flows=[{"date": "2024-03-08", "fund": "IBIT", "net_flow_usd": 1},
                     {"date": "2024-03-11", "fund": "IBIT", "net_flow_usd": 1}])

    assert parse_etf_flows(encode(doc), now=NOW).ok


def test_parse_liquidation_zones_example_normalises_rows():
    doc = parse_liquidation_zones(encode(LIQUIDATION_ZONES_EXAMPLE), now=NOW).value

    assert (doc.exchange, doc.symbol, doc.data_source) == ("binanceusdm", "BTCUSDT", "exchange")
    assert doc.valid_until == datetime(2024, 3, 13, 8, tzinfo=UTC)
    assert doc.rows[1].price_low == Decimal("73200.5")
    assert doc.rows[1].size_usd == Decimal("275000000.00")


def test_parse_liquidation_zones_equal_low_and_high_is_a_valid_band():
    doc = with_row(zones(), "zones", 0, price_low="68000", price_high=68000)

    assert parse_liquidation_zones(encode(doc), now=NOW).ok


def test_parse_liquidation_zones_null_valid_until_means_open_ended():
    parsed = parse_liquidation_zones(encode(zones(valid_until=None) | {"valid_until": None}), now=NOW)

    assert parsed.value.valid_until is None


@pytest.mark.parametrize(("size", "limit", "expected"), [
    (0, 10, "the file is empty"),
    (11, 10, "the file is 11 bytes; the limit is 10 bytes"),
    (3 * 1024 * 1024 // 2, 1024 * 1024, "the file is 1.5 MiB; the limit is 1 MiB"),
])
def test_size_problem_names_size_and_limit(size, limit, expected):
    assert size_problem(size, limit).reason == expected


def test_size_problem_within_limit_is_none():
    assert size_problem(10, 10) is None


def test_format_size_kib():
    assert format_size(900 * 1024) == "900 KiB"


def test_load_json_keeps_decimals_exact():
    document, problems = load_json(b'{"a": 0.1, "b": 12345678901234567.89}')

    assert problems == []
    assert document == {"a": Decimal("0.1"), "b": Decimal("12345678901234567.89")}


def test_load_json_deeply_nested_is_a_problem_not_a_crash():
    document, problems = load_json(b"[" * 100_000 + b"]" * 100_000)

    assert document is None
    assert problems[0].reason.startswith("malformed JSON")


def test_parse_datetime_lowercase_z_is_utc():
    assert parse_datetime("2024-03-12t13:30:00z") == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)


def test_parse_etf_flows_date_type_is_date():
    row = parse_etf_flows(encode(ETF_FLOWS_EXAMPLE), now=NOW).value.rows[0]

    assert row.date == date(2024, 3, 11)
    assert json.loads(encode(ETF_FLOWS_EXAMPLE))["flows"][0]["date"] == "2024-03-11"


@given(st.binary(max_size=300))
def test_parse_any_bytes_returns_value_or_problems_without_raising(content):
    for parse in PARSERS.values():
        parsed = parse(content, now=NOW)
        assert parsed.ok or parsed.problems


ROW_VALUES = st.none() | st.booleans() | st.integers() | st.sampled_from(
    ["", "2024-03-11", "2030-01-01", "2024-03-12T13:00:00Z", "IBIT", "-1", "1.005", "long", "x"])


@given(st.lists(st.dictionaries(st.sampled_from(["date", "fund", "net_flow_usd", "known_at", "side", "price_low",
                                                 "price_high", "size_usd", "other"]), ROW_VALUES), max_size=4))
def test_parse_any_rows_returns_value_or_problems_without_raising(rows):
    parsed = parse_etf_flows(encode(etf(flows=rows)), now=NOW)
    assert parsed.ok or parsed.problems
    parsed = parse_liquidation_zones(encode(zones(zones=rows)), now=NOW)
    assert parsed.ok or parsed.problems
