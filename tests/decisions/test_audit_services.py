"""Appending to and verifying the stored audit chain, including tampering done in raw SQL."""
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from decisions.audit import GENESIS_HASH, Anchor, ProblemKind
from decisions.audit_services import audit_append, audit_extend, audit_verify, git_commit, startup_card
from decisions.models import AuditHead, AuditRecord

T0 = datetime(2025, 7, 8, 12, 0, tzinfo=UTC)
TABLE = AuditRecord._meta.db_table


def append_many(n: int, start: int = 0) -> list[AuditRecord]:
    return [audit_append(kind="decision", actor="engine", subject=f"decision:{k}", now=T0 + timedelta(seconds=k),
                         body={"action": "LONG", "qty": D("0.010"), "as_of": T0, "k": k})
            for k in range(start, start + n)]


def sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement.replace("{table}", connection.ops.quote_name(TABLE)), params)


def kinds(report) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in report.problems]


@pytest.mark.django_db
def test_audit_append_links_records_from_genesis():
    first, second = append_many(2)

    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (AuditHead.objects.get().seq, AuditHead.objects.get().hash) == (2, second.hash)


@pytest.mark.django_db
def test_audit_extend_is_three_statements_and_returns_the_stored_records_with_their_pks():
    append_many(1)
    with CaptureQueriesContext(connection) as queries:
        rows = audit_extend([("decision", "engine", "decision:1", {"n": 1}), ("gate", "engine", "decision:1", {"n": 2})],
                            now=datetime(2026, 11, 26, tzinfo=UTC))

    # The head locked and read, the records in one insert, the head moved: nothing else.
    assert [q["sql"].split()[0] for q in queries.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))] == ["SELECT", "INSERT", "UPDATE"]
    stored = list(AuditRecord.objects.filter(seq__gt=1).order_by("seq").values_list("pk", "seq", "hash"))
    assert [(r.pk, r.seq, r.hash) for r in rows] == stored and all(r.pk for r in rows)
    assert (AuditHead.objects.get().seq, AuditHead.objects.get().hash) == (3, rows[-1].hash)
    assert audit_verify().ok


@pytest.mark.django_db
def test_audit_append_stores_body_in_canonical_form():
    record = append_many(1)[0]

    record.refresh_from_db()
    assert record.body == {"action": "LONG", "qty": "0.010", "as_of": "2025-07-08T12:00:00.000000+00:00", "k": 0}


@pytest.mark.django_db
def test_audit_verify_untouched_chain_is_ok():
    records = append_many(5)

    report = audit_verify()

    assert report.ok and (report.count, report.last_seq, report.last_hash) == (5, 5, records[-1].hash)
    assert report.anchor == f"5:{records[-1].hash}"


@pytest.mark.django_db
def test_audit_verify_empty_log_is_ok():
    assert audit_verify().ok and audit_verify().count == 0


@pytest.mark.django_db
def test_audit_verify_body_updated_in_sql_reports_edited():
    append_many(5)
    sql("UPDATE {table} SET body = %s WHERE seq = %s", json.dumps({"action": "SHORT"}), 3)

    assert kinds(audit_verify()) == [(3, ProblemKind.EDITED)]


@pytest.mark.django_db
def test_audit_verify_actor_updated_in_sql_reports_edited():
    append_many(5)
    sql("UPDATE {table} SET actor = %s WHERE seq = %s", "mallory", 2)

    assert kinds(audit_verify()) == [(2, ProblemKind.EDITED)]


@pytest.mark.django_db
def test_audit_verify_middle_row_deleted_in_sql_reports_removed():
    append_many(5)
    sql("DELETE FROM {table} WHERE seq = %s", 3)

    assert kinds(audit_verify()) == [(3, ProblemKind.REMOVED)]


@pytest.mark.django_db
def test_audit_verify_last_row_deleted_in_sql_reports_removed_against_head():
    append_many(5)
    sql("DELETE FROM {table} WHERE seq = %s", 5)

    assert kinds(audit_verify()) == [(5, ProblemKind.REMOVED)]


@pytest.mark.django_db
def test_audit_verify_tail_and_head_rewound_needs_external_anchor():
    records = append_many(5)
    sql("DELETE FROM {table} WHERE seq = %s", 5)
    AuditHead.objects.update(seq=4, hash=records[3].hash)  # a careful forger rewinds the head too

    assert audit_verify().ok
    assert kinds(audit_verify(anchors=[Anchor(seq=5, hash=records[4].hash)])) == [(5, ProblemKind.REMOVED)]


@pytest.mark.django_db
def test_audit_append_after_deleted_tail_keeps_the_gap_visible():
    append_many(5)
    sql("DELETE FROM {table} WHERE seq = %s", 5)

    assert append_many(1, start=9)[0].seq == 6
    assert kinds(audit_verify()) == [(5, ProblemKind.REMOVED)]


@pytest.mark.django_db
def test_audit_verify_seqs_swapped_in_sql_reports_reordered_at_both():
    append_many(6)
    sql("UPDATE {table} SET seq = %s WHERE seq = %s", 1000, 2)
    sql("UPDATE {table} SET seq = %s WHERE seq = %s", 2, 5)
    sql("UPDATE {table} SET seq = %s WHERE seq = %s", 5, 1000)

    assert kinds(audit_verify()) == [(2, ProblemKind.REORDERED), (5, ProblemKind.REORDERED)]


