"""manage.py verify_audit: OK with the count and last hash, or each problem and a non-zero exit."""
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from decisions.audit_services import audit_append
from decisions.models import AuditHead, AuditRecord

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 7, 8, 12, 0, tzinfo=UTC)


@pytest.fixture
def records() -> list[AuditRecord]:
    return [audit_append(kind="order", actor="engine", subject=f"order:{k}", body={"k": k},
                         now=T0 + timedelta(minutes=k)) for k in range(4)]


def run(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def delete_seq(seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(AuditRecord._meta.db_table)} WHERE seq = %s", [seq])


def test_verify_audit_intact_log_prints_count_and_last_hash(records):
    out = run()

    assert f"audit log OK: 4 records, last seq 4, hash {records[-1].hash}" in out
    assert f"anchor: 4:{records[-1].hash}" in out


def test_verify_audit_empty_log_is_ok():
    assert "audit log OK: 0 records" in run()


def test_verify_audit_tampered_log_prints_each_problem_and_fails(records):
    AuditRecord.objects.filter(seq=2).update(actor="mallory")
    delete_seq(4)
    out = StringIO()

    with pytest.raises(CommandError, match=r"tampered: 2 problem\(s\), the first at seq 2 \(edited\)"):
        call_command("verify_audit", stdout=out)

    assert "seq 2: edited - its fields no longer match its hash" in out.getvalue()
    assert "seq 4: removed" in out.getvalue()


def test_verify_audit_expect_anchor_reveals_deleted_tail(records):
    anchor = f"4:{records[-1].hash}"
    delete_seq(4)
    AuditHead.objects.update(seq=3, hash=records[2].hash)  # a careful forger rewinds the head too
    assert "audit log OK: 3 records" in run()

    with pytest.raises(CommandError, match=r"the first at seq 4 \(removed\)"):
        run("--expect", anchor)


def test_verify_audit_expect_malformed_anchor_fails():
    with pytest.raises(CommandError, match="seq:hash"):
        run("--expect", "4:nothex")
