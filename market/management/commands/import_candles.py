"""Import Binance candle, funding and open-interest CSV files into the database."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from market.csvformat import CsvFormatError, FileKind
from market.importer import MARKETS, market_file_import, market_files_expand, resample_missing
from market.models import DataSource, Instrument
from market.timeframes import TIMEFRAME_MS


class Command(BaseCommand):
    help = (
        "Import candle CSVs (Binance 12-column dumps or the MARKET_DATA_DIR format; .csv, .csv.gz or .zip), "
        "funding and open-interest files. Each file is validated fully before anything of it is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files or directories")
        parser.add_argument("--exchange-market", choices=sorted(MARKETS), help="default: from the file name, else usdm")
        parser.add_argument("--symbol", help="venue symbol such as BTCUSDT; default: from the file name")
        parser.add_argument("--timeframe", choices=list(TIMEFRAME_MS), help="default: from the file name")
        parser.add_argument("--data-source", choices=DataSource.values, default=DataSource.EXCHANGE)
        parser.add_argument("--resample", nargs="+", default=[], metavar="TIMEFRAME", choices=list(TIMEFRAME_MS),
                            help="afterwards, build these timeframes from the imported 1m candles where missing")

    def handle(self, *args, **options):
        files = market_files_expand(options["paths"])
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            raise CommandError(f"no such file: {', '.join(absent)}")
        failures: list[str] = []
        minute_instruments: set[str] = set()
        for path in tqdm(files, unit="file", disable=options["verbosity"] == 0):
            try:
                result = market_file_import(
                    path, market=options["exchange_market"], symbol=options["symbol"],
                    timeframe=options["timeframe"], data_source=options["data_source"],
                )
            except CsvFormatError as exc:
                failures += exc.lines()
                continue
            self._report(result)
            if result.kind == FileKind.CANDLES and result.interval == "1m":
                minute_instruments.add(result.instrument)
        self._resample(minute_instruments, options["resample"])
        if failures:
            raise CommandError("nothing written for these files:\n" + "\n".join(failures))

    def _report(self, result):
        if result.note:
            self.stdout.write(self.style.WARNING(f"{result.name}: {result.note}"))
        if not result.skipped:
            self.stdout.write(
                f"{result.name}: {result.instrument} {result.kind} {result.interval}: "
                f"{result.rows_read} rows read, {result.rows_new} new"
            )

    def _resample(self, instrument_names: set[str], targets: list[str]):
        for instrument in Instrument.objects.all():
            if str(instrument) not in instrument_names:
                continue
            for target in targets:
                added = resample_missing(instrument, target)
                self.stdout.write(f"{instrument} {target}: {added} candles built from 1m")
