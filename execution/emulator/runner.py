"""Run the emulator on a background thread with its own event loop; the test- and script-facing API."""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from execution.emulator.faults import Fault, FaultPlan
from execution.emulator.server import RestServer
from execution.emulator.venue import EmulatorConfig, Venue, wall_clock_ms

START_TIMEOUT_S = 10.0


class Emulator:
    """A Binance USD-M emulator on http://host:port (port 0 picks a free one)."""

    def __init__(self, data_dir: Path | None = None, *, state_file: Path | None = None,
                 config: EmulatorConfig = EmulatorConfig(), host: str = "127.0.0.1", port: int = 0,
                 clock=wall_clock_ms, seed: int = 0):
        self.venue = Venue(config, state_file=state_file, data_dir=data_dir, clock=clock)
        self.faults = FaultPlan(seed)
        self.server = RestServer(self.venue, self.faults)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; return self once the port is bound."""
        ready, failure = threading.Event(), []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), daemon=True,
                                        name="binance-emulator")
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S) or failure:
            raise RuntimeError(f"emulator did not start: {failure[0] if failure else 'timeout'}")
        return self

    def _serve(self, ready: threading.Event, failure: list) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except OSError as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    async def _bind(self) -> None:
        # A short shutdown timeout: stalled (fault-injected) requests must not hold up stop().
        self._runner = web.AppRunner(self.server.app(), shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Return the REST base, e.g. http://127.0.0.1:8765 (the host that replaces fapi.binance.com)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Return the websocket base that replaces wss://fstream.binance.com/ws."""
        return f"ws://{self.host}:{self.port}/ws"

    # -- prices and fills -----------------------------------------------------------------------

    def set_price(self, symbol: str, last: Decimal, mark: Decimal | None = None) -> None:
        """Move the last (and mark) price of `symbol`; conditional orders trigger, limits fill."""
        self.venue.set_price(symbol, last, mark)

    def replay_klines(self, symbol: str, start_ms: int, count: int) -> int:
        """Step `symbol` through `count` real 1m candles; return the last candle's open time."""
        return self.venue.replay_klines(symbol, start_ms, count)

    def partial_fills(self, fraction: Decimal | None, times: int | None = None) -> None:
        """Make the next `times` fills (all when None) take only `fraction` of the unfilled quantity."""
        self.venue.set_fill_fraction(fraction, times)

    # -- faults ---------------------------------------------------------------------------------

    def fail(self, path: str, *, status: int = 0, code: int | None = None, msg: str | None = None,
             times: int = 1, retry_after_s: int | None = None, delay_s: float = 0.0,
             method: str | None = None) -> None:
        """Make the next `times` requests to `path` fail with `status`/`code`, or stall for `delay_s`."""
        self.faults.add(path, Fault(status=status, code=code, msg=msg, retry_after_s=retry_after_s,
                                    delay_s=delay_s), times=times, method=method)

    def timeout_before_apply(self, path: str, stall_s: float, *, times: int = 1, method: str | None = None) -> None:
        """Stall the next requests to `path` before applying them: the client times out, nothing happened."""
        self.faults.add(path, Fault(delay_s=stall_s, status=503, msg="Request stalled and dropped."), times=times,
                        method=method)

    def timeout_after_apply(self, path: str, stall_s: float, *, times: int = 1, method: str | None = None) -> None:
        """Apply the next requests to `path`, then stall the reply past the client's timeout."""
        self.faults.add(path, Fault(after_apply_s=stall_s), times=times, method=method)

    def rate_limit(self, path: str, *, retry_after_s: int = 1, times: int = 1) -> None:
        """Answer the next requests to `path` with HTTP 429 and Retry-After."""
        self.faults.add(path, Fault(status=429, retry_after_s=retry_after_s), times=times)

    def ban(self, until_ms: int) -> None:
        """Answer every request with HTTP 418 "banned until `until_ms`" until then."""
        self.faults.ban_until_ms = until_ms

    def fail_randomly(self, path: str, *, probability: float, status: int = 503) -> None:
        """Fail each request to `path` with `probability` (seeded: the same run fails the same way)."""
        self.faults.add_random(path, Fault(status=status), probability=probability)

    def expire_listen_key(self) -> None:
        """Expire the listenKey now: clients get listenKeyExpired and are closed."""
        self.venue.expire_listen_keys(force=True)

    def drop_user_stream(self) -> None:
        """Close every user-stream websocket without a message (a network drop)."""
        self.server.hub.drop()

    # -- request log ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, dict]]:
        return self.server.requests

    def count(self, path: str) -> int:
        """Return how many requests reached `path`, failed ones included."""
        return Counter(p for p, _ in self.requests)[path]

    def params(self, path: str) -> list[dict]:
        """Return the parameters of every request to `path`, in order."""
        return [q for p, q in self.requests if p == path]
