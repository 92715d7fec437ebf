"""Shared fixtures; app-specific ones live in tests/<app>/."""
from pathlib import Path

import pytest
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

pytest_plugins = ["tests.emulator.fixtures", "tests.market_fixtures"]

# Property tests judge results, never speed: no per-example deadline and no too-slow health check,
# which fail at random on a loaded machine (speed is measured in bench/).
hypothesis_settings.register_profile("tradingbot", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("tradingbot")


@pytest.fixture
def market_data_dir() -> Path:
    """Return the directory of real Binance recordings; skip nothing silently."""
    path = Path(settings.MARKET_DATA_DIR)
    assert path.is_dir(), f"MARKET_DATA_DIR {path} does not exist"
    return path
