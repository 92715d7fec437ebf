"""The fault-scenario rig: the emulator on a simulated clock, the real ccxt client, CcxtBroker and the loop.

One timeline: the venue's clock is the wall clock plus an offset that only grows, ccxt signs its
requests with the same offset (options["timeDifference"]), and the engine is handed that time. A
tick moves the offset by its step without waiting, so a scenario of minutes runs in a second. The
broker's sleep moves the clock too: a backoff or a Retry-After wait is recorded, never slept.

Client ids are unique among open orders only (Binance's documented rule), as in the crash trials:
a blind resend of a finished order would show on the venue as a duplicate.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from analytics.services import ms_to_datetime
from decisions.models import Decision, Mode
from execution.brokers.ccxt import CcxtBroker
from execution.emulator import Emulator, EmulatorConfig
from execution.emulator.matching import EngineConfig
from execution.emulator.state import to_jsonable
from execution.emulator.venue import wall_clock_ms
from execution.loop import ExecutionLoop, TickReport
from execution.models import Account, Order, Position
from execution.reconciliation import reconciliation_run
from execution.stream.applier import StreamApplier
from execution.trials.checks import Problems, books_problems, naked_positions
from execution.trials.restart import books_load
from market.models import Instrument
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

SYMBOL = "BTCUSDT"
PRICE = Decimal("60000")
TIMEOUT_MS = 300            # ccxt's request timeout; injected stalls last longer
STALL_S = 0.5
HOLDER = "engine:faults"


class SimClock:
    """Epoch ms of the venue, the broker and the engine: wall time plus an offset that only grows."""

    def __init__(self):
        self.offset_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.offset_ms

    @property
    def now(self) -> datetime:
        return ms_to_datetime(self())


@dataclass
class Rig:
    emulator: Emulator
    clock: SimClock
    broker: CcxtBroker
    account: Account
    instrument: Instrument
    loop: ExecutionLoop
    seed: int
    rng: random.Random
    sleeps: list[float] = field(default_factory=list)

    @property
    def client(self):
        return self.broker.exchange

    @property
    def venue(self):
        return self.emulator.venue

    @property
    def now(self) -> datetime:
        return self.clock.now

    def advance(self, seconds: float) -> datetime:
        """Move the venue, ccxt's signatures and the engine `seconds` forward; return the new time."""
        step_ms = int(seconds * 1000)
        self.clock.offset_ms += step_ms
        # ccxt signs with its wall clock minus timeDifference: keep whatever gap it has (none, or a skew).
        self.client.options["timeDifference"] = self.client.options.get("timeDifference", 0) - step_ms
        return self.now

    def skew_venue(self, seconds: float) -> None:
        """Move only the venue's clock (and the engine's): ccxt signs as before, so its stamps fall behind."""
        self.clock.offset_ms += int(seconds * 1000)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def tick(self, seconds: float = 2.0) -> TickReport:
        """Advance `seconds` and run one tick of the execution loop."""
        return self.loop.tick(self.advance(seconds))

    def run(self, seconds: float, step: float = 2.0) -> list[TickReport]:
        """Tick every `step` seconds for `seconds`."""
        return [self.tick(step) for _ in range(int(seconds / step))]

    def reconcile(self):
        return reconciliation_run(account=self.account, broker=self.broker, now=self.now, trigger="periodic",
                                  clock=lambda: self.now)

    def state(self) -> dict:
        """Return the venue's whole account state as JSON values."""
        with self.venue.lock:
            return to_jsonable(self.venue.state)

    def problems(self) -> Problems:
        return books_problems(self.state(), books_load(self.account))

    def naked(self) -> dict[str, str]:
        return naked_positions(self.state())

    def settle(self, max_ticks: int = 20, step: float = 2.0) -> list[TickReport]:
        """Tick until the books equal the venue, then once more (at most `max_ticks`)."""
        reports = []
        for _ in range(max_ticks):
            reports.append(self.tick(step))
            if not self.problems():
                reports.append(self.tick(step))
                break
        return reports

    # -- trades ---------------------------------------------------------------------------------

    def decision(self, side: str = "LONG", quantity: Decimal = Decimal("0.010"), *, stop_fraction: str = "0.02",
                 targets: tuple[tuple[str, str], ...] = (("1", "0.5"), ("2", "0.5"))) -> Decision:
        """Return an executed decision around the current price: a stop `stop_fraction` away, targets at R multiples."""
        sign = 1 if side == "LONG" else -1
        entry = self.price()
        risk = (entry * Decimal(stop_fraction)).quantize(self.instrument.tick_size)
        take_profits = [{"price": str(entry + sign * Decimal(r) * risk), "share": share} for r, share in targets]
        return Decision.objects.create(
            instrument=self.instrument, timeframe="5m", as_of=self.now.replace(microsecond=0), action=side,
            mode=Mode.ON, outcome=Decision.Outcome.EXECUTED, entry_price=entry, stop_price=entry - sign * risk,
            target_price=Decimal(take_profits[-1]["price"]), quantity=quantity, take_profits=take_profits,
            reason=f"fault scenario seed {self.seed}")

    def price(self) -> Decimal:
        with self.venue.lock:
            return self.venue.state.prices[SYMBOL].last

    def set_price(self, last: Decimal, mark: Decimal | None = None) -> None:
        self.emulator.set_price(SYMBOL, Decimal(last), None if mark is None else Decimal(mark))

    def position(self) -> Position | None:
        return Position.objects.filter(account=self.account, status=Position.Status.OPEN).first()

    def venue_amount(self) -> Decimal:
        with self.venue.lock:
            return sum((p.amount for p in self.venue.state.positions.values() if p.symbol == SYMBOL), Decimal(0))

    def log(self) -> list[tuple[str, str, dict, str]]:
        """Return (method, path, params, fault kind met) of every REST request so far, in arrival order."""
        # The server logs a request and draws its fault in one step: the two logs pair up by position.
        pairs = zip(list(self.emulator.requests), list(self.emulator.faults.log))
        return [(method, path, params, kind) for (path, params), (method, _, kind) in pairs]

    def requests(self, path: str, method: str | None = None) -> list[tuple[dict, str]]:
        """Return (params, fault kind met) of each request that reached `path` with `method`, in order."""
        return [(params, kind) for m, p, params, kind in self.log() if p == path and method in (None, m)]

    def sent(self, path: str, key: str = "newClientOrderId") -> list[str]:
        """Return the values of `key` in the POSTs that reached `path`, in order (failed ones too)."""
        return [params[key] for params, _ in self.requests(path, "POST") if params.get(key)]

    def books(self, leg: str | None = None) -> list[Order]:
        rows = Order.objects.filter(account=self.account).order_by("created_at", "pk")
        return list(rows.filter(leg=leg) if leg else rows)


