"""Build higher-timeframe candles from stored 1m candles where they are missing."""
from django.core.management.base import BaseCommand, CommandError

from market.importer import resample_missing
from market.models import Instrument
from market.timeframes import TIMEFRAME_MS


class Command(BaseCommand):
    help = "Build --to timeframes from stored --from candles, only for complete buckets not already stored."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", help="venue symbol, e.g. BTCUSDT (default: all)")
        parser.add_argument("--exchange", help="ccxt exchange id, e.g. binance or binanceusdm (default: all)")
        parser.add_argument("--to", nargs="+", required=True, choices=list(TIMEFRAME_MS), dest="targets")
        parser.add_argument("--from", default="1m", choices=list(TIMEFRAME_MS), dest="source")

    def handle(self, *args, **options):
        instruments = Instrument.objects.all()
        if options["symbol"]:
            instruments = instruments.filter(exchange_symbol=options["symbol"])
        if options["exchange"]:
            instruments = instruments.filter(exchange=options["exchange"])
        if not instruments.exists():
            raise CommandError("no instrument matches --symbol/--exchange")
        for instrument in instruments:
            for target in options["targets"]:
                try:
                    added = resample_missing(instrument, target, options["source"])
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                self.stdout.write(f"{instrument} {options['source']} -> {target}: {added} candles added")
