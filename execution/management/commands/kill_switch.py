"""Cancel every order of ours, close every position at market and hold the bot in SAFE, paused."""
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from execution.models import Account
from execution.safety import kill_switch
from execution.services import broker_for
from decisions.selectors import trading_config_get


class Command(BaseCommand):
    help = "Kill switch: cancel our orders, flatten every position reduce-only at market, set SAFE and paused."

    def add_arguments(self, parser):
        parser.add_argument("--account", default="paper", help="account name (default: paper)")
        parser.add_argument("--reason", default="kill switch (command line)")
        parser.add_argument("--yes", action="store_true", help="do it without asking")

    def handle(self, *args, **opts):
        try:
            account = Account.objects.get(name=opts["account"])
        except Account.DoesNotExist:
            raise CommandError(f"no account {opts['account']!r}; accounts: "
                               f"{', '.join(Account.objects.values_list('name', flat=True)) or 'none'}") from None
        if not opts["yes"] and input(f"Flatten everything on {account}? Type 'yes': ").strip() != "yes":
            raise CommandError("not confirmed; nothing done")
        broker = broker_for(account, trading_config_get())
        report = kill_switch(account=account, broker=broker, actor="command line", now=timezone.now(),
                             reason=opts["reason"])
        self.stdout.write(f"cancelled {len(report.cancelled)} orders, flattened {len(report.flattened)} positions; "
                          "mode SAFE, paused")
        for error in report.errors:
            self.stderr.write(f"error: {error}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} action(s) failed; check the venue by hand")
