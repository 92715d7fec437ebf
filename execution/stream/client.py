"""The Binance USD-M user data stream through ccxt.pro, on a thread with its own event loop.

`UserStream` watches orders, trades, positions and the balance on one listenKey socket and hands every
update, already in the broker port's types, to `on_update(kind, payload, received_ms)`:

    "connected"  payload: the listenKey's expiry (ms)   the socket is open and subscribed
    "heartbeat"  payload: the listenKey's expiry (ms)   still open, every `heartbeat_s`
    "disconnected" payload: None                         the socket is gone; a reconnect follows
    "order"      VenueOrder     "fill" FillReport      "position" VenuePosition      "balance" VenueBalance

The callback runs on the stream thread: it must be quick and must not touch the database (Django
refuses ORM calls from a thread running an event loop). StreamApplier.enqueue is such a callback.

ccxt.pro keeps the listenKey alive itself (PUT every 20 minutes, `listenKeyRefreshRate`) but neither
handles listenKeyExpired nor notices an expired key when it reconnects: it dials the dead key again
until its next keepalive fails. So before every reconnect the key is renewed here (PUT); when the
venue no longer knows it (-1125), ccxt's key is dropped and its next subscription creates a new one.
ccxt's websocket ping runs every `ping_s` and closes a socket that misses two pongs, so a half-open
connection ends the session within 3 * `ping_s` (15 s); with StreamHealth's 10 s reconnect grace the
books see the stream stale within 30 s of its last word.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

import ccxt

from execution.brokers.ccxt import venue_code
from execution.stream.convert import balance_of, fill_of, order_of, position_of
from execution.stream.health import LISTEN_KEY_TTL_MS

logger = logging.getLogger(__name__)

LINEAR = "linear"                  # ccxt.pro's listenKey bucket for USD-M futures
LISTEN_KEY_MISSING = -1125
CONNECT_CHECK_S = 0.02
STOP_TIMEOUT_S = 10.0

OnUpdate = Callable[[str, object, int], None]


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class StreamClosed(ConnectionError):
    """The socket closed under a session that was still watching."""


class UserStream:
    """One account's user data stream; `start()` runs it in the background until `stop()`."""

    def __init__(self, exchange, *, on_update: OnUpdate, clock_ms: Callable[[], int] = _wall_clock_ms,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, heartbeat_s: float = 5.0,
                 ping_s: float = 5.0):
        self.exchange = exchange
        self.on_update = on_update
        self.clock_ms = clock_ms
        self.backoff_s, self.max_backoff_s, self.heartbeat_s = backoff_s, max_backoff_s, heartbeat_s
        # Binance's own default ping is 3 minutes: far too slow to notice a dead socket within 30 s.
        exchange.options["ws"] = {**exchange.options.get("ws", {}), "keepAlive": int(ping_s * 1000)}
        self.sessions = 0                   # sockets opened so far
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._connected = False
        self._key_renewed_ms = 0
        self._key_auth_ms = 0               # ccxt's lastAuthenticatedTime when last seen

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> UserStream:
        """Start the stream thread; return self at once (the socket opens in the background)."""
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(self._run())     # before the thread, so stop() can always cancel it
        self._thread = threading.Thread(target=self._serve, daemon=True, name="user-stream")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket and the exchange's sessions, and wait for the thread."""
        if not self.running:
            return
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(STOP_TIMEOUT_S)

    @property
    def running(self) -> bool:
        """Return True while the stream thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def listen_key(self) -> str | None:
        """Return the listenKey ccxt.pro currently streams on."""
        return (self.exchange.options.get(LINEAR) or {}).get("listenKey")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            try:
                self._loop.run_until_complete(self.exchange.close())
            except Exception:
                logger.warning("user stream %s: close failed", self.exchange.id, exc_info=True)
            self._loop.close()

    # -- the reconnect loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if not self.exchange.markets:
                    await self.exchange.load_markets()
                await self._renew_listen_key()
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # every failure of a session means the same: reconnect
                logger.warning("user stream %s: %s", self.exchange.id, exc,
                               exc_info=not isinstance(exc, (ccxt.NetworkError, StreamClosed)))
            if self._connected:
                self._connected, failures = False, 0
                self.on_update("disconnected", None, self.clock_ms())
            await asyncio.sleep(min(self.max_backoff_s, self.backoff_s * 2 ** failures))
            failures += 1

    async def _renew_listen_key(self) -> None:
        """Extend the listenKey ccxt holds; drop it when the venue has expired it, so a new one is made."""
        key = self.listen_key
        if key is None:
            return      # the next subscription creates one
        try:
            answer = await self.exchange.fapiPrivatePutListenKey()
        except ccxt.NetworkError as exc:
            logger.info("user stream %s: listenKey not renewed: %s", self.exchange.id, exc)
            return      # REST is unreachable too: the dial will tell whether the stream is
        except ccxt.ExchangeError as exc:
            if not (isinstance(exc, ccxt.AuthenticationError) or venue_code(exc) == LISTEN_KEY_MISSING):
                raise
            answer = {"listenKey": None}
        # -1125, or (should another client have made one) a different active key: subscribe anew.
        if "listenKey" in (answer or {}) and answer["listenKey"] != key:
            logger.info("user stream %s: listenKey expired; subscribing with a new one", self.exchange.id)
            self.exchange.options[LINEAR] = {**(self.exchange.options.get(LINEAR) or {}),
                                             "listenKey": None, "lastAuthenticatedTime": 0}

    async def _session(self) -> None:
        """Watch until the socket fails; raise why."""
        ex = self.exchange
        watchers = [("order", ex.watch_orders, self._orders), ("fill", ex.watch_my_trades, self._fills),
                    ("position", ex.watch_positions, self._positions), ("balance", ex.watch_balance, self._balance)]
        tasks = [asyncio.ensure_future(self._pump(kind, watch, convert)) for kind, watch, convert in watchers]
        tasks.append(asyncio.ensure_future(self._heartbeat()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise StreamClosed("user stream watcher returned")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # The next session dials afresh, whatever state this socket was left in.
            await ex.close_ws_clients()

    async def _pump(self, kind: str, watch: Callable[[], Awaitable], convert: Callable) -> None:
        while True:
            update = await watch()
            received_ms = self.clock_ms()
            for payload in convert(update):
                self.on_update(kind, payload, received_ms)

    async def _heartbeat(self) -> None:
        client = await self._open_client()
        self._connected, self.sessions = True, self.sessions + 1
        self._key_auth_ms = self._auth_ms()
        self._key_renewed_ms = self.clock_ms()      # renewed or created just before this socket opened
        self.on_update("connected", self._key_renewed_ms + LISTEN_KEY_TTL_MS, self._key_renewed_ms)
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if client.closed():
                raise StreamClosed("user stream socket closed")
            now_ms = self.clock_ms()
            if self._auth_ms() != self._key_auth_ms:    # ccxt's own keepalive extended the key
                self._key_auth_ms, self._key_renewed_ms = self._auth_ms(), now_ms
            self.on_update("heartbeat", self._key_renewed_ms + LISTEN_KEY_TTL_MS, now_ms)

    async def _open_client(self):
        """Return ccxt's websocket client of the listenKey once its socket is open."""
        while True:
            key = self.listen_key
            client = next((c for url, c in (self.exchange.clients or {}).items() if key and key in url), None)
            if client is not None and client.connected.done() and not client.closed():
                return client
            await asyncio.sleep(CONNECT_CHECK_S)

    def _auth_ms(self) -> int:
        return int((self.exchange.options.get(LINEAR) or {}).get("lastAuthenticatedTime") or 0)

    # -- conversions ----------------------------------------------------------------------------

    def _market(self, symbol: str) -> dict:
        return self.exchange.market(symbol)

    def _orders(self, orders: Iterable) -> list:
        return [order_of(o, self._market(o["symbol"])) for o in orders]

    def _fills(self, trades: Iterable) -> list:
        return [fill_of(t, self._market(t["symbol"])) for t in trades]

    def _positions(self, positions: Iterable) -> list:
        return [position_of(p, self._market(p["symbol"])) for p in positions]

    def _balance(self, balance) -> list:
        found = balance_of(balance)
        return [] if found is None else [found]
