"""Per-symbol execution leases: one holder at a time, expiry frees a dead holder's lease."""
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection

from execution.locks import LockBusy, lease_acquire, lease_release, symbol_lease
from execution.models import Account
from market.services import instrument_ensure

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def account_and_instrument(db):
    account = Account.objects.create(name="paper", starting_balance_usdt=D("1000"), balance_usdt=D("1000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    return account, instrument


def test_lease_second_holder_is_refused_until_release(account_and_instrument):
    account, instrument = account_and_instrument

    first = lease_acquire(account=account, instrument=instrument, holder="a", now=NOW)
    second = lease_acquire(account=account, instrument=instrument, holder="b", now=NOW)
    lease_release(account=account, instrument=instrument, holder="a")
    third = lease_acquire(account=account, instrument=instrument, holder="b", now=NOW)

    assert (first, second, third) == (True, False, True)


def test_lease_of_a_dead_holder_expires(account_and_instrument):
    account, instrument = account_and_instrument
    lease_acquire(account=account, instrument=instrument, holder="dead", now=NOW, ttl=timedelta(seconds=30))

    at_expiry = lease_acquire(account=account, instrument=instrument, holder="b", now=NOW + timedelta(seconds=30))
    after = lease_acquire(account=account, instrument=instrument, holder="b", now=NOW + timedelta(seconds=31))

    assert (at_expiry, after) == (False, True)


def test_lease_release_by_another_holder_changes_nothing(account_and_instrument):
    account, instrument = account_and_instrument
    lease_acquire(account=account, instrument=instrument, holder="a", now=NOW)

    lease_release(account=account, instrument=instrument, holder="b")

    assert not lease_acquire(account=account, instrument=instrument, holder="b", now=NOW)


def test_symbol_lease_busy_raises_and_frees_on_exit(account_and_instrument):
    account, instrument = account_and_instrument

    with symbol_lease(account=account, instrument=instrument, now=NOW):
        with pytest.raises(LockBusy, match="being worked on by another process"):
            with symbol_lease(account=account, instrument=instrument, now=NOW):
                pass

    with symbol_lease(account=account, instrument=instrument, now=NOW) as holder:
        assert holder


@pytest.mark.django_db(transaction=True)
def test_lease_many_threads_racing_exactly_one_wins():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # Shared-cache in-memory SQLite answers SQLITE_LOCKED at once instead of queueing writers;
        # CI runs this against MariaDB, and file SQLite queues them on BEGIN IMMEDIATE.
        pytest.skip("needs a file or MariaDB test database")
    account = Account.objects.create(name="paper", starting_balance_usdt=D("1000"), balance_usdt=D("1000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")

    def attempt(k: int) -> bool:
        try:
            return lease_acquire(account=account, instrument=instrument, holder=f"worker-{k}", now=NOW)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(24)))

    assert results.count(True) == 1


def test_leases_release_dead_frees_only_leases_of_dead_local_processes(account_and_instrument):
    import socket
    import subprocess
    import sys

    from execution.locks import leases_release_dead
    from execution.models import ExecutionLock
    from market.services import instrument_ensure

    account, btc = account_and_instrument
    eth = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()[:24]
    lease_acquire(account=account, instrument=btc, holder=f"{host}:{gone.stdout.strip()}:1:dead01", now=NOW)
    lease_acquire(account=account, instrument=eth, holder=f"other-host:{gone.stdout.strip()}:1:far001", now=NOW)

    released = leases_release_dead(account=account)

    assert released == 1
    assert dict(ExecutionLock.objects.values_list("instrument__exchange_symbol", "holder")) == {
        "BTCUSDT": "", "ETHUSDT": f"other-host:{gone.stdout.strip()}:1:far001"}
