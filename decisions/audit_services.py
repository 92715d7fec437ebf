"""Writes and checks of the audit log: the Django shell around decisions.audit."""
from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connections, router, transaction

from decisions.audit import GENESIS_HASH, Anchor, AuditEntry, Problem, next_entry, verify_chain
from decisions.models import AuditHead, AuditRecord
from tradingbot.compiled_reads import models_compiled
from tradingbot.upsert import rows_insert

logger = logging.getLogger(__name__)

HEAD_PK = 1
ENGINE = "engine"


@dataclass(frozen=True, slots=True)
class AuditReport:
    count: int
    last_seq: int
    last_hash: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def anchor(self) -> str:
        """Return "seq:hash" of the last record, the form `verify_audit --expect` takes."""
        return f"{self.last_seq}:{self.last_hash}"


def _head_locked() -> AuditHead:
    # Compiled once (tradingbot.compiled_reads): every cycle appends, often more than once.
    found = models_compiled("audit head locked", AuditHead, _head_locked_read)
    if found:
        return found[0]
    # Migration 0004 creates the head; this path only rebuilds a deleted one (or a flushed test
    # table). Two processes doing so at the same moment can deadlock on MariaDB: one fails, retry.
    last = AuditRecord.objects.order_by("-seq").first()
    AuditHead.objects.bulk_create(
        [AuditHead(pk=HEAD_PK, seq=last.seq if last else 0, hash=last.hash if last else GENESIS_HASH)],
        ignore_conflicts=True,
    )
    return AuditHead.objects.select_for_update().get(pk=HEAD_PK)


def _head_locked_read():
    return AuditHead.objects.select_for_update().filter(pk=HEAD_PK)


def audit_append(*, kind: str, actor: str, subject: str, body: Mapping, now: datetime) -> AuditRecord:
    """Append one record to the hash chain and return it.

    `now` is aware; `body` holds JSON types, Decimal, date and aware datetimes (stored in their
    canonical form). Appenders queue on the head row (MariaDB: SELECT ... FOR UPDATE; SQLite:
    the IMMEDIATE write lock) until the outermost transaction commits, so the chain cannot fork;
    keep a transaction that appends short.
    """
    return audit_extend([(kind, actor, subject, body)], now=now)[0]


def audit_extend(records: Sequence[tuple[str, str, str, Mapping]], *, now: datetime) -> list[AuditRecord]:
    """Append (kind, actor, subject, body) records in order, locking the head once; return them.

    The same chain as one `audit_append` per record, in three statements for any number of them.
    """
    return _extend([(kind, actor, subject, body, now) for kind, actor, subject, body in records])


def _extend(records: Sequence[tuple[str, str, str, Mapping, datetime]]) -> list[AuditRecord]:
    """Append (kind, actor, subject, body, ts) records in order under one lock of the head."""
    # No savepoint inside a caller's transaction: a failed append must undo the caller's work too.
    with transaction.atomic(savepoint=False):
        head = _head_locked()
        rows, seq, last = [], head.seq, head.hash
        for kind, actor, subject, body, ts in records:
            entry = next_entry(prev_seq=seq, prev_hash=last, ts=ts, kind=kind, actor=actor, subject=subject,
                               body=body)
            rows.append(AuditRecord(seq=entry.seq, ts=entry.ts, kind=entry.kind, actor=entry.actor,
                                    subject=entry.subject, body=entry.body, prev_hash=entry.prev_hash,
                                    hash=entry.hash))
            seq, last = entry.seq, entry.hash
        rows_insert(AuditRecord, rows)   # bulk_create's statement without its preparation: every cycle appends
        _head_move(seq, last)
    return rows


