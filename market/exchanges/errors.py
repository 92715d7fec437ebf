"""Exchange errors the rest of the platform handles, independent of ccxt's own classes."""
from __future__ import annotations

import ccxt

# ccxt's OperationFailed family (network errors, timeouts, 429/418, 5xx, maintenance,
# Binance -1001 "internal error") may succeed when repeated; other errors will not.
RETRYABLE = (ccxt.OperationFailed,)
RATE_LIMITED = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


class ExchangeError(Exception):
    """Base of the exchange errors below."""


class ExchangeUnavailable(ExchangeError):
    """The exchange cannot be reached or keeps failing; retry later (a rerun resumes)."""


class ExchangeRejected(ExchangeError):
    """The exchange refused the request (bad symbol, bad parameter); stop and fix the input."""


def describe(exc: BaseException) -> str:
    """Return a one-line reason for `exc`: the error class and the first 160 characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
