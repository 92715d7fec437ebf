"""Run the local Binance USD-M emulator as a sandbox: `manage.py run_emulator --port 8765`."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, Emulator, EmulatorConfig
from execution.emulator.matching import EngineConfig
from execution.emulator.prices import kline_paths


class Command(BaseCommand):
    help = "Serve a Binance USD-M futures emulator (REST + user stream) that ccxt can trade against."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument("--state-file", default="emulator.json",
                            help="account state, saved after every change and reloaded on start")
        parser.add_argument("--data-dir", default=None, help="kline recordings (default MARKET_DATA_DIR)")
        parser.add_argument("--api-key", default=DEFAULT_API_KEY)
        parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
        parser.add_argument("--wallet-usdt", default="10000", help="starting wallet of a new state file")
        parser.add_argument("--slippage-bps", default="0", help="market orders fill this much worse than last")
        parser.add_argument("--replay", default="", help="step this symbol through its recorded 1m candles")
        parser.add_argument("--replay-start-ms", type=int, default=0)
        parser.add_argument("--replay-interval-s", type=float, default=1.0, help="wall seconds per candle")
        parser.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0: run until ^C)")

    def handle(self, *args, **options):
        data_dir = Path(options["data_dir"] or settings.MARKET_DATA_DIR)
        config = EmulatorConfig(
            api_keys={options["api_key"]: options["api_secret"]},
            starting_wallet_usdt=Decimal(options["wallet_usdt"]),
            engine=EngineConfig(slippage_bps=Decimal(options["slippage_bps"])),
        )
        try:
            emulator = Emulator(data_dir, state_file=Path(options["state_file"]), config=config,
                                host=options["host"], port=options["port"]).start()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self._announce(emulator, options)
        try:
            self._run(emulator, data_dir, options)
        except KeyboardInterrupt:
            pass
        finally:
            emulator.stop()
            self.stdout.write("emulator stopped; state kept in " + options["state_file"])

    def _announce(self, emulator: Emulator, options: dict) -> None:
        lines = [
            f"Binance USD-M emulator on {emulator.url} (user stream {emulator.ws_url}/<listenKey>)",
            f"API key:    {options['api_key']}",
            f"API secret: {options['api_secret']}",
            f"State file: {options['state_file']}",
            "Point the platform at it with:",
            f"  EXCHANGE_API_URL={emulator.url}",
            f"  EXCHANGE_API_KEY={options['api_key']}",
            f"  EXCHANGE_API_SECRET={options['api_secret']}",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _run(self, emulator: Emulator, data_dir: Path, options: dict) -> None:
        deadline = time.monotonic() + options["duration_s"] if options["duration_s"] else None
        paths = kline_paths(data_dir, options["replay"], options["replay_start_ms"]) if options["replay"] else None
        while deadline is None or time.monotonic() < deadline:
            if paths is not None:
                candle = next(paths, None)
                if candle is None:
                    self.stdout.write(f"replay of {options['replay']} reached the end of the recording")
                    paths = None
                else:
                    for price in candle[1]:
                        emulator.set_price(options["replay"], price)
            pause = options["replay_interval_s"] if paths is not None else 0.2
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
