"""Venue errors of a ccxt exchange as the broker port's error family (Binance USD-M codes first).

Binance quotes its error code and message in the body that ccxt puts into the exception text;
HTTP 418 and 429 arrive as DDoSProtection with the status in the text.
"""
from __future__ import annotations

import re

import ccxt

from execution.brokers.base import (BrokerError, DuplicateClientId, ExchangeUnavailable, IpBanned, OrderNotFound,
                                    RateLimited, UnknownOutcome, WouldTriggerImmediately)
from execution.oms import OrderRejected

CODE_PATTERN = re.compile(r'"code"\s*:\s*"?(-?\d+)')
MESSAGE_PATTERN = re.compile(r'"msg"\s*:\s*"([^"]*)"')
BAN_PATTERN = re.compile(r"banned until (\d{12,})")
# ccxt raises 418/429 as DDoSProtection("<exchange id> <status> <reason> <body>").
STATUS_PATTERN = re.compile(r"^\S+ (418|429)\b")
DEFAULT_BAN_S = 120          # Binance's shortest ban, when the reply names no end


def venue_code(exc: Exception) -> int | None:
    """Return the Binance error code quoted in a ccxt error message, if any."""
    match = CODE_PATTERN.search(str(exc))
    return int(match.group(1)) if match else None


def describe(exc: Exception) -> str:
    """Return "<code> <msg>" from the venue's reply, or the ccxt message."""
    code, message = venue_code(exc), MESSAGE_PATTERN.search(str(exc))
    if code is not None and message:
        return f"{code} {message.group(1)}"
    return str(exc) or type(exc).__name__


def translate_error(exc: Exception, *, write: bool, now_ms: int, retry_after_s: float | None = None) -> Exception:
    """Return the base.py error for a ccxt error; `write` marks order placement and cancels."""
    text, code = str(exc), venue_code(exc)
    status = STATUS_PATTERN.match(text)
    if (status and status.group(1) == "418") or BAN_PATTERN.search(text):
        ban = BAN_PATTERN.search(text)
        until_ms = int(ban.group(1)) if ban else now_ms + int((retry_after_s or DEFAULT_BAN_S) * 1000)
        return IpBanned(describe(exc), until_ms=until_ms)
    if status or code == -1003 or isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimited(describe(exc), retry_after_s=retry_after_s if retry_after_s is not None else 1.0)
    if code == -4116:
        return DuplicateClientId(describe(exc))
    # Codes only: ccxt also files -4140 and post-only refusals under OrderImmediatelyFillable.
    if code in (-2021, -4142):
        return WouldTriggerImmediately(describe(exc))
    if code in (-2011, -2013) or isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(describe(exc))
    # Timeouts, 5xx and -1007: Binance says the execution status is unknown, never a failure.
    # Any other exception after a send (a parse error, say) leaves the outcome unknown too.
    if code == -1007 or isinstance(exc, ccxt.OperationFailed) or not isinstance(exc, ccxt.BaseError):
        return UnknownOutcome(describe(exc)) if write else ExchangeUnavailable(describe(exc))
    return OrderRejected(describe(exc)) if write else BrokerError(describe(exc))

