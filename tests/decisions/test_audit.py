"""The audit hash chain: canonical form, hashes and where each kind of tampering shows."""
import hashlib
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal as D
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.audit import (
    GENESIS_HASH,
    Anchor,
    AuditEntry,
    Problem,
    ProblemKind,
    canonical_json,
    entry_hash,
    entry_payload,
    next_entry,
    verify_chain,
)

T0 = datetime(2025, 7, 8, 12, 0, tzinfo=UTC)


def build_chain(n: int) -> list[AuditEntry]:
    rows, seq, prev = [], 0, GENESIS_HASH
    for k in range(n):
        row = next_entry(prev_seq=seq, prev_hash=prev, ts=T0 + timedelta(minutes=k), kind="decision",
                         actor="engine", subject=f"decision:{k + 1}", body={"n": k, "qty": D("0.010")})
        rows.append(row)
        seq, prev = row.seq, row.hash
    return rows


def swap_contents(rows: list[AuditEntry], a: int, b: int) -> list[AuditEntry]:
    """Swap two rows' seq values, as UPDATE ... SET seq would: each keeps its fields and hash."""
    out = list(rows)
    out[a - 1], out[b - 1] = replace(rows[b - 1], seq=a), replace(rows[a - 1], seq=b)
    return out


def insert_renumbered(rows: list[AuditEntry], at_seq: int, forged: AuditEntry) -> list[AuditEntry]:
    """Insert `forged` at `at_seq` and push the later rows one seq down, as a forger must."""
    k = at_seq - 1
    return rows[:k] + [replace(forged, seq=at_seq)] + [replace(r, seq=r.seq + 1) for r in rows[k:]]


def kinds(problems: list[Problem]) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in problems]


class Colour(StrEnum):
    RED = "red"


# Canonical form: one text per value, whatever order or type it came in.

def test_canonical_json_sorts_keys_without_spaces():
    assert canonical_json({"b": 1, "a": [1, 2], "c": {"z": None, "y": True}}) == \
        '{"a":[1,2],"b":1,"c":{"y":true,"z":null}}'


@pytest.mark.parametrize(("value", "text"), [
    # Decimal: exact digits, no exponent, trailing zeros kept
    (D("0.0050"), '"0.0050"'),
    (D("1E+2"), '"100"'),
    (D("-12.5"), '"-12.5"'),
    # datetimes: UTC with microseconds, whatever zone they came in
    (datetime(2025, 7, 8, 14, 0, tzinfo=timezone(timedelta(hours=2))), '"2025-07-08T12:00:00.000000+00:00"'),
    (date(2025, 7, 8), '"2025-07-08"'),
    # enums and tuples become their plain values
    (Colour.RED, '"red"'),
    ((1, "a"), '[1,"a"]'),
    ("zażółć", '"za\\u017c\\u00f3\\u0142\\u0107"'),
])
def test_canonical_json_renders_value_one_way(value, text):
    assert canonical_json(value) == text


@pytest.mark.parametrize(("value", "error", "match"), [
    (datetime(2025, 7, 8, 12, 0), ValueError, "timezone-aware"),
    (float("nan"), ValueError, "finite"),
    (D("Infinity"), ValueError, "finite"),
    ({1: "a"}, TypeError, "keys must be strings"),
    ({"a": {1, 2}}, TypeError, "cannot put set"),
])
def test_canonical_json_ambiguous_value_raises(value, error, match):
    with pytest.raises(error, match=match):
        canonical_json(value)


def test_entry_hash_is_sha256_of_prev_hash_and_payload():
    payload = entry_payload(seq=1, ts=T0, kind="startup", actor="engine", subject="startup", body={})

    assert entry_hash(GENESIS_HASH, payload) == hashlib.sha256((GENESIS_HASH + payload).encode()).hexdigest()
    assert payload == ('{"actor":"engine","body":{},"kind":"startup","seq":1,"subject":"startup",'
                       '"ts":"2025-07-08T12:00:00.000000+00:00"}')


