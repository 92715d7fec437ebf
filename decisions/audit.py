"""The audit log's hash chain: canonical JSON, record hashes and tamper classification.

Pure: no Django, no I/O, no clock. docs/AUDIT.md describes the format; changing anything here
changes every hash, so old chains would no longer verify.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum

# The prev_hash of the first record (seq 1).
GENESIS_HASH = "0" * 64


class ProblemKind(StrEnum):
    EDITED = "edited"          # a record's fields, or its hash, no longer match what was written
    REMOVED = "removed"        # records are missing: a seq gap, or the tail against an anchor
    REORDERED = "reordered"    # an intact record sits at a seq it was not written at
    INSERTED = "inserted"      # a record the chain does not continue from


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: datetime
    kind: str
    actor: str
    subject: str
    body: Mapping
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A (seq, hash) pair kept outside the table; `last` says no record may follow it."""

    seq: int
    hash: str
    last: bool = False


def to_json_value(value):
    """Return `value` as plain JSON types in the one form the chain hashes and stores.

    Decimal -> its exact digits without exponent (format "f", trailing zeros kept);
    aware datetime -> UTC ISO 8601 with microseconds ("2025-07-08T12:00:00.000000+00:00");
    date -> ISO 8601; Enum -> its value; tuple -> list. Naive datetimes, non-finite numbers,
    non-string keys and other types raise, so nothing ambiguous is ever hashed.
    """
    if isinstance(value, Enum):
        value = value.value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value[:])  # a str subclass (TextChoices) becomes a plain str
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit values must be finite, got {value!r}")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"audit values must be finite, got {value!r}")
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"audit datetimes must be timezone-aware, got {value!r}")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_key(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    raise TypeError(f"cannot put {type(value).__name__} into the audit log: {value!r}")


def _key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"audit body keys must be strings, got {key!r}")
    return str(key[:])


def canonical_json(value) -> str:
    """Return the canonical JSON text of `value`: sorted keys, no spaces, ASCII only."""
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def entry_payload(*, seq: int, ts: datetime, kind: str, actor: str, subject: str, body: Mapping) -> str:
    """Return the canonical text of every field a record's hash covers."""
    return canonical_json({"seq": seq, "ts": ts, "kind": kind, "actor": actor, "subject": subject, "body": body})