def _head_move(seq: int, last_hash: str) -> None:
    """Point the locked head at the last record: one plain UPDATE (a model save built it every time)."""
    alias = router.db_for_write(AuditHead)
    connection = connections[alias]
    qn = connection.ops.quote_name
    opts = AuditHead._meta
    table, seq_column, hash_column, pk_column = (qn(opts.db_table), qn(opts.get_field("seq").column),
                                                 qn(opts.get_field("hash").column), qn(opts.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {seq_column} = %s, {hash_column} = %s WHERE {pk_column} = %s",
                       [seq, last_hash, HEAD_PK])


@dataclass
class AuditBatch:
    """Records of one transaction's changes, queued to be appended together (see `audit_batched`)."""

    records: list[tuple[str, str, str, Mapping, datetime]] = field(default_factory=list)

    def add(self, *, kind: str, actor: str, subject: str, body: Mapping, now: datetime) -> None:
        """Queue one record; it is appended, after the ones queued before it, when the batch closes."""
        self.records.append((kind, actor, subject, body, now))


@contextmanager
def audit_batched(join: AuditBatch | None = None) -> Iterator[AuditBatch]:
    """Open inside a transaction; on leaving it normally, append every queued record with one head lock.

    The records reach the chain in the transaction of the changes they describe, before it
    commits: nothing is committed un-audited, and an exception drops the queue with the rollback.
    Records queued inside a savepoint that is rolled back while the block goes on would survive
    it, so queue only from code that lets its exceptions propagate out of the block.

    `join`: the batch of an enclosing block (the decision's transaction taking its paper entry),
    which queues the records and appends them when it ends. Leaving the joined block by an
    exception drops the records queued inside it, as the savepoint that must wrap it drops its
    changes: the enclosing batch goes on with what came before.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("audit_batched() needs an open transaction")
    if join is not None:
        mark = len(join.records)
        try:
            yield join
        except BaseException:
            del join.records[mark:]
            raise
        return
    batch = AuditBatch()
    yield batch
    if batch.records:
        _extend(batch.records)


def audit_entries() -> Iterator[AuditEntry]:
    """Yield every stored record in seq order as core entries."""
    fields = ("seq", "ts", "kind", "actor", "subject", "body", "prev_hash", "hash")
    for row in AuditRecord.objects.order_by("seq").values_list(*fields).iterator(chunk_size=2000):
        yield AuditEntry(*row)


def audit_verify(*, anchors: Sequence[Anchor] = ()) -> AuditReport:
    """Check the whole chain against itself, the stored head and `anchors` kept elsewhere."""
    entries = list(audit_entries())
    head = AuditHead.objects.filter(pk=HEAD_PK).first()
    all_anchors = [*anchors, *([Anchor(seq=head.seq, hash=head.hash, last=True)] if head else [])]
    last = entries[-1] if entries else None
    return AuditReport(count=len(entries), last_seq=last.seq if last else 0,
                       last_hash=last.hash if last else GENESIS_HASH,
                       problems=tuple(verify_chain(entries, all_anchors)))


def git_commit() -> str:
    """Return the running code's commit: `git rev-parse HEAD` in BASE_DIR, else $GIT_COMMIT, else 'unknown'."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True,
                              text=True, timeout=5, check=True)
        commit = done.stdout.strip()
        if len(commit) == 40:
            return commit
    except (OSError, subprocess.SubprocessError):
        pass  # no git binary or no checkout (an image built without .git): try the variable
    return os.environ.get("GIT_COMMIT", "").strip() or "unknown"


def startup_card(*, mode: str, broker: str, limits: Mapping, now: datetime) -> AuditRecord:
    """Record the version, mode, broker and limits a process starts with; log the chain's anchor."""
    record = audit_append(kind=AuditRecord.Kind.STARTUP, actor=ENGINE, subject="startup",
                          body={"version": git_commit(), "mode": mode, "broker": broker, "limits": limits}, now=now)
    # The log line lives outside the database: an operator who keeps it can later prove that no
    # record up to this one was deleted or rewritten (verify_audit --expect seq:hash).
    transaction.on_commit(lambda: logger.info("audit anchor %s:%s (start-up card)", record.seq, record.hash))
    return record


MODE_FIELDS = ("mode", "paused", "safe_until")


def config_change_audit(*, config, changed: Sequence[str], initial: Mapping, actor: str, now: datetime,
                        reason: str = "") -> None:
    """Append a mode_change and/or limit_change record for the changed fields of the trading configuration."""
    for kind, names in ((AuditRecord.Kind.MODE_CHANGE, [n for n in changed if n in MODE_FIELDS]),
                        (AuditRecord.Kind.LIMIT_CHANGE, [n for n in changed if n not in MODE_FIELDS])):
        if names:
            body = {name: {"from": initial.get(name), "to": getattr(config, name)} for name in names}
            body.update(reason=reason, config_version=config.version)
            audit_append(kind=kind, actor=actor, subject=f"config:{config.pk}", body=body, now=now)
