"""Scripted failures: per endpoint, the next N requests fail, stall or answer late.

A Fault either answers with an error (an HTTP status with Binance's body for it, or a given Binance
code), or stalls: `delay_s` before the request is applied (the client times out and nothing happened),
`after_apply_s` after it was applied (the client times out although the order exists). Random faults
draw from a seeded generator, so a failing run repeats exactly; `log` records what every request
met ("pass" when nothing), in arrival order, so a test can pair requests with their faults, compare two
runs of one seed or count what a scenario met.

Faults are looked up in this order: an IP ban, outage windows (every request in a span of venue
time), queued faults, then random ones (one fault with a probability, or a seeded mix of several).
The venue keeps a second plan for faults that strike after a write was applied (Venue.reply_faults):
only the handler knows when the change is done.
"""
from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Sequence
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

    @property
    def kind(self) -> str:
        """Return a short label: "418", "503", "-2013", "stall-before", "stall-after" or "pass"."""
        if self.delay_s:
            return "stall-before"
        if self.code is not None:
            return str(self.code)
        if self.status:
            return str(self.status)
        return "stall-after" if self.after_apply_s else "pass"


@dataclass(frozen=True, slots=True)
class Window:
    """Every request to `path` (any path when None) from `start_ms` until `end_ms` meets `fault`."""

    start_ms: int
    end_ms: int
    fault: Fault
    path: str | None = None
    method: str | None = None

    def covers(self, method: str, path: str, now_ms: int) -> bool:
        return (self.start_ms <= now_ms < self.end_ms and self.path in (None, path)
                and self.method in (None, method))


class FaultPlan:
    """Queues of faults per (method, path), outage windows and seeded random faults; thread-safe."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._queues: dict[tuple[str | None, str], deque[Fault]] = {}
        self._random_faults: dict[tuple[str | None, str], tuple[tuple[float, Fault], ...]] = {}
        self._windows: list[Window] = []
        self._random = random.Random(seed)
        self.ban_until_ms = 0
        self.log: list[tuple[str, str, str]] = []     # (method, path, fault kind or "pass") per request

    def add(self, path: str, fault: Fault, *, times: int = 1, method: str | None = None) -> None:
        """Make the next `times` requests to `path` (any method unless given) meet `fault`."""
        with self._lock:
            self._queues.setdefault((method, path), deque()).extend([fault] * times)

    def add_random(self, path: str, fault: Fault, *, probability: float, method: str | None = None) -> None:
        """Make each request to `path` meet `fault` with `probability` (seeded draws)."""
        self.add_mix(path, [(probability, fault)], method=method)

    def add_mix(self, path: str, choices: Sequence[tuple[float, Fault]], *, method: str | None = None) -> None:
        """Make each request to `path` meet one of `choices` (probability, fault), or none; one seeded draw each.

        The probabilities add up to at most 1; the rest is the chance the request passes.
        """
        if sum(p for p, _ in choices) > 1:
            raise ValueError("the probabilities of a fault mix add up to more than 1")
        with self._lock:
            self._random_faults[(method, path)] = tuple(choices)

    def add_window(self, fault: Fault, *, start_ms: int, end_ms: int, path: str | None = None,
                   method: str | None = None) -> None:
        """Make every request in venue time [start_ms, end_ms) to `path` (all paths when None) meet `fault`."""
        with self._lock:
            self._windows.append(Window(start_ms, end_ms, fault, path, method))

    def clear(self) -> None:
        """Drop every pending, windowed and random fault and lift any ban."""
        with self._lock:
            self._queues.clear()
            self._random_faults.clear()
            self._windows.clear()
            self.ban_until_ms = 0

    def take(self, method: str, path: str, now_ms: int) -> Fault | None:
        """Return the fault for this request, if any, consuming it."""
        with self._lock:
            fault = self._find(method, path, now_ms)
            self.log.append((method, path, fault.kind if fault is not None else "pass"))
            return fault

    def _find(self, method: str, path: str, now_ms: int) -> Fault | None:
        if now_ms < self.ban_until_ms:
            wait_s = -(-(self.ban_until_ms - now_ms) // 1000)  # ceiling division
            return Fault(status=418, ban_until_ms=self.ban_until_ms, retry_after_s=wait_s)
        for window in self._windows:
            if window.covers(method, path, now_ms):
                return window.fault
        for key in ((method, path), (None, path)):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        for key in ((method, path), (None, path)):
            if key in self._random_faults:
                return self._draw(self._random_faults[key])
        return None

    def _draw(self, choices: tuple[tuple[float, Fault], ...]) -> Fault | None:
        # One draw per request whatever the outcome, so a seed replays the same sequence.
        point = self._random.random()
        for probability, fault in choices:
            if point < probability:
                return fault
            point -= probability
        return None

    def kinds(self, path: str | None = None, method: str | None = None) -> list[str]:
        """Return what each request (to `path`, with `method`, when given) met so far, in order."""
        with self._lock:
            return [kind for m, p, kind in self.log if path in (None, p) and method in (None, m)]
