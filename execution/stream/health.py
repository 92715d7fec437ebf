"""Is the user data stream trustworthy right now, and which symbols need a REST poll? Pure: no Django, no I/O.

Values in, values out; times are epoch ms from the caller's clock. The stream is stale when its socket
has been down longer than a short grace, when nothing (no event, no heartbeat) has come for
`stale_after_ms`, or when its listenKey has lapsed. While stale, each symbol with working orders is
polled over REST every `poll_every_ms`. Once the socket is back, each symbol with orders older than
the socket is polled once more: the venue does not replay what it sent while nobody listened, and a
read taken after the socket opened covers everything the stream cannot.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

STALE_AFTER_MS = 30_000
POLL_EVERY_MS = 5_000
RECONNECT_GRACE_MS = 10_000
LISTEN_KEY_TTL_MS = 3_600_000      # Binance: 60 minutes after the last keepalive


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    stale_after_ms: int = STALE_AFTER_MS         # silence (no event, no heartbeat) that makes an open stream stale
    poll_every_ms: int = POLL_EVERY_MS           # REST poll interval per symbol while stale
    reconnect_grace_ms: int = RECONNECT_GRACE_MS  # a drop shorter than this is caught up after reconnecting


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """What the stream has said lately. Never mutated: every `with_*` returns a new value."""

    connected: bool = False
    since_ms: int = 0                     # when `connected` last changed (0: never connected)
    last_event_ms: int = 0                # the last event or heartbeat seen on the open socket
    listen_key_expires_ms: int | None = None
    polled_ms: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # last REST poll per symbol
    policy: StreamPolicy = StreamPolicy()

    def with_connected(self, now_ms: int, listen_key_expires_ms: int | None = None) -> StreamHealth:
        """Return the health once the socket is open (its listenKey valid until `listen_key_expires_ms`)."""
        return replace(self, connected=True, since_ms=now_ms, last_event_ms=now_ms,
                       listen_key_expires_ms=listen_key_expires_ms)

    def with_disconnected(self, now_ms: int) -> StreamHealth:
        """Return the health once the socket is lost; a second report keeps the first loss time."""
        if not self.connected:
            return self
        return replace(self, connected=False, since_ms=now_ms)

    def with_event(self, now_ms: int, listen_key_expires_ms: int | None = None) -> StreamHealth:
        """Return the health after an event or heartbeat (with the listenKey's latest expiry, when known)."""
        expires_ms = self.listen_key_expires_ms if listen_key_expires_ms is None else listen_key_expires_ms
        return replace(self, last_event_ms=max(self.last_event_ms, now_ms), listen_key_expires_ms=expires_ms)

    def with_poll(self, symbol: str, now_ms: int) -> StreamHealth:
        """Return the health after a REST poll of `symbol` that started at `now_ms`."""
        return replace(self, polled_ms=MappingProxyType({**self.polled_ms, symbol: now_ms}))

    def is_stale(self, now_ms: int) -> bool:
        """Return True when the stream may be missing updates and REST must stand in."""
        if not self.connected:
            return now_ms - self.since_ms >= self.policy.reconnect_grace_ms
        if self.listen_key_expires_ms is not None and now_ms >= self.listen_key_expires_ms:
            return True
        return now_ms - self.last_event_ms >= self.policy.stale_after_ms

    def poll_due(self, symbol: str, now_ms: int, working_since_ms: int | None = None) -> bool:
        """Return True when `symbol` should be polled over REST now.

        `working_since_ms`: when the symbol's oldest working order was created; orders younger than the
        socket have had every update streamed, so they need no catch-up poll.
        """
        last_ms = self.polled_ms.get(symbol)
        if last_ms is not None and now_ms - last_ms < self.policy.poll_every_ms:
            return False
        if self.is_stale(now_ms):
            return True
        if not self.connected or (working_since_ms is not None and working_since_ms >= self.since_ms):
            return False
        # Back on the stream: one poll after the socket opened covers whatever the gap hid.
        return last_ms is None or last_ms < self.since_ms
