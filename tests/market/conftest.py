"""Fixtures of the market tests."""
# Imported rather than listed in pytest_plugins: pytest rejects pytest_plugins outside the
# top-level conftest (tests/conftest.py could register tests.emulator.fixtures for every app).
from tests.emulator.fixtures import binance_emulator, closed_port_url  # noqa: F401
