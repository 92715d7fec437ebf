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


def first_block(results: list[GateResult]) -> GateResult | None:
    """Return the first blocking verdict, or None when every gate allows."""
    return next((r for r in results if r.blocked), None)
