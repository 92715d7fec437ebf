"""Risk-per-trade sizing, the venue precision gate and maintenance margin brackets.

Pure: no Django, no I/O, no clock. Money and quantities are Decimal. Quantities always round down,
so a rounded size never exceeds the cap it was computed from.
"""
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SizingInput:
    equity_usdt: Decimal
    risk_fraction: Decimal      # 0.005 = half a percent of equity lost at the stop
    entry_price: Decimal
    stop_price: Decimal
    step_size: Decimal          # venue quantity increment
    min_notional_usdt: Decimal
    max_leverage: Decimal = Decimal("3")   # notional cap as a multiple of equity; margin = notional / max_leverage
    tick_size: Decimal | None = None       # set: size on the tick-rounded entry and stop the venue will see
    margin_in_use_usdt: Decimal = ZERO     # initial margin already held by open positions and orders
    max_margin_fraction: Decimal = Decimal("0.5")  # all margin, old and new, at most this share of equity
    open_positions: int = 0
    max_positions: int | None = None       # None: no cap on concurrent positions
    max_quantity: Decimal | None = None    # venue LOT_SIZE / MARKET_LOT_SIZE maxQty
    min_quantity: Decimal = ZERO           # venue minQty


@dataclass(frozen=True, slots=True)
class SizeResult:
    quantity: Decimal           # 0 means skip the trade; `reason` says why
    binding: str                # "risk", "leverage", "margin", "max_quantity", or the check that gave 0
    reason: str
    by_risk: Decimal            # unrounded quantity each cap allows (0 when a pre-check rejected)
    by_leverage: Decimal
    by_margin: Decimal
    notional_usdt: Decimal      # quantity x entry, 0 when rejected
    margin_usdt: Decimal        # notional / max_leverage
    stop_distance: Decimal = ZERO  # |entry - stop| the size was computed on, after tick rounding