@pytest.mark.django_db
def test_audit_verify_row_inserted_in_sql_reports_inserted():
    records = append_many(5)
    for seq in range(5, 2, -1):  # make room at seq 3, last first so seq stays unique
        sql("UPDATE {table} SET seq = %s WHERE seq = %s", seq + 1, seq)
    sql("INSERT INTO {table} (seq, ts, kind, actor, subject, body, prev_hash, hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        3, T0, "approval", "mallory", "decision:2", "{}", records[1].hash, "e" * 64)

    assert kinds(audit_verify()) == [(3, ProblemKind.INSERTED)]


@pytest.mark.django_db
def test_audit_append_without_head_row_continues_from_last_record():
    records = append_many(3)
    AuditHead.objects.all().delete()

    assert append_many(1)[0].prev_hash == records[-1].hash
    assert audit_verify().ok


@pytest.mark.django_db
def test_startup_card_records_version_mode_broker_and_limits():
    record = startup_card(mode="SAFE", broker="paper", limits={"daily_loss_limit_fraction": D("0.02")}, now=T0)

    assert (record.kind, record.actor, record.subject) == ("startup", "engine", "startup")
    assert record.body["limits"] == {"daily_loss_limit_fraction": "0.02"}
    assert (record.body["mode"], record.body["broker"]) == ("SAFE", "paper")
    assert record.body["version"] == git_commit()


@pytest.mark.django_db
def test_startup_card_logs_anchor_after_commit(django_capture_on_commit_callbacks, caplog):
    with caplog.at_level(logging.INFO, logger="decisions.audit_services"):
        with django_capture_on_commit_callbacks(execute=True):
            record = startup_card(mode="ON", broker="paper", limits={}, now=T0)

    assert f"audit anchor {record.seq}:{record.hash}" in caplog.text


def test_git_commit_in_a_checkout_returns_forty_hex_digits():
    commit = git_commit()

    assert len(commit) == 40 and int(commit, 16) >= 0


@pytest.mark.parametrize(("env", "expected"), [("abc123", "abc123"), (None, "unknown")])
def test_git_commit_without_checkout_falls_back(env, expected, settings, tmp_path, monkeypatch):
    settings.BASE_DIR = tmp_path  # not inside a git work tree
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "no-repo"))
    if env is None:
        monkeypatch.delenv("GIT_COMMIT", raising=False)
    else:
        monkeypatch.setenv("GIT_COMMIT", env)

    assert git_commit() == expected


@pytest.mark.django_db(transaction=True)
def test_audit_append_from_two_threads_builds_one_linear_chain():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # Shared-cache in-memory SQLite answers SQLITE_LOCKED at once instead of waiting; file
        # databases (every deployment) queue writers on BEGIN IMMEDIATE. docs/AUDIT.md has the run.
        pytest.skip("needs a file or MariaDB test database")
    per_thread, errors = 25, []
    # The migration creates the head row; a transactional test starts from a flushed table.
    AuditHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
    barrier = threading.Barrier(2)

    def worker(start: int) -> None:
        try:
            barrier.wait()
            append_many(per_thread, start=start)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    report = audit_verify()
    assert errors == []
    assert report.ok and report.count == 2 * per_thread
    assert list(AuditRecord.objects.values_list("seq", flat=True)) == list(range(1, 2 * per_thread + 1))
    numbers = [int(s.split(":")[1]) for s in AuditRecord.objects.values_list("subject", flat=True)]
    assert sum(n >= 1000 for n in numbers) == sum(n < 1000 for n in numbers) == per_thread


@pytest.mark.django_db
def test_audit_append_inside_rolled_back_transaction_leaves_no_trace():
    append_many(2)

    with pytest.raises(RuntimeError), transaction.atomic():
        append_many(2, start=10)
        raise RuntimeError("decision cycle failed")

    assert audit_verify().ok and AuditRecord.objects.count() == 2 == AuditHead.objects.get().seq


@pytest.mark.django_db
def test_audit_record_admin_is_read_only(admin_client):
    record = append_many(1)[0]

    assert admin_client.get("/admin/decisions/auditrecord/?kind=decision&q=decision").status_code == 200
    assert admin_client.get(f"/admin/decisions/auditrecord/{record.pk}/change/").status_code == 200
    assert admin_client.get("/admin/decisions/auditrecord/add/").status_code == 403
    assert admin_client.post(f"/admin/decisions/auditrecord/{record.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/decisions/auditrecord/{record.pk}/change/", {"actor": "x"}).status_code == 403
    record.refresh_from_db()
    assert record.actor == "engine"


@pytest.mark.django_db
def test_audit_extend_chains_like_one_append_per_record_and_locks_the_head_once():
    appended = append_many(2)
    records = [("gate", "engine", f"decision:{k}", {"k": k, "qty": D("1.5")}) for k in (7, 8)]

    with CaptureQueriesContext(connection) as queries:
        extended = audit_extend(records, now=T0)

    assert [r.seq for r in extended] == [3, 4] and extended[0].prev_hash == appended[-1].hash
    assert extended[1].prev_hash == extended[0].hash
    head = AuditHead.objects.get()
    assert (head.seq, head.hash) == (4, extended[1].hash)
    assert audit_verify().ok
    assert sum("FOR UPDATE" in q["sql"] for q in queries.captured_queries) == (
        1 if connection.features.has_select_for_update else 0)
