"""The emulated venue: one account, its engine and algo book, persistence and user-stream fan-out.

Every change runs under one lock inside `change()`, which then saves the state (when a state file is
set) and hands the user-stream events it produced to the listeners. Tests and the HTTP server share
this object; only the HTTP layer knows about requests.

Fault scenarios steer the venue here, each modelled on Binance's documented behaviour: fills in given
slices with a cancel racing the last one, liquidation and ADL closes (autoclose-* / adl_autoclose
orders), a manual close from the web UI (web_* client ids), ghost orders the query endpoints answer
-2013 for while the matching engine still works them, and errors sent after a write was applied
(a 5xx whose "execution status is unknown").
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from execution.emulator import errors, events, ledger, store
from execution.emulator.algo import AlgoBook
from execution.emulator.faults import Fault, FaultPlan
from execution.emulator.marketdata import last_close
from execution.emulator.matching import Engine, EngineConfig
from execution.emulator.params import OrderRequest
from execution.emulator.prices import kline_paths
from execution.emulator.state import AccountState, Order
from execution.emulator.symbols import SYMBOLS, spec_for

# The default test pair: for local use only, never a real Binance key.
DEFAULT_API_KEY = "emulator-test-key-0000000000000000000000000000000000000000000000000000"
DEFAULT_API_SECRET = "emulator-test-secret-000000000000000000000000000000000000000000000000"


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    api_keys: Mapping[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_API_SECRET})
    starting_wallet_usdt: Decimal = Decimal("10000")
    engine: EngineConfig = EngineConfig()
    listen_key_ttl_ms: int = 3_600_000   # Binance: a listenKey lives 60 minutes after its last keepalive
    max_leverage: int = 125


# A 5xx after the write was applied: Binance's "execution status is unknown" reply.
UNKNOWN_STATUS = Fault(status=503, code=-1000, msg=errors.unknown_execution_status().msg)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Venue:
    """One emulated Binance USD-M account behind a lock."""

    def __init__(self, config: EmulatorConfig = EmulatorConfig(), *, state_file: Path | None = None,
                 data_dir: Path | None = None, clock: Callable[[], int] = wall_clock_ms):
        self.config = config
        self.state_file = Path(state_file) if state_file else None
        self.data_dir = Path(data_dir) if data_dir else None
        self.clock = clock
        self.lock = threading.RLock()
        state = (store.load(self.state_file) if self.state_file else None) or AccountState(
            wallet_usdt=config.starting_wallet_usdt)
        self.engine = Engine(state, config.engine)
        self.algos = AlgoBook(self.engine)
        self.listeners: list[Callable[[list[dict]], None]] = []
        self.expiry_listeners: list[Callable[[str], None]] = []
        # Faults a write meets after it was applied (rest_trade consults them); queued, never random.
        self.reply_faults = FaultPlan()
        # Client ids the query endpoints do not know (-2013) while the matching engine works the order.
        self.ghosts: set[str] = set()
        self._seed_prices()

    @property
    def state(self) -> AccountState:
        return self.engine.state

    def now_ms(self) -> int:
        return self.clock()

    def _seed_prices(self) -> None:
        # A sandbox user can trade at once: unset prices start at the recording's last close.
        for symbol in SYMBOLS:
            if symbol not in self.state.prices and self.data_dir is not None:
                close = last_close(self.data_dir, symbol)
                if close is not None:
                    self.engine.update_price(symbol, close, close, 0)

    @contextmanager
    def change(self) -> Iterator[int]:
        """Run a change under the lock and yield now_ms; then persist and publish its events."""
        with self.lock:
            now_ms = self.now_ms()
            try:
                yield now_ms
            finally:
                produced, self.engine.events[:] = list(self.engine.events), []
                self.state.update_ms = max(self.state.update_ms, now_ms)
                if self.state_file is not None:
                    store.save(self.state_file, self.state)
        if produced:
            for listener in list(self.listeners):
                listener(produced)

    # -- prices ---------------------------------------------------------------------------------

    def set_price(self, symbol: str, last: Decimal, mark: Decimal | None = None) -> None:
        """Move `symbol` to `last` (mark defaults to last); trigger stops and fill crossed limits."""
        with self.change() as now_ms:
            self.engine.update_price(symbol, Decimal(last), Decimal(mark if mark is not None else last), now_ms)
            self.algos.trigger_due(symbol, now_ms)
            self.engine.match_resting(symbol, now_ms)

    def replay_klines(self, symbol: str, start_ms: int, count: int) -> int:
        """Step `symbol` through `count` real 1m candles from `start_ms` (open, extremes, close).

        Mark follows last (the recordings hold no mark prices). Return the last candle's open time.
        """
        if self.data_dir is None:
            raise ValueError("replay_klines needs a data_dir with the kline recordings")
        open_time_ms = start_ms
        for n, (open_time_ms, path) in enumerate(kline_paths(self.data_dir, symbol, start_ms)):
            if n >= count:
                break
            for price in path:
                self.set_price(symbol, price)
        return open_time_ms

    def set_fill_fraction(self, fraction: Decimal | None, times: int | None = None) -> None:
        """Make the next `times` matching events (all when None) fill only `fraction` of the rest."""
        if fraction is None:
            self.engine.fill_fraction = None
            return
        remaining = [times]

        def hook(_order: Order) -> Decimal:
            if remaining[0] is None:
                return Decimal(fraction)
            if remaining[0] <= 0:
                return Decimal(1)
            remaining[0] -= 1
            return Decimal(fraction)

        self.engine.fill_fraction = hook

    # -- fault scenarios ------------------------------------------------------------------------

    def fill_in_slices(self, client_order_id: str, quantities, *, cancel_races_last: bool | None = None) -> None:
        """Fill the order in `quantities`, one slice per matching event; a cancel may race the last slice.

        `cancel_races_last` True: a cancel arriving before the last slice finds the order filled (-2011);
        False or None: the cancel wins and the last slice never fills.
        """
        with self.lock:
            self.engine.fill_in_slices(client_order_id, quantities)
            self.engine.cancel_races.pop(client_order_id, None)
            if cancel_races_last:
                self.engine.cancel_races[client_order_id] = True

    def liquidate(self, symbol: str, price: Decimal | None = None) -> Order | None:
        """Liquidate the position in `symbol` at `price` (the mark by default); open orders expire."""
        with self.change() as now_ms:
            spec_for(symbol)
            price = Decimal(price) if price is not None else self.engine.price(symbol).mark
            order = self.engine.force_close(symbol, "BOTH", f"autoclose-{now_ms}", price, now_ms,
                                            orig_type="LIQUIDATION")
            # SYNTHETIC: Binance documents the expiry of open orders (reason 5); untriggered algo
            # orders are left to the client, which must cancel its stops itself.
            self.engine.expire_open_orders(now_ms)
            return order

    def auto_deleverage(self, symbol: str, price: Decimal | None = None) -> Order | None:
        """Close the position in `symbol` by ADL at `price` (the mark by default); orders stay."""
        with self.change() as now_ms:
            spec_for(symbol)
            price = Decimal(price) if price is not None else self.engine.price(symbol).mark
            return self.engine.force_close(symbol, "BOTH", "adl_autoclose", price, now_ms, orig_type="MARKET")

    def manual_close(self, symbol: str, quantity: Decimal | None = None, client_order_id: str | None = None) -> Order:
        """Close `quantity` (all when None) of the position reduce-only at market, as the web UI does."""
        with self.change() as now_ms:
            amount = self.state.position(spec_for(symbol).symbol, "BOTH").amount
            if not amount:
                raise errors.reduce_only_rejected()
            request = OrderRequest(
                symbol=symbol, side="SELL" if amount > 0 else "BUY", type="MARKET",
                quantity=Decimal(quantity) if quantity is not None else abs(amount), price=Decimal(0),
                time_in_force="GTC", reduce_only=True, position_side=None,
                client_order_id=client_order_id or f"web_{now_ms}{self.state.next_id}")
            return self.engine.place_order(request, now_ms)

    def ghost(self, client_order_id: str) -> None:
        """Hide an order from every query endpoint (-2013, not listed); the matching engine still works it."""
        with self.lock:
            self.ghosts.add(client_order_id)

    def unghost(self, client_order_id: str) -> None:
        with self.lock:
            self.ghosts.discard(client_order_id)

    def fail_after_apply(self, path: str, fault: Fault = UNKNOWN_STATUS, *, times: int = 1,
                         method: str | None = None) -> None:
        """Apply the next `times` writes to `path`, then answer each with `fault`'s error."""
        self.reply_faults.add(path, fault, times=times, method=method)

    # -- account settings -----------------------------------------------------------------------

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set the initial leverage of `symbol`; raise -4028 outside 1..max."""
        spec = spec_for(symbol)
        if not 1 <= leverage <= min(spec.max_leverage, self.config.max_leverage):
            raise errors.leverage_invalid(str(leverage))
        with self.change():
            self.state.leverage[symbol] = leverage
        return leverage

    def leverage(self, symbol: str) -> int:
        return self.state.leverage.get(symbol, self.config.engine.default_leverage)

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """Set CROSSED or ISOLATED for `symbol` (accounted as cross either way)."""
        spec_for(symbol)
        if margin_type not in ("CROSSED", "ISOLATED"):
            raise errors.invalid_value("marginType")
        with self.change():
            if self.state.margin_type.get(symbol, "CROSSED") == margin_type:
                raise errors.margin_type_unchanged()
            if any(p.amount for p in self.state.positions.values() if p.symbol == symbol):
                raise errors.margin_type_blocked_by_position()
            self.state.margin_type[symbol] = margin_type

    def set_dual_side(self, dual_side: bool) -> None:
        """Switch hedge mode on or off; refused while orders or positions exist."""
        with self.change():
            if self.state.dual_side == dual_side:
                raise errors.position_mode_unchanged()
            if self.engine.open_orders(None) or self.algos.open_orders(None):
                raise errors.position_mode_blocked_by_orders()
            if any(p.amount for p in self.state.positions.values()):
                raise errors.position_mode_blocked_by_position()
            self.state.dual_side = dual_side

    def summary(self) -> ledger.MarginSummary:
        """Return the wallet, unrealised PnL and margin totals at current marks."""
        with self.lock:
            return ledger.summarize(self.state, self.config.engine.default_leverage)

    # -- listen keys ----------------------------------------------------------------------------

    def listen_key_create(self) -> str:
        """Return the active listenKey (extended), or a new one; Binance keeps one per account."""
        with self.change() as now_ms:
            self._expire_listen_keys(now_ms)
            key = next(iter(self.state.listen_keys), None) or secrets.token_hex(32)
            self.state.listen_keys[key] = now_ms + self.config.listen_key_ttl_ms
            return key

    def listen_key_keepalive(self) -> str:
        """Extend the active listenKey by the TTL; raise -1125 when there is none."""
        with self.change() as now_ms:
            self._expire_listen_keys(now_ms)
            key = next(iter(self.state.listen_keys), None)
            if key is None:
                raise errors.listen_key_missing()
            self.state.listen_keys[key] = now_ms + self.config.listen_key_ttl_ms
            return key

    def listen_key_delete(self) -> None:
        """Close the user stream: drop the active listenKey."""
        with self.change():
            keys = list(self.state.listen_keys)
            self.state.listen_keys.clear()
        for key in keys:
            self._announce_expiry(key)

    def listen_key_valid(self, key: str) -> bool:
        with self.lock:
            self._expire_listen_keys(self.now_ms())
            return key in self.state.listen_keys

    def expire_listen_keys(self, *, force: bool = False) -> list[str]:
        """Expire keys past their TTL (all of them with `force`); return the expired ones."""
        with self.lock:
            if not force and all(until > self.now_ms() for until in self.state.listen_keys.values()):
                return []  # the common case: skip the save
        with self.change() as now_ms:
            if force:
                for key in self.state.listen_keys:
                    self.state.listen_keys[key] = now_ms - 1
            expired = self._expire_listen_keys(now_ms)
        return expired

    def _expire_listen_keys(self, now_ms: int) -> list[str]:
        expired = [key for key, until in self.state.listen_keys.items() if until <= now_ms]
        for key in expired:
            del self.state.listen_keys[key]
            self._announce_expiry(key)
        return expired

    def _announce_expiry(self, key: str) -> None:
        for listener in list(self.expiry_listeners):
            listener(key)

    def listen_key_expired_event(self, key: str) -> dict:
        return events.listen_key_expired(key, self.now_ms())