def test_next_entry_first_record_continues_from_genesis():
    row = next_entry(prev_seq=0, prev_hash=GENESIS_HASH, ts=T0, kind="startup", actor="engine", subject="startup",
                     body={"at": T0, "qty": D("1.50")})

    assert (row.seq, row.prev_hash, len(row.hash)) == (1, GENESIS_HASH, 64)
    assert row.body == {"at": "2025-07-08T12:00:00.000000+00:00", "qty": "1.50"}


def test_next_entry_body_not_a_mapping_raises():
    with pytest.raises(TypeError, match="mapping"):
        next_entry(prev_seq=0, prev_hash=GENESIS_HASH, ts=T0, kind="x", actor="a", subject="s", body=[1])


# Intact chains verify, including after a JSON round trip through the database.

def test_verify_chain_intact_chain_returns_no_problems():
    assert verify_chain(build_chain(6)) == []


def test_verify_chain_empty_chain_returns_no_problems():
    assert verify_chain([]) == []


def test_verify_chain_body_after_json_round_trip_still_verifies():
    rows = [replace(r, body=json.loads(json.dumps(r.body))) for r in build_chain(4)]

    assert verify_chain(rows) == []


def test_verify_chain_rows_in_any_list_order_verify_by_seq():
    assert verify_chain(list(reversed(build_chain(4)))) == []


# Edits: the edited record is named, once.

@pytest.mark.parametrize("field, value", [
    ("body", {"n": 2, "qty": "99"}),
    ("actor", "mallory"),
    ("kind", "approval"),
    ("subject", "decision:999"),
    ("ts", T0 - timedelta(days=1)),
])
def test_verify_chain_edited_field_reports_edited_at_that_seq(field, value):
    rows = build_chain(6)
    rows[2] = replace(rows[2], **{field: value})

    assert kinds(verify_chain(rows)) == [(3, ProblemKind.EDITED)]


def test_verify_chain_edited_hash_reports_edited_once():
    rows = build_chain(6)
    rows[2] = replace(rows[2], hash="f" * 64)

    assert kinds(verify_chain(rows)) == [(3, ProblemKind.EDITED)]


def test_verify_chain_edit_with_recomputed_hash_reports_edited_record():
    rows = build_chain(6)
    old = rows[2]
    rows[2] = next_entry(prev_seq=2, prev_hash=old.prev_hash, ts=old.ts, kind=old.kind, actor=old.actor,
                         subject=old.subject, body={"n": 2, "qty": "99"})

    problems = verify_chain(rows)

    assert kinds(problems) == [(3, ProblemKind.EDITED)]
    assert "hash rewritten" in problems[0].detail


def test_verify_chain_forged_first_record_reports_edited_at_one():
    rows = build_chain(3)
    rows[0] = next_entry(prev_seq=0, prev_hash="a" * 64, ts=T0, kind="decision", actor="x", subject="s", body={})
    rows[1] = replace(rows[1], prev_hash=rows[0].hash)  # even with the next link repaired

    assert (1, ProblemKind.EDITED) in kinds(verify_chain(rows))


# Removals: a gap names the missing seqs; the tail needs an anchor kept outside the table.

def test_verify_chain_deleted_middle_record_reports_removed_seq():
    rows = build_chain(6)
    del rows[2]

    problems = verify_chain(rows)

    assert kinds(problems) == [(3, ProblemKind.REMOVED)]
    assert problems[0].detail == "seq 3 missing before seq 4"


def test_verify_chain_deleted_run_names_the_range():
    rows = build_chain(8)
    del rows[2:5]

    assert verify_chain(rows)[0].detail == "seq 3..5 missing before seq 6"


def test_verify_chain_deleted_first_record_reports_removed_at_one():
    assert kinds(verify_chain(build_chain(4)[1:])) == [(1, ProblemKind.REMOVED)]


def test_verify_chain_deleted_last_record_is_invisible_without_anchor():
    # Honest limit: the remaining rows are a valid chain; only an anchor kept elsewhere shows the loss.
    assert verify_chain(build_chain(5)[:-1]) == []


def test_verify_chain_deleted_last_record_reports_removed_against_anchor():
    rows = build_chain(5)

    problems = verify_chain(rows[:-1], anchors=[Anchor(seq=5, hash=rows[-1].hash)])

    assert kinds(problems) == [(5, ProblemKind.REMOVED)]
    assert "tail was deleted" in problems[0].detail


