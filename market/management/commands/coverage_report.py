"""Print the coverage of every stored series: share of expected rows per day, and the gaps."""
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

from market.coverage import SeriesCoverage
from market.gaps import format_ms
from market.models import Instrument
from market.selectors import etf_coverage, instrument_coverage


def coverage_line(cov: SeriesCoverage) -> str:
    """Return one line: the series, its share of expected rows, rows, gaps and the largest gap."""
    biggest = max(cov.gaps, key=lambda g: g.missing_bars, default=None)
    big = f", largest gap {format_ms(biggest.start_ms)} ({biggest.missing_bars} rows)" if biggest else ""
    return (f"{cov.name}: {cov.share:.1%} of {cov.expected} expected rows present, {cov.rows} rows, "
            f"{len(cov.gaps)} gaps{big}")


class Command(BaseCommand):
    help = "Report, per instrument, each stored series' share of expected rows per day and its gaps."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", help="venue symbol, e.g. BTCUSDT")
        parser.add_argument("--exchange", help="ccxt exchange id")
        parser.add_argument("--days", type=int, default=None, help="only the last N days (default: all)")
        parser.add_argument("--per-day", action="store_true", help="also print each day's share")
        parser.add_argument("--etf-asset", default="BTC", help="asset whose ETF flows to cover")

    def handle(self, *args, symbol, exchange, days, per_day, etf_asset, **options):
        instruments = Instrument.objects.all()
        if symbol:
            instruments = instruments.filter(exchange_symbol=symbol)
        if exchange:
            instruments = instruments.filter(exchange=exchange)
        if not instruments.exists():
            raise CommandError("no instrument matches the filters")
        end = datetime.now(UTC)
        start = end - timedelta(days=days) if days else None
        for instrument in instruments:
            self.stdout.write(self.style.MIGRATE_HEADING(str(instrument)))
            for cov in instrument_coverage(instrument, start=start, end=end if days else None):
                self._write(cov, per_day)
        if days:
            self._write(etf_coverage(etf_asset, start=start.date(), end=end.date()), per_day)

    def _write(self, cov: SeriesCoverage, per_day: bool) -> None:
        self.stdout.write("  " + coverage_line(cov))
        if per_day:
            for day in cov.days:
                self.stdout.write(f"    {day.day}: {day.present}/{day.expected} ({day.share:.0%})")
