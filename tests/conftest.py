"""Shared fixtures; app-specific ones live in tests/<app>/."""
import signal
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


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Put back the SIGTERM and SIGINT handlers a test's command installed (run_bot, run_execution).

    Left in place they outlive the test: a later test's forked processes inherit them, and a
    handler that only notes the signal keeps such a process alive under terminate().
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