def entry_hash(prev_hash: str, payload: str) -> str:
    """Return sha256(prev_hash + payload) as 64 lowercase hex digits."""
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def next_entry(*, prev_seq: int, prev_hash: str, ts: datetime, kind: str, actor: str, subject: str,
               body: Mapping) -> AuditEntry:
    """Return the record that follows (prev_seq, prev_hash); use (0, GENESIS_HASH) for the first."""
    if not isinstance(body, Mapping):
        raise TypeError(f"an audit body is a mapping, got {type(body).__name__}")
    seq = prev_seq + 1
    plain_body = to_json_value(body)
    # entry_payload's text, without walking the body a second time: it is plain JSON types already,
    # which to_json_value returns as they are (every record of every cycle goes through here).
    payload = json.dumps({"seq": seq, "ts": to_json_value(ts), "kind": to_json_value(kind),
                          "actor": to_json_value(actor), "subject": to_json_value(subject), "body": plain_body},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return AuditEntry(seq=seq, ts=ts, kind=str(kind), actor=actor, subject=subject, body=plain_body,
                      prev_hash=prev_hash, hash=entry_hash(prev_hash, payload))


def _hash_at(entry: AuditEntry, seq: int) -> str:
    payload = entry_payload(seq=seq, ts=entry.ts, kind=entry.kind, actor=entry.actor, subject=entry.subject,
                            body=entry.body)
    return entry_hash(entry.prev_hash, payload)


class _Chain:
    """The rows in seq order with the lookups the classification needs."""

    def __init__(self, rows: list[AuditEntry]):
        self.rows = rows
        self.position = {row.hash: i for i, row in enumerate(rows)}
        self.referenced = {row.prev_hash for row in rows}
        self._origins: dict[int, int | None] = {}

    def origin(self, i: int, seen: frozenset = frozenset()) -> int | None:
        """Return the seq row i's fields and hash agree at, or None when its content was changed."""
        if i in self._origins:
            return self._origins[i]
        row = self.rows[i]
        found = None
        if _hash_at(row, row.seq) == row.hash:
            found = row.seq
        else:
            # A moved row still hashes correctly at the seq after the row its prev_hash names.
            j = self.position.get(row.prev_hash)
            before = 0 if row.prev_hash == GENESIS_HASH else (
                self.origin(j, seen | {i}) if j is not None and j not in seen | {i} else None)
            if before is not None and _hash_at(row, before + 1) == row.hash:
                found = before + 1
        self._origins[i] = found
        return found

    def followed_past(self, i: int) -> bool:
        """Return whether no row continues from row i and the next row continues from an earlier one."""
        if i + 1 >= len(self.rows) or self.rows[i].hash in self.referenced:
            return False
        nxt = self.rows[i + 1].prev_hash
        return nxt == GENESIS_HASH or self.position.get(nxt, i) < i


def verify_chain(records: Sequence[AuditEntry], anchors: Sequence[Anchor] = ()) -> list[Problem]:
    """Return the chain's problems in seq order; empty when every record is as written.

    Rows are taken in seq order. The first problem is the first bad record; a problem that only
    follows from an earlier one (the link after an edited or moved row) is not repeated.
    """
    chain = _Chain(sorted(records, key=lambda r: r.seq))
    problems: list[Problem] = []
    flagged: set[int] = set()
    shift = 0  # rows after an inserted row sit that many seqs later than they were written
    for i, row in enumerate(chain.rows):
        found, shift = _check_row(chain, i, shift)
        if found:
            flagged.add(i)
            problems.extend(found)
        elif not _linked(chain, i) and not _explained(chain, i, flagged):
            if i == 0:
                problems.append(Problem(row.seq, ProblemKind.EDITED, "the first record does not continue from "
                                                                     "the genesis hash"))
                continue
            prev = chain.rows[i - 1]
            problems.append(Problem(prev.seq, ProblemKind.EDITED,
                                    f"hash rewritten: seq {row.seq} continues from {row.prev_hash[:12]}..., "
                                    f"seq {prev.seq} now has {prev.hash[:12]}..."))
            flagged.add(i - 1)
    problems.extend(_check_anchors(chain.rows, anchors))
    return sorted(_first_of_each(problems), key=lambda p: p.seq)


def _first_of_each(problems: list[Problem]) -> list[Problem]:
    # The walk's wording wins over an anchor's for the same (seq, kind).
    seen: set[tuple[int, ProblemKind]] = set()
    return [p for p in problems if (p.seq, p.kind) not in seen and not seen.add((p.seq, p.kind))]


def _check_row(chain: _Chain, i: int, shift: int) -> tuple[list[Problem], int]:
    row = chain.rows[i]
    expected_seq = chain.rows[i - 1].seq + 1 if i else 1
    found = []
    if row.seq > expected_seq:
        missing = f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}..{row.seq - 1}"
        found.append(Problem(expected_seq, ProblemKind.REMOVED, f"seq {missing} missing before seq {row.seq}"))
    if chain.followed_past(i):
        found.append(Problem(row.seq, ProblemKind.INSERTED, "no record continues from it; the next record "
                                                            "continues from an earlier one"))
        return found, shift + 1
    origin = chain.origin(i)
    if origin is None:
        found.append(Problem(row.seq, ProblemKind.EDITED, "its fields no longer match its hash"))
    elif row.seq - origin not in (0, shift):
        found.append(Problem(row.seq, ProblemKind.REORDERED, f"holds the record written as seq {origin}"))
    return found, shift


def _linked(chain: _Chain, i: int) -> bool:
    expected = chain.rows[i - 1].hash if i else GENESIS_HASH
    return chain.rows[i].prev_hash == expected


def _explained(chain: _Chain, i: int, flagged: set[int]) -> bool:
    """Return whether row i's broken link follows from a problem already reported."""
    if i == 0:
        return False
    if (i - 1) in flagged:
        return True
    j = chain.position.get(chain.rows[i].prev_hash)
    # Rows between the one it continues from and itself were all reported (inserted).
    return j is not None and j < i - 1 and all(k in flagged for k in range(j + 1, i))


def _check_anchors(rows: list[AuditEntry], anchors: Sequence[Anchor]) -> list[Problem]:
    by_seq = {row.seq: row for row in rows}
    by_hash = {row.hash: row for row in rows}
    last_seq = rows[-1].seq if rows else 0
    problems = []
    for anchor in anchors:
        # Found at another seq: renumbered around an insertion or removal the walk already named.
        held = by_hash.get(anchor.hash)
        row = by_seq.get(anchor.seq)
        if held is None and row is None and anchor.seq > last_seq:
            problems.append(Problem(last_seq + 1, ProblemKind.REMOVED,
                                    f"the log ends at seq {last_seq} but the anchor names seq {anchor.seq}: "
                                    f"the tail was deleted"))
        elif held is None and row is not None:
            problems.append(Problem(anchor.seq, ProblemKind.EDITED,
                                    f"hash {row.hash[:12]}... differs from the anchor {anchor.hash[:12]}...: "
                                    f"the chain was rewritten up to here"))
        end = held.seq if held is not None else anchor.seq
        if anchor.last and last_seq > end:
            problems.append(Problem(end + 1, ProblemKind.INSERTED,
                                    f"seq {end + 1}..{last_seq} follow the recorded head seq {anchor.seq}"))
    return problems
