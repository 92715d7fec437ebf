"""Binance's request-weight budget: the weight of each endpoint and the per-minute ceiling. Pure: time passed in."""
from __future__ import annotations

from execution.brokers.base import IpBanned

# Request weights of the USD-M endpoints used (Binance docs), checked against the budget before sending.
# Placing an order costs 0 IP weight (it counts against the order-rate limits); cancels and queries 1.
WEIGHTS = {"order": 1, "open_orders": 1, "open_orders_all": 40, "positions": 5, "trades": 5, "balance": 5,
           "algo_history": 5, "income": 30, "position_mode": 30, "leverage": 5, "margin_mode": 5, "setup": 1,
           "time": 1, "markets": 1, "price": 2}


class RequestBudget:
    """Binance's per-minute request weight, fed from X-MBX-USED-WEIGHT-1M; pure: time is passed in.

    Reads stop at `read_fraction` of the limit; orders and cancels may use the rest, so protection
    never queues behind polling. Retry-After (429) and a ban (418) hold every request.
    """

    def __init__(self, limit_per_minute: int = 2400, read_fraction: float = 0.8):
        self.limit_per_minute = limit_per_minute
        self.read_fraction = read_fraction
        self.used_weight = 0
        self.minute_start_ms = 0
        self.resume_ms = 0
        self.banned_until_ms = 0

    def observe(self, used_weight: int, now_ms: int) -> None:
        """Record the weight the venue says this minute has used."""
        minute = now_ms - now_ms % 60_000
        if minute != self.minute_start_ms or used_weight > self.used_weight:
            self.used_weight = used_weight
        self.minute_start_ms = minute

    def hold(self, retry_after_s: float, now_ms: int) -> None:
        """Send nothing for `retry_after_s` (a 429's Retry-After)."""
        self.resume_ms = max(self.resume_ms, now_ms + int(retry_after_s * 1000))

    def ban(self, until_ms: int) -> None:
        """Send nothing until `until_ms` (a 418)."""
        self.banned_until_ms = max(self.banned_until_ms, until_ms)

    def delay_s(self, now_ms: int, weight: int = 1, *, write: bool = False) -> float:
        """Return the seconds to wait before a request of `weight`; raise IpBanned during a ban."""
        if now_ms < self.banned_until_ms:
            raise IpBanned(f"IP banned until {self.banned_until_ms}", until_ms=self.banned_until_ms)
        if now_ms < self.resume_ms:
            return (self.resume_ms - now_ms) / 1000
        minute = now_ms - now_ms % 60_000
        used = self.used_weight if minute == self.minute_start_ms else 0
        ceiling = self.limit_per_minute * (1.0 if write else self.read_fraction)
        if used + weight <= ceiling:
            return 0.0
        return (minute + 60_000 - now_ms) / 1000

