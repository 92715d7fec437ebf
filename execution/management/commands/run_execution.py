"""Run the execution loop of one venue account: stops verified, unknown orders resolved, reconciled every 30 s."""
import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from decisions.selectors import trading_config_get
from execution.locks import holder_id
from execution.loop import ExecutionLoop, LeaseLost
from execution.models import Account
from execution.safety import EngineAlreadyRunning, Expectations, StartupCheckFailed, shutdown, startup_check
from execution.stream.applier import StreamApplier
from execution.venues import VenueNotConfigured, venue_broker, venue_user_stream


class Command(BaseCommand):
    help = "Run the execution loop of a testnet or live account until stopped (SIGINT/SIGTERM shut it down cleanly)."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="a testnet or live account")
        parser.add_argument("--tick", type=float, default=2.0, help="seconds between ticks (1 to 3)")
        parser.add_argument("--max-ticks", type=int, default=0, help="stop after this many ticks (0: run until stopped)")
        parser.add_argument("--skip-startup-check", action="store_true",
                            help="do not compare the venue's leverage, margin and position mode with the configuration")

    def handle(self, *args, **opts):
        if not 1.0 <= opts["tick"] <= 3.0:
            raise CommandError(f"--tick must be between 1 and 3 seconds, got {opts['tick']}")
        try:
            account = Account.objects.get(name=opts["account"])
            broker = venue_broker(account)
        except Account.DoesNotExist:
            raise CommandError(f"no account {opts['account']!r}") from None
        except VenueNotConfigured as exc:
            raise CommandError(str(exc)) from None
        config = trading_config_get()
        symbols = tuple(account.positions.values_list("instrument__exchange_symbol", flat=True).distinct())
        if not opts["skip_startup_check"]:
            try:
                startup_check(broker=broker, expected=Expectations(leverage=int(config.max_leverage), symbols=symbols),
                              now_ms=int(time.time() * 1000))
            except StartupCheckFailed as exc:
                raise CommandError(f"start-up check failed: {exc}") from None
        from execution.reconciliation import reconciliation_run  # the shell that applies reconcile()

        applier = StreamApplier(account=account, broker=broker)
        loop = ExecutionLoop(account, broker, holder_id(), reconcile=reconciliation_run, stream=applier)
        try:
            loop.start(timezone.now())
        except EngineAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        # Without a user stream (venues other than Binance USD-M) the applier polls REST every 5 s.
        user_stream = (venue_user_stream(account, on_update=applier.enqueue).start()
                       if account.exchange_id == "binanceusdm" else None)
        stopping = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.append(True))
        self.stdout.write(f"execution loop for {account} every {opts['tick']} s")
        ticks = 0
        try:
            while not stopping and (not opts["max_ticks"] or ticks < opts["max_ticks"]):
                report = loop.tick(timezone.now())
                for error in report.errors:
                    self.stderr.write(error)
                ticks += 1
                time.sleep(opts["tick"])
        except LeaseLost as exc:
            raise CommandError(str(exc)) from None
        finally:
            if user_stream is not None:
                user_stream.stop()
            if stopping:
                shutdown(account=account, broker=broker, now=timezone.now(), flatten=config.shutdown_flatten)
            loop.stop()
        self.stdout.write(f"stopped after {ticks} ticks")
