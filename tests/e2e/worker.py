"""Run one real service in a process of its own, as the engine or a django-q2 worker would.

    python -m tests.e2e.worker equity ACCOUNT ISO_TIME     record the account's equity (an "equity" event)
    python -m tests.e2e.worker approve DECISION_ID ISO_TIME approve a pending decision (order, fill, position)

Started by the cross-process tests with tests.e2e.server_settings and the test's database.
"""
import os
import sys
from datetime import datetime


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.server_settings")
    import django

    django.setup()
    from decisions.approvals import decision_approve
    from execution.models import Account
    from execution.services import equity_record

    command, subject, moment = argv
    now = datetime.fromisoformat(moment)
    if command == "equity":
        point = equity_record(account=Account.objects.get(name=subject), now=now)
        print(f"equity {point.pk} {point.equity_usdt}")
    elif command == "approve":
        decision = decision_approve(decision_id=int(subject), actor="worker", now=now)
        print(f"decision {decision.pk} {decision.outcome}")
    else:
        raise SystemExit(f"unknown command {command!r}; expected equity or approve")


if __name__ == "__main__":
    main(sys.argv[1:])
