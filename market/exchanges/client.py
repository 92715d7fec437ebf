"""ccxt client factory (which exchange, where its API lives, timeouts, keys) and bounded retries."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
from django.conf import settings

from market.exchanges.errors import RATE_LIMITED, RETRYABLE, ExchangeRejected, ExchangeUnavailable, describe

DEFAULT_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class ClientOptions:
    exchange_id: str
    api_url: str = ""  # scheme://host[:port] replacing every API host, e.g. the local test emulator
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    with_keys: bool = False  # public market data needs no keys; leave them out of such clients
    api_key: str = field(default="", repr=False)     # an account's own keys; empty: the environment's
    api_secret: str = field(default="", repr=False)
    demo_trading: bool = False  # Binance Demo Trading (the futures testnet): ccxt switches every host


def rebase_urls(urls: dict | str, api_url: str) -> dict | str:
    """Return `urls` (ccxt's urls['api'] tree) with every scheme and host replaced by `api_url`."""
    if isinstance(urls, dict):
        return {key: rebase_urls(value, api_url) for key, value in urls.items()}
    if not isinstance(urls, str) or "://" not in urls:
        return urls
    parts = urlsplit(urls)
    return api_url.rstrip("/") + parts.path


def exchange_client(options: ClientOptions) -> ccxt.Exchange:
    """Return a synchronous ccxt client with rate limiting on; raise ExchangeRejected for an unknown id."""
    exchange_class = getattr(ccxt, options.exchange_id, None)
    if exchange_class is None or not isinstance(exchange_class, type):
        raise ExchangeRejected(f"unknown exchange id {options.exchange_id!r} (see ccxt.exchanges)")
    config = {"enableRateLimit": True, "timeout": options.timeout_ms}
    if options.with_keys:
        # Keys come only from settings (the environment) and are never logged or echoed.
        config.update(apiKey=options.api_key or settings.EXCHANGE_API_KEY,
                      secret=options.api_secret or settings.EXCHANGE_API_SECRET)
        # With keys ccxt would also call the spot wallet's currency list, which futures keys need not reach.
        config["options"] = {"fetchCurrencies": False}
    client = exchange_class(config)
    if options.demo_trading and not options.api_url:
        client.enable_demo_trading(True)
    if options.api_url:
        client.urls["api"] = rebase_urls(client.urls["api"], options.api_url)
        linear = client.exceptions.get("linear", {}).get("exact") if isinstance(client.exceptions, dict) else None
        if linear:
            # ccxt picks Binance's futures error table by the fapi.binance.com host; on another host
            # (the emulator, a proxy) -4116, -2021, -2019 ... would come back as plain ExchangeError.
            client.exceptions["exact"] = {**client.exceptions.get("exact", {}), **linear}
    return client


def exchange_client_from_settings(
    exchange_id: str | None = None, *, api_url: str | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> ccxt.Exchange:
    """Return a public-data client for `exchange_id` (default settings.EXCHANGE_ID)."""
    return exchange_client(ClientOptions(
        exchange_id=exchange_id or settings.EXCHANGE_ID,
        api_url=getattr(settings, "EXCHANGE_API_URL", "") if api_url is None else api_url,
        timeout_ms=timeout_ms,
    ))


def market_resolve(client: ccxt.Exchange, symbol: str) -> dict:
    """Return the loaded ccxt market for a unified symbol (BTC/USDT:USDT) or a venue id (BTCUSDT).

    A venue id shared by several markets resolves to the swap first: this platform trades perpetuals.
    Precondition: markets are loaded.
    """
    if symbol in client.markets:
        return client.markets[symbol]
    candidates = client.markets_by_id.get(symbol) or client.markets_by_id.get(symbol.upper()) or []
    if not candidates:
        raise ExchangeRejected(f"{client.id} has no market {symbol!r}")
    ranked = sorted(candidates, key=lambda market: (not market.get("swap"), not market.get("linear")))
    return ranked[0]


def market_filters(client: ccxt.Exchange, market: dict) -> dict[str, str]:
    """Return tick_size, step_size and min_notional (decimal strings) known for `market`."""
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    values = {
        "tick_size": _increment(client, precision.get("price")),
        "step_size": _increment(client, precision.get("amount")),
        "min_notional": _plain((limits.get("cost") or {}).get("min")),
    }
    return {key: value for key, value in values.items() if value is not None}


def _increment(client: ccxt.Exchange, precision) -> str | None:
    if precision is None:
        return None
    if client.precisionMode == ccxt.TICK_SIZE:
        return _plain(precision)
    # DECIMAL_PLACES / SIGNIFICANT_DIGITS exchanges give a digit count, not a step.
    return _plain(Decimal(1).scaleb(-int(precision)))


def _plain(value) -> str | None:
    if value is None:
        return None
    # repr() of a float is its shortest round-trip form: 0.1 stays "0.1", not 0.1000000000000000055.
    text = repr(value) if isinstance(value, float) else str(value)
    return format(Decimal(text).normalize(), "f")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # total tries per request, the first included
    base_delay_s: float = 1.0  # doubled after every failure
    max_delay_s: float = 30.0  # also caps a venue's Retry-After


NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0


def call_with_retry(client: ccxt.Exchange, call, *, policy: RetryPolicy, sleep, stats: CallStats):
    """Return `call()`, repeating it with exponential backoff while ccxt reports a transient error.

    Raise ExchangeUnavailable once `policy.attempts` are spent, ExchangeRejected for a refusal.
    `sleep` takes seconds (time.sleep in production, a recorder in tests).
    """
    for attempt in range(policy.attempts):
        stats.requests += 1
        try:
            return call()
        except RETRYABLE as exc:
            if attempt + 1 >= policy.attempts:
                raise ExchangeUnavailable(f"{client.id}: {describe(exc)} (after {policy.attempts} tries)") from exc
            stats.retries += 1
            sleep(_retry_delay_s(client, exc, attempt, policy))
        except ccxt.BaseError as exc:
            raise ExchangeRejected(f"{client.id}: {describe(exc)}") from exc
    raise AssertionError("unreachable: policy.attempts must be >= 1")


def _retry_delay_s(client: ccxt.Exchange, exc: Exception, attempt: int, policy: RetryPolicy) -> float:
    backoff = policy.base_delay_s * 2**attempt
    if isinstance(exc, RATE_LIMITED):
        # Headers belong to this failure only for HTTP errors such as 429/418, which carry Retry-After.
        retry_after = (client.last_response_headers or {}).get("Retry-After")
        if retry_after is not None and retry_after.strip().isdigit():
            backoff = float(retry_after)
    return min(backoff, policy.max_delay_s)
