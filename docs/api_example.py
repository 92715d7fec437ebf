#!/usr/bin/env python3
"""Read the trading bot's state over its API, and approve a pending decision: standard library only.

    export TRADINGBOT_URL=http://127.0.0.1:8000
    export TRADINGBOT_TOKEN=$(.venv/bin/python manage.py api_token --user script --create --role operator)
    python3 docs/api_example.py                  # last decision, equity, open positions
    python3 docs/api_example.py --approve 123    # approve pending decision 123 (operator token)

Exit status: 0 when every request succeeded, 1 when the API refused one (its reason is printed).
See docs/API.md for every endpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    """The API answered with an error status; the message is its reason."""


class Client:
    """A tiny API client: JSON in, JSON out, the token in every request."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._send("GET", f"{path}?{query}" if query else path)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self._send("POST", path, body or {})

    def _send(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Accept": "application/json",
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {_reason(exc)}") from None


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.load(exc)
    except ValueError:
        return exc.reason
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return json.dumps(body)  # field errors: {"minutes": ["..."]}


def last_decision(api: Client) -> None:
    page = api.get("/api/decisions/", limit=1)
    if not page["results"]:
        print("last decision: none yet")
        return
    d = page["results"][0]
    print(f"last decision #{d['id']}: {d['symbol']} {d['timeframe']} at {d['as_of']}: {d['action']} "
          f"({d['outcome']}) - {d['reason']}")
    if d["action"] != "FLAT":
        print(f"  entry {d['entry_price']}  stop {d['stop_price']}  target {d['target_price']}  "
              f"quantity {d['quantity']}")


def equity(api: Client, points: int) -> None:
    curve = api.get("/api/equity/", max_points=points)
    account = curve["account"]
    if not curve["points"]:
        print(f"equity of {account['name']}: no points yet")
        return
    first, last = curve["points"][0], curve["points"][-1]
    print(f"equity of {account['name']} ({account['broker']}): {last['equity_usdt']} USDT at {last['ts']} "
          f"(from {first['equity_usdt']} at {first['ts']}; peak {curve['peak_equity_usdt']}, "
          f"drawdown {last['drawdown_pct']}%)")


def open_positions(api: Client) -> None:
    rows = api.get("/api/positions/", status="open")["results"]
    print(f"open positions: {len(rows)}")
    for p in rows:
        print(f"  #{p['id']} {p['side']} {p['quantity']} {p['symbol']} from {p['entry_price']} "
              f"(stop {p['stop_price']}, target {p['target_price']}) opened {p['opened_at']}")


def approve(api: Client, decision_id: int) -> None:
    d = api.post(f"/api/decisions/{decision_id}/approve/")
    print(f"decision #{d['id']} {d['approval']} by {d['approval_by']}: {d['outcome']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approve", type=int, metavar="ID", help="approve the pending decision ID")
    parser.add_argument("--points", type=int, default=200, help="equity points to ask for (downsampled)")
    args = parser.parse_args(argv)
    base_url, token = os.environ.get("TRADINGBOT_URL"), os.environ.get("TRADINGBOT_TOKEN")
    if not base_url or not token:
        print("set TRADINGBOT_URL (e.g. http://127.0.0.1:8000) and TRADINGBOT_TOKEN (manage.py api_token)",
              file=sys.stderr)
        return 2
    api = Client(base_url, token)
    try:
        if args.approve is not None:
            approve(api, args.approve)
        last_decision(api)
        equity(api, args.points)
        open_positions(api)
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
