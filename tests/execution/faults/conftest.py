"""Fixtures of the fault scenarios: a seeded emulator on a simulated clock and the engine's rig on it."""
import pytest

from tests.execution.faults.harness import SimClock, emulator_start, rig_start


@pytest.fixture
def seed() -> int:
    """Return the scenario's seed; tests parametrize it."""
    return 1


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def emulator(clock, seed):
    """Yield a running emulator on the simulated clock, its fault plan seeded with `seed`."""
    emulator = emulator_start(clock, seed)
    yield emulator
    emulator.stop()


@pytest.fixture
def rig(emulator, clock, seed, db):
    """Return the engine's rig on `emulator`: the loop has taken its lease and reconciled once."""
    return rig_start(emulator, clock, seed)
