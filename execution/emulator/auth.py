"""Signed-endpoint checks: the API key header, the HMAC-SHA256 signature and the timestamp window."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from execution.emulator import errors

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
FUTURE_TOLERANCE_MS = 1_000  # Binance accepts a timestamp up to 1 s ahead of its clock


def api_key_secret(api_keys: Mapping[str, str], api_key: str | None) -> str:
    """Return the secret of `api_key`; raise -2014 when the header is missing, -2015 when unknown."""
    if not api_key:
        raise errors.api_key_invalid()
    if api_key not in api_keys:
        raise errors.api_key_rejected()
    return api_keys[api_key]


def split_signature(raw: str) -> tuple[str, str | None]:
    """Return (`raw` without its signature parameter, the signature or None)."""
    parts = raw.split("&") if raw else []
    kept = [part for part in parts if not part.startswith("signature=")]
    signatures = [part.split("=", 1)[1] for part in parts if part.startswith("signature=")]
    return "&".join(kept), (signatures[-1] if signatures else None)


def verify_signature(secret: str, raw_query: str, raw_body: str) -> None:
    """Raise -1022 unless the signature is HMAC-SHA256(secret, query string + body)."""
    query, query_signature = split_signature(raw_query)
    body, body_signature = split_signature(raw_body)
    signature = query_signature or body_signature
    if not signature:
        raise errors.mandatory_missing("signature")
    # Binance signs "totalParams": the query string concatenated with the body, no separator.
    expected = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.signature_invalid()


def verify_timestamp(params: Mapping[str, str], now_ms: int) -> None:
    """Raise -1021 unless timestamp lies within recvWindow before the server clock (or 1 s after)."""
    timestamp = params.get("timestamp")
    if not timestamp or not str(timestamp).isdigit():
        raise errors.mandatory_missing("timestamp")
    window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
    if not str(window).isdigit() or int(window) > MAX_RECV_WINDOW_MS:
        raise errors.invalid_value("recvWindow")
    sent_ms = int(timestamp)
    if sent_ms > now_ms + FUTURE_TOLERANCE_MS or now_ms - sent_ms > int(window):
        raise errors.timestamp_outside_window()


def sign(secret: str, query: str) -> str:
    """Return the signature Binance expects for `query` (a helper for tests and scripts)."""
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
