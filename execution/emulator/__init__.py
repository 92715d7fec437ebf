"""A local Binance USD-M futures emulator that the real ccxt client trades against.

Start it from code with `Emulator(data_dir, state_file=...).start()` (tests) or with
`manage.py run_emulator` (a sandbox); point ccxt's API URLs at `Emulator.url`.
"""
from execution.emulator.runner import Emulator
from execution.emulator.venue import DEFAULT_API_KEY, DEFAULT_API_SECRET, EmulatorConfig, Venue

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "Emulator", "EmulatorConfig", "Venue"]
