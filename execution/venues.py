"""Brokers for venue accounts (testnet and live): keys from the account, live only when confirmed."""
from __future__ import annotations

import ccxt.pro
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from decisions.selectors import trading_config_get
from execution.brokers.ccxt import CcxtBroker
from execution.models import Account
from execution.secrets import account_keys_get
from execution.stream.client import UserStream
from market.exchanges.client import DEFAULT_TIMEOUT_MS, ClientOptions, exchange_client, rebase_urls


class VenueNotConfigured(ImproperlyConfigured):
    """The account cannot trade on its venue as configured: the message says what to set."""


def _client_options(account: Account, timeout_ms: int) -> ClientOptions:
    if account.broker == Account.Broker.PAPER:
        raise VenueNotConfigured(f"account {account.name} is a paper account")
    live = account.broker == Account.Broker.LIVE
    if live and not settings.LIVE_TRADING_CONFIRMED:
        raise VenueNotConfigured(f"account {account.name} is live: set LIVE_TRADING_CONFIRMED=true to trade real money")
    key, secret = account_keys_get(account)
    if not key or not secret:
        raise VenueNotConfigured(f"account {account.name} has no API key and secret: set them in the admin "
                                 "(Accounts) or EXCHANGE_API_KEY / EXCHANGE_API_SECRET")
    return ClientOptions(account.exchange_id, api_url="" if live else settings.EXCHANGE_API_URL,
                         timeout_ms=timeout_ms, with_keys=True, api_key=key, api_secret=secret, demo_trading=not live)


def venue_user_stream(account: Account, *, on_update, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> UserStream:
    """Return the (not yet started) user data stream of a Binance USD-M venue account."""
    options = _client_options(account, timeout_ms)
    client = ccxt.pro.binanceusdm({"apiKey": options.api_key, "secret": options.api_secret,
                                   "timeout": timeout_ms, "options": {"fetchCurrencies": False}})
    if options.api_url:
        client.urls["api"] = rebase_urls(client.urls["api"], options.api_url)
        client.urls["api"]["ws"]["linear"] = options.api_url.replace("http", "ws", 1).rstrip("/") + "/ws"
        client.exceptions["exact"] = {**client.exceptions["exact"], **client.exceptions["linear"]["exact"]}
    elif options.demo_trading:
        client.enable_demo_trading(True)
    return UserStream(client, on_update=on_update)


def venue_broker(account: Account, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> CcxtBroker:
    """Return the ccxt broker of a testnet or live account; raise VenueNotConfigured naming what is missing.

    Testnet means Binance Demo Trading, or the local emulator when EXCHANGE_API_URL is set. Live
    needs LIVE_TRADING_CONFIRMED=true in the environment and never goes to EXCHANGE_API_URL.
    """
    options = _client_options(account, timeout_ms)
    client = exchange_client(options)
    client.load_markets()
    return CcxtBroker(client, name=account.exchange_id, working_type=trading_config_get().stop_working_type)
