"""manage.py backtest: the live pipeline over stored candles, with a progress bar; the run is stored."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from execution.backtest.runs import backtest_start
from market.models import Instrument

BAR_WIDTH = 40


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO date or time (e.g. 2025-07-08 or 2025-07-08T12:00)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class Command(BaseCommand):
    help = ("Run the live decision and execution pipeline (paper fills) over stored candles and store the run "
            "with its trades, equity and metrics (see docs/BACKTEST.md).")

    def add_arguments(self, parser):
        parser.add_argument("--symbol", default="BTCUSDT", help="the instrument's venue symbol")
        parser.add_argument("--timeframe", default="15m", help="the decision timeframe")
        parser.add_argument("--start", required=True, help="first bar close decided on, UTC (ISO)")
        parser.add_argument("--end", required=True, help="last bar close decided on, UTC (ISO)")
        parser.add_argument("--equity", default="10000", help="starting equity in USDT")

    def handle(self, *args, **opts):
        instrument = Instrument.objects.filter(exchange_symbol=opts["symbol"]).first()
        if instrument is None:
            known = ", ".join(Instrument.objects.values_list("exchange_symbol", flat=True)) or "none"
            raise CommandError(f"no instrument {opts['symbol']!r}; stored: {known}")
        try:
            equity = Decimal(opts["equity"])
        except InvalidOperation:
            raise CommandError(f"--equity {opts['equity']!r} is not a number") from None
        try:
            run = backtest_start(instrument=instrument, timeframe=opts["timeframe"], start=_utc(opts["start"]),
                                 end=_utc(opts["end"]), starting_equity=equity, progress=self._bar)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("")
        m = run.metrics
        self.stdout.write(self.style.SUCCESS(
            f"backtest {run.pk}: {m['trade_count']} trades, net {m['net_pnl_usdt']} USDT, final equity "
            f"{run.final_equity_usdt}, max drawdown {m['max_drawdown_fraction']:.2%}, win rate "
            f"{'-' if m['win_rate'] is None else format(m['win_rate'], '.0%')}, code {run.code_version[:10]}"))

    def _bar(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} bars", ending="")
        self.stdout.flush()
