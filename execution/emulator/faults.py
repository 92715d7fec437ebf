"""Scripted failures: per endpoint, the next N requests fail, stall or answer late.

A Fault either answers with an error (an HTTP status with Binance's body for it, or a given Binance
code), or stalls: `delay_s` before the request is applied (the client times out and nothing happened),
`after_apply_s` after it was applied (the client times out although the order exists). Random faults
draw from a seeded generator, so a failing run repeats exactly.
"""
from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass

from execution.emulator import errors


@dataclass(frozen=True, slots=True)
class Fault:
    status: int = 0                  # HTTP status to answer with; 0 with a code means 400
    code: int | None = None          # Binance error code for the body
    msg: str | None = None
    retry_after_s: int | None = None
    delay_s: float = 0.0             # stall, then handle normally (or fail): "timeout before applying"
    after_apply_s: float = 0.0       # handle, then stall before answering: "timeout after applying"
    ban_until_ms: int = 0            # for 418: the time the ban message names

    def error(self) -> errors.BinanceError | None:
        """Return the error this fault answers with, or None for a pure stall."""
        if self.code is not None:
            return errors.BinanceError(self.code, self.msg or "Injected failure.", self.status or 400)
        if self.status == 418:
            return errors.ip_banned(self.ban_until_ms)
        if self.status == 429:
            return errors.too_many_requests()
        if self.status:
            return errors.BinanceError(-1001, self.msg or errors.internal_error().msg, self.status)
        return None


class FaultPlan:
    """Queues of faults per (method, path); thread-safe."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._queues: dict[tuple[str | None, str], deque[Fault]] = {}
        self._random_faults: dict[tuple[str | None, str], tuple[float, Fault]] = {}
        self._random = random.Random(seed)
        self.ban_until_ms = 0

    def add(self, path: str, fault: Fault, *, times: int = 1, method: str | None = None) -> None:
        """Make the next `times` requests to `path` (any method unless given) meet `fault`."""
        with self._lock:
            self._queues.setdefault((method, path), deque()).extend([fault] * times)

    def add_random(self, path: str, fault: Fault, *, probability: float, method: str | None = None) -> None:
        """Make each request to `path` meet `fault` with `probability` (seeded draws)."""
        with self._lock:
            self._random_faults[(method, path)] = (probability, fault)

    def clear(self) -> None:
        """Drop every pending and random fault and lift any ban."""
        with self._lock:
            self._queues.clear()
            self._random_faults.clear()
            self.ban_until_ms = 0

    def take(self, method: str, path: str, now_ms: int) -> Fault | None:
        """Return the fault for this request, if any, consuming it."""
        with self._lock:
            if now_ms < self.ban_until_ms:
                wait_s = -(-(self.ban_until_ms - now_ms) // 1000)  # ceiling division
                return Fault(status=418, ban_until_ms=self.ban_until_ms, retry_after_s=wait_s)
            for key in ((method, path), (None, path)):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            for key in ((method, path), (None, path)):
                if key in self._random_faults:
                    probability, fault = self._random_faults[key]
                    if self._random.random() < probability:
                        return fault
        return None
