"""Upload files shared by the parse, service and view tests: the examples and one case per bad input."""
import copy
import json
from datetime import UTC, datetime

from market.manual.schemas import ETF_FLOWS_EXAMPLE, LIQUIDATION_ZONES_EXAMPLE

# After every time in the examples, so they are valid "now".
NOW = datetime(2024, 3, 12, 14, 0, tzinfo=UTC)
MAX_BYTES = 1024 * 1024


def etf(**changes) -> dict:
    """Return a copy of the ETF example with top-level `changes` (None deletes a key)."""
    doc = copy.deepcopy(ETF_FLOWS_EXAMPLE) | changes
    return {k: v for k, v in doc.items() if v is not None}


def zones(**changes) -> dict:
    """Return a copy of the liquidation-zones example with top-level `changes` (None deletes a key)."""
    doc = copy.deepcopy(LIQUIDATION_ZONES_EXAMPLE) | changes
    return {k: v for k, v in doc.items() if v is not None}


def with_row(doc: dict, list_key: str, index: int, **changes) -> dict:
    """Return `doc` with row `index` of `list_key` updated by `changes`."""
    doc = copy.deepcopy(doc)
    doc[list_key][index] = doc[list_key][index] | changes
    return doc


def encode(doc) -> bytes:
    return json.dumps(doc, indent=2).encode()


_ETF_FLOW = {"date": "2024-03-11", "fund": "IBIT", "net_flow_usd": "1"}

# (id, kind, content, path, words of the reason) - each bad input on its own.
BAD_FILES = [
    ("too-large", "etf", b" " * (MAX_BYTES + 1), "", "the limit is 1 MiB"),
    ("empty-file", "etf", b"", "", "empty"),
    ("blank-file", "zones", b"  \n ", "", "empty"),
    ("not-utf8", "etf", '{"kind": "etf_flows", "source": "é"}'.encode("latin-1"), "", "not UTF-8: byte 0xe9 at line 1"),
    ("utf16", "zones", encode(zones()).decode().encode("utf-16"), "", "UTF-16"),
    ("malformed-json", "etf", b'{"kind": "etf_flows",\n "flows": [}', "", "malformed JSON at line 2, column 12"),
    ("nan", "etf", b'{"kind": "etf_flows", "source": "s", "flows": [{"net_flow_usd": NaN}]}', "", "NaN"),
    ("not-an-object", "etf", b"[1, 2]", "", "expected an object"),
    ("wrong-kind", "etf", encode(zones()), "/kind", "must be 'etf_flows'"),
    ("missing-source", "etf", encode(etf(source=None)), "/source", "required"),
    ("unknown-top-key", "etf", encode(etf(comment="x")), "/comment", "unknown key"),
    ("unknown-row-key", "etf", encode(with_row(etf(), "flows", 1, fnd="GBTC")), "/flows/1/fnd", "unknown key"),
    ("empty-flows", "etf", encode(etf(flows=[])), "/flows", "must not be empty"),
    ("empty-zones", "zones", encode(zones(zones=[])), "/zones", "must not be empty"),
    ("wrong-type-amount", "etf", encode(with_row(etf(), "flows", 3, net_flow_usd=True)), "/flows/3/net_flow_usd",
     "expected a number or a string, got boolean"),
    ("wrong-type-fund", "etf", encode(with_row(etf(), "flows", 0, fund=12)), "/flows/0/fund", "expected a string"),
    ("not-a-decimal", "etf", encode(with_row(etf(), "flows", 0, net_flow_usd="12k")), "/flows/0/net_flow_usd",
     "expected a decimal number"),
    ("three-decimals", "etf", encode(with_row(etf(), "flows", 0, net_flow_usd="1.005")), "/flows/0/net_flow_usd",
     "at most 2 decimal places"),
    ("bad-calendar-date", "etf", encode(with_row(etf(), "flows", 0, date="2024-02-30")), "/flows/0/date",
     "not a calendar date"),
    ("negative-size", "zones", encode(with_row(zones(), "zones", 1, size_usd="-5")), "/zones/1/size_usd",
     "must be greater than 0"),
    ("zero-size", "zones", encode(with_row(zones(), "zones", 0, size_usd=0)), "/zones/0/size_usd",
     "must be greater than 0"),
    ("negative-price", "zones", encode(with_row(zones(), "zones", 0, price_low=-1)), "/zones/0/price_low",
     "must be greater than 0"),
    ("low-above-high", "zones", encode(with_row(zones(), "zones", 1, price_low="74500")), "/zones/1/price_low",
     "price_low 74500 is above price_high 74000"),
    ("bad-side", "zones", encode(with_row(zones(), "zones", 0, side="longs")), "/zones/0/side", "must be one of"),
    ("future-date", "etf", encode(with_row(etf(), "flows", 0, date="2024-03-13")), "/flows/0/date",
     "2024-03-13 is in the future"),
    ("future-known-at", "etf", encode(etf(known_at="2024-03-12T14:00:01Z")), "/known_at", "is in the future"),
    ("future-row-known-at", "etf", encode(with_row(etf(), "flows", 2, known_at="2025-01-01T00:00:00Z")),
     "/flows/2/known_at", "never later"),
    ("future-zones-known-at", "zones", encode(zones(known_at="2024-03-13T08:00:00Z", valid_until=None)), "/known_at",
     "is in the future"),
    ("known-before-day", "etf", encode(with_row(etf(), "flows", 0, known_at="2024-03-10T23:00:00Z")),
     "/flows/0/date", "cannot be known at 2024-03-10T23:00:00Z"),
    ("naive-known-at", "etf", encode(etf(known_at="2024-03-12T13:30:00")), "/known_at", "with a UTC offset"),
    ("valid-until-before-known", "zones", encode(zones(valid_until="2024-03-12T07:00:00Z")), "/valid_until",
     "must be after known_at"),
    ("duplicate-fund", "etf", encode(etf(flows=[_ETF_FLOW, _ETF_FLOW | {"fund": "ibit", "net_flow_usd": 2}])),
     "/flows/1/fund", "duplicate: IBIT on 2024-03-11 is already at /flows/0"),
    ("duplicate-zone", "zones", encode(with_row(zones(), "zones", 1, side="long", price_low="68000",
                                                price_high="68500.0")), "/zones/1", "duplicate"),
    ("duplicate-json-key", "etf", b'{"kind": "etf_flows", "source": "a", "source": "b", "flows": [{"date": '
                                  b'"2024-03-11", "fund": "IBIT", "net_flow_usd": 1}]}', "/source", "appears twice"),
]
