"""Reconcile one venue account with its books now; optionally acknowledge the result."""
import getpass

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from execution.models import Account
from execution.reconciliation import (account_broker, reconciliation_acknowledge, reconciliation_failed,
                                      reconciliation_run, trading_enabled)


class Command(BaseCommand):
    help = "Compare the venue with the database for one account, act on the differences and print them."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="account name")
        parser.add_argument("--ack", action="store_true",
                            help="acknowledge this run: trading may start despite its differences")

    def handle(self, *args, account, ack, **options):
        found = Account.objects.filter(name=account).first()
        if found is None:
            raise CommandError(f"no account named {account!r}")
        if found.broker == Account.Broker.PAPER:
            raise CommandError(f"{account} is a paper account: there is no venue to reconcile with")
        now = timezone.now()
        try:
            broker = account_broker(found)
        except Exception as exc:  # recorded like any run that could not read the venue
            run = reconciliation_failed(account=found, now=now, trigger="manual",
                                        error=f"no broker: {type(exc).__name__}: {exc}")
        else:
            run = reconciliation_run(account=found, broker=broker, now=now, trigger="manual")
        self._show(run)
        if ack:
            run = reconciliation_acknowledge(run=run, actor=f"cli:{getpass.getuser()}", now=timezone.now())
            self.stdout.write(f"acknowledged by {run.acknowledged_by}")
        enabled, reason = trading_enabled(found)
        self.stdout.write(f"trading {'enabled' if enabled else 'DISABLED'}: {reason}")

    def _show(self, run):
        self.stdout.write(f"run #{run.pk}: {'clean' if run.clean else 'differences'}"
                          + (f", error: {run.error}" if run.error else ""))
        for diff in run.differences:
            self.stdout.write(f"  {diff['kind']:15} {diff['subject']}: books {diff['ours']!r}, venue {diff['venue']!r}"
                              + (f" ({diff['detail']})" if diff.get("detail") else ""))
        for action in run.actions:
            target = f"{action.get('symbol', '')} {action.get('client_order_id', '')}".strip()
            self.stdout.write(f"  -> {action['kind']:21} {target}: {action.get('outcome', '')} {action.get('note', '')}")
