"""Print coverage and gaps of stored candles per instrument and timeframe."""
from django.core.management.base import BaseCommand, CommandError

from market.gaps import format_summary
from market.importer import gap_report
from market.models import Instrument
from market.timeframes import TIMEFRAME_MS


class Command(BaseCommand):
    help = "Report first/last candle, row count, gaps and missing bars per instrument and timeframe."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", help="venue symbol, e.g. BTCUSDT")
        parser.add_argument("--exchange", help="ccxt exchange id, e.g. binance or binanceusdm")
        parser.add_argument("--timeframe", choices=list(TIMEFRAME_MS))
        parser.add_argument("--top", type=int, default=3, help="how many of the biggest gaps to list")

    def handle(self, *args, **options):
        instruments = Instrument.objects.all()
        if options["symbol"]:
            instruments = instruments.filter(exchange_symbol=options["symbol"])
        if options["exchange"]:
            instruments = instruments.filter(exchange=options["exchange"])
        rows = gap_report(instruments, options["timeframe"])
        if not rows:
            raise CommandError("no stored candles match the filters")
        for row in rows:
            self.stdout.write(f"{row.instrument} {row.timeframe}: {format_summary(row.summary, options['top'])}")
