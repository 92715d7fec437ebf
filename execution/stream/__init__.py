"""The user data stream: health (pure core), convert (ccxt.pro -> port types), client (UserStream, a
thread with its own event loop) and applier (StreamApplier: the books, and REST polls while stale).

Nothing is imported here, so the pure `health` module loads without Django.
"""
