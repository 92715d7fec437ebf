"""Crash points on the wire: around the ccxt client's HTTP call, where the engine's own code cannot reach.

"After the send, before the reply" means the venue has applied the order and answered, and the
process dies before reading the answer: `venue.applied` fires after ccxt's HTTP call returns and
before ccxt parses the reply. `venue.cancel` fires just before a cancel is sent. The detail is the
leg named by the order's client id (tb-<intent>-<leg>).
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from execution.crashpoints import crash_point
from execution.oms import split_client_order_id

ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/algoOrder"})
CLIENT_ID_PARAMS = ("newClientOrderId", "clientAlgoId", "origClientOrderId")


def _leg(query: str, body: str | bytes | None) -> str:
    text = body.decode() if isinstance(body, bytes) else (body or "")
    params = dict(parse_qsl(text)) | dict(parse_qsl(query))
    client_id = next((params[k] for k in CLIENT_ID_PARAMS if params.get(k)), "")
    parts = split_client_order_id(client_id)
    return parts[1] if parts else ""


def transport_crash_points(exchange) -> None:
    """Wrap `exchange`'s HTTP call (ccxt Exchange.fetch) with the venue.applied and venue.cancel crash points."""
    send = exchange.fetch

    def fetch(url, method="GET", headers=None, body=None):
        parts = urlsplit(url)
        if parts.path not in ORDER_PATHS or method not in ("POST", "DELETE"):
            return send(url, method, headers, body)
        leg = _leg(parts.query, body)
        if method == "DELETE":
            crash_point("venue.cancel", leg)
        reply = send(url, method, headers, body)
        if method == "POST":
            crash_point("venue.applied", leg)
        return reply

    exchange.fetch = fetch
