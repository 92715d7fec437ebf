"""Write the latest snapshot and flow of an instrument as <base>_snapshot.json and <base>_flow.json."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analytics.exports import export_name, flow_export, snapshot_export
from market.models import Instrument


class Command(BaseCommand):
    help = "Write the latest snapshot and flow as btc_snapshot.json / btc_flow.json style files."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", default="BTCUSDT", help="venue symbol, e.g. BTCUSDT")
        parser.add_argument("--exchange", default=None, help="ccxt exchange id (default: the active instrument's)")
        parser.add_argument("--out-dir", default=".", help="directory to write into")

    def handle(self, *args, symbol, exchange, out_dir, **options):
        instruments = Instrument.objects.filter(exchange_symbol=symbol).order_by("-is_active", "pk")
        if exchange:
            instruments = instruments.filter(exchange=exchange)
        instrument = instruments.first()
        if instrument is None:
            raise CommandError(f"no instrument {symbol}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for kind, build in (("snapshot", snapshot_export), ("flow", flow_export)):
            document = build(instrument)
            if document is None:
                self.stderr.write(f"no {kind} stored yet for {instrument}")
                continue
            path = out / export_name(instrument, kind)
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            self.stdout.write(f"wrote {path} (as of {document['as_of']})")
