"""Fixtures of the market tests (the exchange emulator is registered in tests/conftest.py)."""