def test_verify_chain_rewritten_chain_reports_edited_against_anchor():
    rows = build_chain(5)
    anchor = Anchor(seq=3, hash=rows[2].hash)
    forged, seq, prev = [], 0, GENESIS_HASH
    for row in rows:  # a forger who rebuilds every hash after changing seq 2
        body = {"n": 99} if row.seq == 2 else row.body
        new = next_entry(prev_seq=seq, prev_hash=prev, ts=row.ts, kind=row.kind, actor=row.actor,
                         subject=row.subject, body=body)
        forged.append(new)
        seq, prev = new.seq, new.hash

    assert verify_chain(forged) == []
    assert kinds(verify_chain(forged, anchors=[anchor])) == [(3, ProblemKind.EDITED)]


def test_verify_chain_matching_anchor_reports_nothing():
    rows = build_chain(5)

    assert verify_chain(rows, anchors=[Anchor(seq=5, hash=rows[-1].hash, last=True)]) == []


# Reordering: both displaced records are named, with the seq each was written at.

@pytest.mark.parametrize(("a", "b"), [(2, 5), (3, 4), (1, 6)])
def test_verify_chain_swapped_records_report_reordered_at_both(a, b):
    problems = verify_chain(swap_contents(build_chain(6), a, b))

    assert kinds(problems) == [(a, ProblemKind.REORDERED), (b, ProblemKind.REORDERED)]
    assert problems[0].detail == f"holds the record written as seq {b}"


# Insertions: a forged record that nothing continues from.

def test_verify_chain_forged_record_with_valid_hash_reports_inserted_once():
    rows = build_chain(6)
    forged = next_entry(prev_seq=2, prev_hash=rows[1].hash, ts=rows[1].ts, kind="approval", actor="mallory",
                        subject="decision:2", body={"approved": True})

    assert kinds(verify_chain(insert_renumbered(rows, 3, forged))) == [(3, ProblemKind.INSERTED)]


def test_verify_chain_forged_record_with_made_up_hash_reports_inserted():
    rows = build_chain(6)
    forged = replace(rows[1], actor="mallory", prev_hash="1" * 64, hash="2" * 64)

    assert kinds(verify_chain(insert_renumbered(rows, 3, forged))) == [(3, ProblemKind.INSERTED)]


def test_verify_chain_forged_tail_record_reports_inserted_against_head_anchor():
    rows = build_chain(4)
    head = Anchor(seq=4, hash=rows[-1].hash, last=True)
    forged = next_entry(prev_seq=4, prev_hash=rows[-1].hash, ts=T0, kind="approval", actor="mallory",
                        subject="decision:4", body={})

    assert verify_chain(rows + [forged]) == []
    assert kinds(verify_chain(rows + [forged], anchors=[head])) == [(5, ProblemKind.INSERTED)]


# Invariant: any single edit of any record is found at that record.

@given(n=st.integers(2, 12), data=st.data())
def test_verify_chain_any_single_body_edit_found_at_its_seq(n, data):
    rows = build_chain(n)
    k = data.draw(st.integers(0, n - 1))
    rows[k] = replace(rows[k], body={**rows[k].body, "n": data.draw(st.integers(100, 10**6))})

    assert kinds(verify_chain(rows)) == [(k + 1, ProblemKind.EDITED)]


_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text() | st.decimals(allow_nan=False, allow_infinity=False)
           | st.datetimes(timezones=st.just(UTC)) | st.sampled_from(list(Colour)))
_bodies = st.dictionaries(st.text(), st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4)
                                                  | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20),
                          max_size=6)


@given(body=_bodies, kind=st.sampled_from(["decision", Colour.RED]), subject=st.text())
def test_next_entry_hash_is_the_hash_of_entry_payload_of_its_fields(body, kind, subject):
    # next_entry writes the payload without walking the body twice: the text must be entry_payload's.
    row = next_entry(prev_seq=6, prev_hash=GENESIS_HASH, ts=T0, kind=kind, actor="engine", subject=subject, body=body)

    assert row.hash == entry_hash(GENESIS_HASH, entry_payload(seq=7, ts=T0, kind=kind, actor="engine",
                                                              subject=subject, body=body))
