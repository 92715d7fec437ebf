"""Risk gates: small named rules that allow or block a new trade. Pure: no Django, no I/O, no clock."""
from dataclasses import asdict, dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    verdict: str        # "allow" or "block"
    reason: str

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def as_dict(self) -> dict:
        return asdict(self)


def check_daily_loss(day_start_equity: Decimal, equity_now: Decimal, limit_fraction: Decimal) -> GateResult:
    """Block when today's loss reaches `limit_fraction` of the equity the UTC day started with."""
    if day_start_equity <= 0:
        return GateResult("daily_loss", "block", "no starting equity for today")
    change = (equity_now - day_start_equity) / day_start_equity
    text = f"today {change:+.2%} vs limit -{limit_fraction:.2%}"
    if change <= -limit_fraction:
        return GateResult("daily_loss", "block", f"daily loss limit hit: {text}")
    return GateResult("daily_loss", "allow", text)


def check_no_open_position(has_open_position: bool) -> GateResult:
    """Block a new entry while the instrument already has an open position."""
    if has_open_position:
        return GateResult("one_position", "block", "a position is already open on this instrument")
    return GateResult("one_position", "allow", "no open position")


def check_costs_vs_target(entry_price: Decimal, target_price: Decimal, taker_fee_fraction: Decimal,
                          slippage_bps: Decimal, max_cost_share: Decimal) -> GateResult:
    """Block when round-trip fees and slippage would eat more than `max_cost_share` of the target move."""
    target_move = abs(target_price - entry_price) / entry_price
    round_trip = 2 * (taker_fee_fraction + slippage_bps / Decimal(10_000))
    if target_move == 0:
        return GateResult("costs", "block", "target equals entry")
    share = round_trip / target_move
    text = f"round-trip costs {round_trip:.3%} are {share:.0%} of the {target_move:.3%} target move"
    if share > max_cost_share:
        return GateResult("costs", "block", f"{text} (limit {max_cost_share:.0%})")
    return GateResult("costs", "allow", text)


def first_block(results: list[GateResult]) -> GateResult | None:
    """Return the first blocking verdict, or None when every gate allows."""
    return next((r for r in results if r.blocked), None)