def rig_start(emulator: Emulator, clock: SimClock, seed: int, *, name: str = "faults", stream: bool = True) -> Rig:
    """Return a started rig: account, instrument, broker and a loop that has reconciled once."""
    client = usdm_client(emulator, timeout_ms=TIMEOUT_MS)
    client.load_markets()
    account = Account.objects.create(name=name, broker=Account.Broker.TESTNET,
                                     starting_balance_usdt=Decimal("10000"), balance_usdt=Decimal("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=SYMBOL, market_type="swap")
    rig = Rig(emulator, clock, None, account, instrument, None, seed, random.Random(seed))
    rig.broker = CcxtBroker(client, clock_ms=clock, sleep=rig.sleep)
    rig.loop = ExecutionLoop(account, rig.broker, HOLDER, reconcile=reconciliation_run,
                             stream=StreamApplier(account=account, broker=rig.broker) if stream else None)
    rig.advance(0)
    rig.loop.start(rig.now)
    return rig


def emulator_start(clock: SimClock, seed: int) -> Emulator:
    """Return a running emulator on `clock` at BTCUSDT 60000, its faults seeded with `seed`."""
    config = EmulatorConfig(engine=EngineConfig(client_id_scope="open"))
    emulator = Emulator(None, config=config, clock=clock, seed=seed).start()
    emulator.set_price(SYMBOL, PRICE)
    return emulator
