"""The venue of a trial: the emulator in a process of its own, steered over a local control connection.

The venue outlives the execution process it serves: a SIGKILL of that process leaves the emulator's
orders, trades and positions where the crash put them. Client ids are unique among open orders only
(Binance's documented rule, EngineConfig.client_id_scope="open"), so a resend of a finished order
with the same id would be accepted and show as a duplicate. The clock is the wall clock plus an
offset the restarted engine moves forward with its simulated clock.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from decimal import Decimal
from multiprocessing.connection import Client, Listener
from pathlib import Path

from execution.emulator import Emulator, EmulatorConfig
from execution.emulator.matching import EngineConfig
from execution.emulator.state import to_jsonable
from execution.emulator.venue import wall_clock_ms

SYMBOL = "BTCUSDT"
AUTHKEY = b"crash-trials-control"
START_TIMEOUT_S = 15.0
FORK = multiprocessing.get_context("fork")


class OffsetClock:
    """The venue's clock: wall time plus an offset that only grows."""

    def __init__(self):
        self.offset_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.offset_ms


def _apply(emulator: Emulator, clock: OffsetClock, command: str, args: tuple) -> object:
    if command == "price":
        emulator.set_price(SYMBOL, Decimal(args[0]))
    elif command == "partial":
        emulator.partial_fills(Decimal(args[0]) if args[0] else None, args[1])
    elif command == "clock":
        clock.offset_ms = max(clock.offset_ms, int(args[0]))
        return clock()
    elif command == "snapshot":
        with emulator.venue.lock:
            return to_jsonable(emulator.venue.state)
    else:
        raise ValueError(f"unknown venue command {command!r}")
    return None


def _handle(conn, emulator: Emulator, clock: OffsetClock) -> None:
    with conn:
        while True:
            try:
                command, *args = conn.recv()
            except EOFError:
                return
            try:
                conn.send(("ok", _apply(emulator, clock, command, tuple(args))))
            except Exception as exc:  # noqa: BLE001  the caller raises it; the venue keeps serving
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _serve(port: int, state_file: Path, price: str, ready) -> None:
    clock = OffsetClock()
    config = EmulatorConfig(engine=EngineConfig(client_id_scope="open"))
    try:
        emulator = Emulator(None, state_file=state_file, config=config, port=port, clock=clock).start()
        emulator.set_price(SYMBOL, Decimal(price))
        listener = Listener(("127.0.0.1", 0), authkey=AUTHKEY)
    except Exception as exc:  # noqa: BLE001  the parent raises it
        ready.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    ready.send((emulator.url, listener.address))
    ready.close()
    while True:
        threading.Thread(target=_handle, args=(listener.accept(), emulator, clock), daemon=True).start()


class VenueControl:
    """Commands to a running venue process; one connection per process that uses it."""

    def __init__(self, address: tuple[str, int]):
        self.address = address
        self._conn = None
        self._pid = 0

    def call(self, command: str, *args):
        """Run one command on the venue and return its answer; raise RuntimeError with the venue's error."""
        if self._conn is None or self._pid != os.getpid():   # a forked child must not share the parent's socket
            self._conn, self._pid = Client(self.address, authkey=AUTHKEY), os.getpid()
        self._conn.send((command, *args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"venue {command}: {value}")
        return value

    def set_price(self, price: Decimal) -> None:
        """Move last and mark to `price`: stops and take-profits trigger, resting limits fill."""
        self.call("price", str(price))

    def partial_fills(self, fraction: str | None, times: int = 1) -> None:
        """Make the next `times` matches fill only `fraction` of what is left (None: whole fills again)."""
        self.call("partial", fraction, times)

    def snapshot(self) -> dict:
        """Return the venue's whole account state (orders, algo orders, trades, positions) as JSON values."""
        return self.call("snapshot")


class VenueProcess:
    """Start and stop the venue process of one trial."""

    def __init__(self, *, port: int, state_file: Path, price: str):
        self.port, self.state_file, self.price = port, state_file, price
        self.process = None
        self.url = ""
        self.control: VenueControl | None = None

    def start(self) -> VenueProcess:
        """Fork the venue and wait until it serves; return self."""
        receiver, sender = FORK.Pipe(duplex=False)
        self.process = FORK.Process(target=_serve, args=(self.port, self.state_file, self.price, sender), daemon=True,
                                    name="trial-venue")
        self.process.start()
        sender.close()
        if not receiver.poll(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("the trial venue did not start")
        self.url, address = receiver.recv()
        if self.url == "error":
            self.stop()
            raise RuntimeError(f"the trial venue did not start: {address}")
        self.control = VenueControl(address)
        return self

    def stop(self) -> None:
        """Kill the venue process; its state file stays."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(START_TIMEOUT_S)
