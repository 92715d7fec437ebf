"""Check the audit log's hash chain and say where it was tampered with."""
import re

from django.core.management.base import BaseCommand, CommandError

from decisions.audit import Anchor
from decisions.audit_services import audit_verify

ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _anchor(text: str) -> Anchor:
    match = ANCHOR.match(text.strip().lower())
    if match is None:
        raise CommandError(f"--expect takes seq:hash (64 hex digits), got {text!r}")
    return Anchor(seq=int(match[1]), hash=match[2])


class Command(BaseCommand):
    help = ("Verify the audit hash chain; exit non-zero naming each edited, removed, reordered or inserted "
            "record.")

    def add_arguments(self, parser):
        parser.add_argument("--expect", action="append", default=[], metavar="SEQ:HASH",
                            help="a record noted earlier (a previous run's output or a start-up log line); "
                                 "repeatable. Only such an anchor reveals a deleted tail.")

    def handle(self, *args, **options):
        report = audit_verify(anchors=[_anchor(text) for text in options["expect"]])
        if report.ok:
            self.stdout.write(self.style.SUCCESS(
                f"audit log OK: {report.count} records, last seq {report.last_seq}, hash {report.last_hash}"))
            self.stdout.write(f"anchor: {report.anchor}")
            return
        for problem in report.problems:
            self.stdout.write(f"seq {problem.seq}: {problem.kind} - {problem.detail}")
        first = report.problems[0]
        raise CommandError(f"audit log tampered: {len(report.problems)} problem(s), the first at seq {first.seq} "
                           f"({first.kind}); {report.count} records read")
