"""Shared fixtures; app-specific ones live in tests/<app>/."""
from pathlib import Path

import pytest
from django.conf import settings

pytest_plugins = ["tests.emulator.fixtures", "tests.market_fixtures"]


@pytest.fixture
def market_data_dir() -> Path:
    """Return the directory of real Binance recordings; skip nothing silently."""
    path = Path(settings.MARKET_DATA_DIR)
    assert path.is_dir(), f"MARKET_DATA_DIR {path} does not exist"
    return path
