import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.manual.parse import JsonObject
from market.manual.schemas import (
    ETF_FLOWS_EXAMPLE,
    ETF_FLOWS_SCHEMA,
    LIQUIDATION_ZONES_EXAMPLE,
    LIQUIDATION_ZONES_SCHEMA,
    Problem,
    decimal_places,
    pointer,
    to_decimal,
    validate,
)

SCHEMAS = [(ETF_FLOWS_SCHEMA, ETF_FLOWS_EXAMPLE), (LIQUIDATION_ZONES_SCHEMA, LIQUIDATION_ZONES_EXAMPLE)]
MONEY = {"type": ["number", "string"], "format": "decimal", "multipleOf": 0.01, "exclusiveMinimum": 0}


@pytest.mark.parametrize(("schema", "example"), SCHEMAS)
def test_validate_example_has_no_problems(schema, example):
    assert validate(example, schema) == []


@pytest.mark.parametrize(("schema", "example"), SCHEMAS)
def test_schema_is_plain_json_of_draft_2020_12(schema, example):
    round_trip = json.loads(json.dumps(schema))

    assert round_trip["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert round_trip["additionalProperties"] is False
    assert set(example) <= set(round_trip["properties"])


@pytest.mark.parametrize(("value", "schema", "expected"), [
    # types
    ("x", {"type": "number"}, [Problem("", "expected a number, got string 'x'")]),
    (True, {"type": "number"}, [Problem("", "expected a number, got boolean true")]),
    (None, {"type": ["string", "null"]}, []),
    (3, {"type": "number"}, []),
    # const and enum
    ("b", {"const": "a"}, [Problem("", "must be 'a', got 'b'")]),
    ("c", {"enum": ["a", "b"]}, [Problem("", "must be one of 'a', 'b'; got 'c'")]),
    # objects
    ({}, {"type": "object", "required": ["a"]}, [Problem("/a", "required")]),
    ({"b": 1}, {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
     [Problem("/b", "unknown key; expected one of: a")]),
    ({"a/b": 1}, {"type": "object", "properties": {}, "additionalProperties": False},
     [Problem("/a~1b", "unknown key; expected one of: ")]),
    # arrays
    ([], {"type": "array", "minItems": 1}, [Problem("", "must not be empty")]),
    ([1, 2, 3], {"type": "array", "maxItems": 2}, [Problem("", "holds 3 items; at most 2 per file")]),
    ([1, "x"], {"type": "array", "items": {"type": "integer"}},
     [Problem("/1", "expected a whole number, got string 'x'")]),
    # strings
    ("", {"type": "string", "minLength": 1}, [Problem("", "must not be empty")]),
    ("abc", {"type": "string", "maxLength": 2}, [Problem("", "longer than 2 characters")]),
    ("a-b", {"type": "string", "pattern": "^[a-z]+$"}, [Problem("", "'a-b' does not match ^[a-z]+$")]),
    ("2024-13-01", {"type": "string", "format": "date"}, [Problem("", "'2024-13-01' is not a calendar date")]),
    ("2024-03-01T25:00:00Z", {"type": "string", "format": "date-time"},
     [Problem("", "'2024-03-01T25:00:00Z' is not a valid date and time")]),
    # decimals, as numbers or strings
    ("12.30", MONEY, []),
    (Decimal("12.3"), MONEY, []),
    ("0.001", MONEY, [Problem("", "at most 2 decimal places, got '0.001'")]),
    ("-1", MONEY, [Problem("", "must be greater than 0")]),
    ("1e3", MONEY, [Problem("", "expected a decimal number such as 1234.56 or \"1234.56\", got '1e3'")]),
])
def test_validate_keyword_reports_path_and_reason(value, schema, expected):
    assert validate(value, schema) == expected


def test_validate_duplicate_keys_are_reported_at_their_path():
    obj = JsonObject({"a": 1})
    obj.duplicate_keys = ("a",)

    assert validate(obj, {"type": "object"}, "/x") == [Problem("/x/a", "appears twice in the same object")]


def test_validate_nested_paths_are_json_pointers():
    doc = dict(ETF_FLOWS_EXAMPLE, flows=[*ETF_FLOWS_EXAMPLE["flows"], {"date": "2024-03-11", "fund": "X"}])

    assert validate(doc, ETF_FLOWS_SCHEMA) == [Problem("/flows/4/net_flow_usd", "required")]


def test_pointer_escapes_tilde_and_slash():
    assert pointer("/a", "m~n/o") == "/a/m~0n~1o"


def test_problem_str_names_file_for_root_path():
    assert str(Problem("", "empty")) == "file: empty"


@pytest.mark.parametrize(("text", "places"), [("1", 0), ("1.50", 1), ("0.000", 0), ("1E+3", 0), ("1.0000000001", 10)])
def test_decimal_places_ignores_trailing_zeros(text, places):
    assert decimal_places(Decimal(text)) == places


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**20, max_value=10**20))
def test_decimal_places_never_exceeds_quantized_places(value):
    assert decimal_places(value) <= 4


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**17, max_value=10**17))
def test_to_decimal_string_round_trip_is_exact(value):
    assert to_decimal(f"{value:f}") == value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_validate_any_json_value_returns_problems_without_raising(value):
    for schema in (ETF_FLOWS_SCHEMA, LIQUIDATION_ZONES_SCHEMA):
        assert all(isinstance(p, Problem) for p in validate(value, schema))