def round_to_step(quantity: Decimal, step: Decimal) -> Decimal:
    """Return `quantity` rounded down to a multiple of `step`."""
    # Round down: rounding to nearest could risk more than the trader allowed.
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Return `price` rounded to the nearest multiple of `tick`."""
    return (price / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick


def round_stop(stop_price: Decimal, entry_price: Decimal, tick: Decimal) -> Decimal:
    """Return `stop_price` on the tick grid, rounded away from `entry_price` (down for a long, up for a short)."""
    # Away from the entry: the stop never moves inside the level the analysis put it beyond.
    # Sizing on the rounded stop (SizingInput.tick_size) keeps the loss within the risk budget.
    if stop_price == entry_price:
        return round_to_tick(stop_price, tick)
    rounding = ROUND_FLOOR if stop_price < entry_price else ROUND_CEILING
    return (stop_price / tick).to_integral_value(rounding=rounding) * tick


def size_position(inp: SizingInput) -> Decimal:
    """Return the quantity that loses `risk_fraction` of equity at the stop, or 0 to skip."""
    return size_detail(inp).quantity


def size_detail(inp: SizingInput) -> SizeResult:
    """Return the size under every cap (risk, leverage, margin, venue max), which cap bound it, and why 0 if so."""
    entry, stop = _sizing_prices(inp)
    distance = abs(entry - stop)
    rejected = _precheck(inp, entry, distance)
    if rejected is not None:
        return SizeResult(ZERO, rejected[0], rejected[1], ZERO, ZERO, ZERO, ZERO, ZERO, distance)
    room_usdt = inp.max_margin_fraction * inp.equity_usdt - inp.margin_in_use_usdt
    # Floor every division: a cap rounded up in the 28th digit could land exactly on a step it does not allow.
    with localcontext(rounding=ROUND_FLOOR):
        caps = {
            "risk": inp.equity_usdt * inp.risk_fraction / distance,
            # A tight stop must not turn a small risk into a huge notional: cap by leverage.
            "leverage": inp.equity_usdt * inp.max_leverage / entry,
            # The new position's margin (notional / max_leverage) must fit in the room left under the cap.
            "margin": room_usdt * inp.max_leverage / entry,
        }
    if inp.max_quantity is not None:
        caps["max_quantity"] = inp.max_quantity
    caps = {name: max(cap, ZERO) for name, cap in caps.items()}
    binding = min(caps, key=caps.__getitem__)  # the first listed wins a tie
    quantity = round_to_step(caps[binding], inp.step_size)
    rejected = _postcheck(inp, binding, caps[binding], quantity, entry)
    if rejected is not None:
        return SizeResult(ZERO, rejected[0], rejected[1], caps["risk"], caps["leverage"], caps["margin"],
                          ZERO, ZERO, distance)
    notional = quantity * entry
    return SizeResult(quantity, binding, _binding_reason(inp, binding, caps[binding], room_usdt, distance),
                      caps["risk"], caps["leverage"], caps["margin"], notional, notional / inp.max_leverage,
                      distance)


def _sizing_prices(inp: SizingInput) -> tuple[Decimal, Decimal]:
    if inp.tick_size is None:
        return inp.entry_price, inp.stop_price
    return round_to_tick(inp.entry_price, inp.tick_size), round_stop(inp.stop_price, inp.entry_price, inp.tick_size)


def _precheck(inp: SizingInput, entry: Decimal, distance: Decimal) -> tuple[str, str] | None:
    """Return (binding, reason) when the trade is refused before any cap is computed."""
    if distance == 0:
        at_tick = f" at tick {_plain(inp.tick_size)}" if inp.tick_size is not None else ""
        return "stop", f"stop distance is zero{at_tick}"
    if inp.equity_usdt <= 0:
        return "equity", f"equity {_plain(inp.equity_usdt)} USDT is not positive"
    if entry <= 0 or inp.max_leverage <= 0:
        return "input", f"entry {_plain(entry)} and max leverage {_plain(inp.max_leverage)} must be positive"
    if inp.max_positions is not None and inp.open_positions >= inp.max_positions:
        return "max_positions", f"{inp.open_positions} positions open, at the cap of {inp.max_positions}"
    cap_usdt = inp.max_margin_fraction * inp.equity_usdt
    if inp.margin_in_use_usdt >= cap_usdt:
        return "margin", (f"margin in use {_plain(inp.margin_in_use_usdt)} USDT already at the cap "
                          f"{_plain(cap_usdt)} USDT ({_plain(inp.max_margin_fraction * 100)}% of equity)")
    return None


def _postcheck(inp: SizingInput, binding: str, cap: Decimal, quantity: Decimal,
               entry: Decimal) -> tuple[str, str] | None:
    """Return (binding, reason) when the capped, rounded quantity is too small for the venue."""
    if quantity <= 0:
        return "step", f"rounds down to 0: the {binding} cap allows {_approx(cap)} < one step {_plain(inp.step_size)}"
    if quantity < inp.min_quantity:
        return "min_quantity", f"below min quantity: {_plain(quantity)} < {_plain(inp.min_quantity)}"
    reason = _min_notional_reason(quantity, entry, inp.min_notional_usdt)
    return ("min_notional", reason) if reason else None


def _binding_reason(inp: SizingInput, binding: str, cap: Decimal, room_usdt: Decimal, distance: Decimal) -> str:
    allows = f"allows {_approx(cap)}, rounded down to step {_plain(inp.step_size)}"
    return {
        "risk": f"risk {_plain(inp.equity_usdt * inp.risk_fraction)} USDT over stop distance {_plain(distance)} "
                f"{allows}",
        "leverage": f"leverage {_plain(inp.max_leverage)}x of equity {_plain(inp.equity_usdt)} USDT {allows}",
        "margin": f"margin room {_plain(room_usdt)} USDT at {_plain(inp.max_leverage)}x {allows}",
        "max_quantity": f"venue max quantity {allows}",
    }[binding]


def _min_notional_reason(quantity: Decimal, price: Decimal, min_notional: Decimal) -> str:
    notional = quantity * price
    if notional >= min_notional:
        return ""
    return (f"below min notional: {_plain(quantity)} x {_plain(price)} = {_plain(notional)} USDT "
            f"< {_plain(min_notional)} USDT")


def _approx(value: Decimal) -> str:
    return _plain(Decimal(format(value, ".8g")))


def _plain(value: Decimal) -> str:
    # normalize() alone prints 1E+2 for 100; format "f" keeps it readable.
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class VenueFilters:
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal = ZERO
    max_quantity: Decimal | None = None
    min_notional: Decimal = ZERO    # USDT


@dataclass(frozen=True, slots=True)
class PrecisionResult:
    price: Decimal              # on the tick grid
    quantity: Decimal           # rounded down to the step
    reason: str = ""            # empty when the venue would accept the order

    @property
    def ok(self) -> bool:
        return not self.reason


def precision_check(price: Decimal, quantity: Decimal, filters: VenueFilters, *,
                    stop_for_entry: Decimal | None = None, reduce_only: bool = False) -> PrecisionResult:
    """Return price and quantity on the venue grid, with the reason the venue would refuse them (if any).

    `price` is the limit price, or the reference price of a market order. Entries and targets round to the
    nearest tick; a stop (pass its entry as `stop_for_entry`) rounds away from that entry. Quantity rounds
    down to the step. Reduce-only orders skip the min-notional check, as on Binance.
    """
    if price <= 0:
        return PrecisionResult(price, quantity, f"price {_plain(price)} is not positive")
    rounded_price = (round_to_tick(price, filters.tick_size) if stop_for_entry is None
                     else round_stop(price, stop_for_entry, filters.tick_size))
    rounded_qty = round_to_step(quantity, filters.step_size)
    return PrecisionResult(rounded_price, rounded_qty, _venue_reason(rounded_price, quantity, rounded_qty,
                                                                     filters, reduce_only))


def _venue_reason(price: Decimal, asked: Decimal, quantity: Decimal, filters: VenueFilters,
                  reduce_only: bool) -> str:
    if quantity <= 0:
        return f"quantity {_plain(asked)} rounds down to 0 at step {_plain(filters.step_size)}"
    if quantity < filters.min_quantity:
        return f"below min quantity: {_plain(quantity)} < {_plain(filters.min_quantity)}"
    if filters.max_quantity is not None and quantity > filters.max_quantity:
        return f"above max quantity: {_plain(quantity)} > {_plain(filters.max_quantity)}"
    if reduce_only:
        return ""
    return _min_notional_reason(quantity, price, filters.min_notional)


def filters_from_ccxt_market(market: Mapping, *, market_order: bool = False) -> VenueFilters:
    """Return the filters of a ccxt unified market; `market_order` also applies MARKET_LOT_SIZE.

    Precondition: the exchange uses ccxt's TICK_SIZE precision mode (binance, binanceusdm), so
    precision["price"] and precision["amount"] are the tick and step themselves, not digit counts.
    """
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    tick, step = _decimal(precision.get("price")), _decimal(precision.get("amount"))
    if tick is None or step is None:
        raise ValueError(f"market {market.get('symbol')!r} has no price/amount precision")
    lots = [limits.get("amount") or {}] + ([limits.get("market") or {}] if market_order else [])
    mins = [v for v in (_decimal(lot.get("min")) for lot in lots) if v is not None]
    maxs = [v for v in (_decimal(lot.get("max")) for lot in lots) if v is not None]
    min_notional = _decimal((limits.get("cost") or {}).get("min"))
    return VenueFilters(tick, step, max(mins, default=ZERO), min(maxs, default=None),
                        ZERO if min_notional is None else min_notional)


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    # repr() of a float is its shortest round-trip form: 0.1 stays 0.1, not 0.1000000000000000055.
    return Decimal(repr(value) if isinstance(value, float) else str(value))


def brackets_from_ccxt(rows: Iterable[Sequence]) -> tuple[tuple[Decimal, Decimal], ...]:
    """Return (notional floor USDT, maintenance margin rate) pairs, ascending, from ccxt's leverageBrackets rows."""
    return tuple(sorted((_decimal(floor), _decimal(rate)) for floor, rate in rows))


def maintenance_margin_rate(notional_usdt: Decimal, brackets: Sequence[tuple[Decimal, Decimal]]) -> Decimal:
    """Return the maintenance margin rate of the bracket holding `abs(notional_usdt)`; brackets ascend."""
    # A floor is inclusive: ccxt's binance position parser moves to a bracket once notional >= its floor.
    notional = abs(notional_usdt)
    rate = brackets[0][1]
    for floor, bracket_rate in brackets:
        if notional < floor:
            break
        rate = bracket_rate
    return rate
