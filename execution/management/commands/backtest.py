"""manage.py backtest: the live pipeline over stored candles or CSV recordings, with a progress bar; run stored."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from execution.backtest.csv_source import MARKETS, csv_backtest_start
from execution.backtest.engine import ApprovalPolicy
from execution.backtest.runs import backtest_start
from market.models import Instrument

BAR_WIDTH = 40


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO date or time (e.g. 2025-07-08 or 2025-07-08T12:00)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _instruments(text: str) -> list[Instrument]:
    """Return the instruments of a comma-separated list of venue symbols; refuse an unknown one by name."""
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise CommandError("name at least one symbol, e.g. --symbols BTCUSDT,ETHUSDT")
    found = {i.exchange_symbol: i for i in Instrument.objects.filter(exchange_symbol__in=symbols)}
    missing = [s for s in symbols if s not in found]
    if missing:
        known = ", ".join(Instrument.objects.values_list("exchange_symbol", flat=True)) or "none"
        raise CommandError(f"no instrument {', '.join(map(repr, missing))}; stored: {known}")
    return [found[s] for s in symbols]


def _approvals(text: str | None) -> ApprovalPolicy | None:
    """Return the HYBRID approval policy of "approve", "reject" or a minimum confidence such as 0.7."""
    if text is None:
        return None
    if text in ("approve", "reject"):
        return ApprovalPolicy(f"{text}_all")
    try:
        return ApprovalPolicy("min_confidence", float(text))
    except ValueError:
        raise CommandError(f"--approve {text!r}: use approve, reject or a confidence such as 0.7") from None


class Command(BaseCommand):
    help = ("Run the live decision and execution pipeline (paper fills) over stored candles (or the CSV "
            "recordings, --source csv) and store the run "
            "with its trades, equity and metrics (see docs/BACKTEST.md).")

    def add_arguments(self, parser):
        parser.add_argument("--symbol", default=None, help="the instrument's venue symbol (default BTCUSDT)")
        parser.add_argument("--symbols", default=None,
                            help="several venue symbols traded on one account, comma-separated: BTCUSDT,ETHUSDT")
        parser.add_argument("--timeframe", default="15m", help="the decision timeframe")
        parser.add_argument("--start", required=True, help="first bar close decided on, UTC (ISO)")
        parser.add_argument("--end", required=True, help="last bar close decided on, UTC (ISO)")
        parser.add_argument("--equity", default="10000", help="starting equity in USDT")
        parser.add_argument("--workers", type=int, default=1,
                            help="processes that analyse the bars ahead of the run (2 uses both cores)")
        parser.add_argument("--source", choices=("db", "csv"), default="db",
                            help="candles from the database (db, default) or from the Binance recordings of "
                                 "MARKET_DATA_DIR (csv): the decision and structure timeframes, funding from "
                                 "the USD-M funding files where they cover the range")
        parser.add_argument("--data-dir", default=None, help="with --source csv: the directory of the recordings "
                                                             "(default settings.MARKET_DATA_DIR)")
        parser.add_argument("--market", choices=MARKETS, default=None,
                            help="with --source csv: read only usdm or spot files (default usdm where its files "
                                 "cover the range, else spot)")
        parser.add_argument("--approve", default=None,
                            help="HYBRID decisions waiting for approval: approve, reject (default) or a minimum "
                                 "confidence (0.7 approves those at 70 %% or more)")

    def handle(self, *args, **opts):
        if opts["symbol"] and opts["symbols"]:
            raise CommandError("give --symbol or --symbols, not both")
        instruments = _instruments(opts["symbols"] or opts["symbol"] or "BTCUSDT")
        try:
            equity = Decimal(opts["equity"])
        except InvalidOperation:
            raise CommandError(f"--equity {opts['equity']!r} is not a number") from None
        if opts["source"] == "db" and (opts["data_dir"] or opts["market"]):
            raise CommandError("--data-dir and --market are for --source csv")
        common = dict(instruments=instruments, timeframe=opts["timeframe"], start=_utc(opts["start"]),
                      end=_utc(opts["end"]), starting_equity=equity, progress=self._bar,
                      approvals=_approvals(opts["approve"]), workers=max(1, opts["workers"]))
        try:
            if opts["source"] == "csv":
                run = csv_backtest_start(directory=opts["data_dir"], market=opts["market"], notes=self.stdout.write,
                                         **common)
            else:
                run = backtest_start(**common)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("")
        m = run.metrics
        self.stdout.write(self.style.SUCCESS(
            f"backtest {run.pk}: {', '.join(run.symbols)}, {m['trade_count']} trades, net {m['net_pnl_usdt']} USDT, "
            f"final equity {run.final_equity_usdt}, max drawdown {m['max_drawdown_fraction']:.2%}, win rate "
            f"{'-' if m['win_rate'] is None else format(m['win_rate'], '.0%')}, code {run.code_version[:10]}"))
        for symbol, part in m["by_symbol"].items():
            self.stdout.write(f"  {symbol}: {part['count']} trades, net {part['net_pnl_usdt']} USDT")

    def _bar(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} bars", ending="")
        self.stdout.flush()
