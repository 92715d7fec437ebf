"""The market-data face of the local Binance USD-M emulator, kept for the market tests.

The emulator itself lives in execution/emulator/ (REST trading, algo orders, user stream, faults,
persistence); see its marketdata module for which payloads are real recordings and which are synthetic.
`BinanceEmulator(data_dir, server_time_ms=...)` serves the real recordings of `data_dir` on 127.0.0.1 at
a random port; `server_time_ms` freezes the venue clock (GET /fapi/v1/time, exchangeInfo.serverTime),
which suits public endpoints only: signed requests then fail the timestamp window.
"""
from __future__ import annotations

from pathlib import Path

from execution.emulator import Emulator
from execution.emulator.venue import wall_clock_ms


class BinanceEmulator(Emulator):
    """Serve Binance USD-M REST endpoints on 127.0.0.1 at a random port."""

    def __init__(self, data_dir: Path, server_time_ms: int | None = None, **kwargs):
        self.server_time_ms = server_time_ms
        clock = wall_clock_ms if server_time_ms is None else (lambda: server_time_ms)
        super().__init__(Path(data_dir), clock=clock, **kwargs)
