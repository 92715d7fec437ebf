"""manage.py drift_report: replay the last N days of one account through the backtester and store the diff."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone as django_timezone

from execution.drift import drift_days, drift_report_build, drift_window
from execution.drift_replay import trading_config_at
from execution.models import Account


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO date or time (e.g. 2025-07-08 or 2025-07-08T12:00)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class Command(BaseCommand):
    help = ("Replay an account's last N days of stored inputs through the backtester, compare decision by decision "
            "with what it did, and store the drift report (see docs/BACKTEST.md, 'Drift report').")

    def add_arguments(self, parser):
        parser.add_argument("--account", default="paper", help="the account's name")
        parser.add_argument("--days", type=int, default=None, help="days back from --end (default: DRIFT_DAYS, 7)")
        parser.add_argument("--end", default=None, help="last bar close compared, UTC (ISO); default: now")
        parser.add_argument("--limit-bps", default=None,
                            help="alert above this average slippage (default: DRIFT_SLIPPAGE_LIMIT_BPS, 5)")

    def handle(self, *args, **opts):
        account = Account.objects.filter(name=opts["account"]).first()
        if account is None:
            known = ", ".join(Account.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"no account {opts['account']!r}; accounts: {known}")
        limit = None
        if opts["limit_bps"] is not None:
            try:
                limit = Decimal(opts["limit_bps"])
            except InvalidOperation:
                raise CommandError(f"--limit-bps {opts['limit_bps']!r} is not a number") from None
        end = _utc(opts["end"]) if opts["end"] else django_timezone.now()
        days = opts["days"] if opts["days"] is not None else drift_days()
        try:
            start, end = drift_window(now=end, days=days, timeframe=trading_config_at(end).decision_timeframe)
            report = drift_report_build(account=account, start=start, end=end, now=django_timezone.now(),
                                        slippage_limit_bps=limit)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self._show(report)

    def _show(self, report) -> None:
        s = report.summary
        split = ", ".join(f"{name} {value}" for name, value in s["split"].items())
        decisions = s["decisions"]
        self.stdout.write(f"drift report {report.pk}: {report.account.name} {report.start:%Y-%m-%d %H:%M} to "
                          f"{report.end:%Y-%m-%d %H:%M} UTC, {decisions['compared']} decisions compared, "
                          f"{decisions['different']} different")
        self.stdout.write(f"PnL live {s['live_pnl_usdt']} vs backtest {s['backtest_pnl_usdt']} USDT: gap "
                          f"{s['gap_usdt']} = {split}, residual {s['residual_usdt']}")
        for caveat in s.get("caveats", []):
            self.stdout.write(self.style.WARNING(f"note: {caveat}"))
        slippage = f"average slippage {report.slippage_bps} bps (limit {report.slippage_limit_bps})"
        if report.alert:
            self.stdout.write(self.style.ERROR(f"ALERT: {slippage}"))
        else:
            self.stdout.write(self.style.SUCCESS(slippage if report.slippage_bps is not None
                                                 else "no fills to compare"))
