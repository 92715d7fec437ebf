"""Per-symbol execution leases: one holder at a time may place, cancel or replace orders on a symbol."""
from __future__ import annotations

import os
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db.models import Q

from execution.models import Account, ExecutionLock
from market.models import Instrument

DEFAULT_TTL = timedelta(seconds=30)


class LockBusy(RuntimeError):
    """Another worker holds the symbol: skip this round; the holder finishes the work."""


def holder_id() -> str:
    """Return a name for this process and thread, unique enough to tell holders apart."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{threading.get_ident() % 100000}:{uuid.uuid4().hex[:6]}"


def holder_dead(holder: str) -> bool:
    """Return True when `holder` names a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:24] or not pid.isdigit():
        return False  # another machine's process: only its lease expiry frees it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def leases_release_dead(*, account: Account) -> int:
    """Free the symbol leases of `account` held by processes of this host that died; return how many.

    The engine calls this at start: a process killed mid-action would otherwise keep its symbols
    locked until the lease expires, and the restarted engine could not repair them meanwhile.
    """
    dead = [lock.pk for lock in ExecutionLock.objects.filter(account=account).exclude(holder="")
            if holder_dead(lock.holder)]
    return ExecutionLock.objects.filter(pk__in=dead).update(holder="", expires_at=None) if dead else 0


def lease_acquire(*, account: Account, instrument: Instrument, holder: str, now: datetime,
                  ttl: timedelta = DEFAULT_TTL) -> bool:
    """Take the lease when it is free, expired or already ours; return whether it is ours now."""
    lock, _ = ExecutionLock.objects.get_or_create(account=account, instrument=instrument)
    # One conditional UPDATE: atomic on SQLite and MariaDB alike, so two workers cannot both win.
    free = Q(holder="") | Q(expires_at__lt=now) | Q(holder=holder)
    return ExecutionLock.objects.filter(free, pk=lock.pk).update(holder=holder, expires_at=now + ttl) == 1


def lease_release(*, account: Account, instrument: Instrument, holder: str) -> None:
    """Give the lease back if this holder still has it."""
    ExecutionLock.objects.filter(account=account, instrument=instrument, holder=holder).update(holder="",
                                                                                              expires_at=None)


@contextmanager
def symbol_lease(*, account: Account, instrument: Instrument, now: datetime, ttl: timedelta = DEFAULT_TTL):
    """Hold the symbol's lease for the block; raise LockBusy when another worker has it."""
    holder = holder_id()
    if not lease_acquire(account=account, instrument=instrument, holder=holder, now=now, ttl=ttl):
        raise LockBusy(f"{instrument} on {account.name} is being worked on by another process")
    try:
        yield holder
    finally:
        lease_release(account=account, instrument=instrument, holder=holder)
