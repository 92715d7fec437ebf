"""The entry rule: trade with an up/down structure when momentum agrees. Pure: no Django, no I/O."""
from dataclasses import dataclass, field
from decimal import Decimal

from analytics.snapshot import MarketSnapshot


@dataclass(frozen=True, slots=True)
class RuleParams:
    sl_atr_multiple: Decimal = Decimal("1.5")
    tp_atr_multiple: Decimal = Decimal("3.0")


@dataclass(frozen=True, slots=True)
class Signal:
    action: str                          # LONG, SHORT or FLAT
    reason: str
    rationale: tuple[str, ...] = field(default=())
    entry_price: Decimal | None = None
    stop_price: Decimal | None = None
    target_price: Decimal | None = None


def decide(snapshot: MarketSnapshot, params: RuleParams) -> Signal:
    """Return LONG when structure is up and momentum is up, SHORT mirrored, else FLAT."""
    rationale = (
        f"structure {snapshot.trend} ({' '.join(snapshot.structure_labels) or 'no swings yet'})",
        f"momentum {snapshot.momentum} (ROC {snapshot.roc_atr:+.2f} ATR, range x{snapshot.range_expansion:.2f},"
        f" volume x{snapshot.volume_ratio:.2f})",
        f"ATR {snapshot.atr:.2f} ({snapshot.atr_fraction:.3%} of price)",
    )
    if not snapshot.atr > 0:
        return Signal("FLAT", "ATR not available", rationale)
    if snapshot.trend == "up" and snapshot.momentum == "up":
        action = "LONG"
    elif snapshot.trend == "down" and snapshot.momentum == "down":
        action = "SHORT"
    else:
        return Signal("FLAT", f"no alignment: structure {snapshot.trend}, momentum {snapshot.momentum}", rationale)
    entry = Decimal(repr(snapshot.close))
    atr_value = Decimal(repr(snapshot.atr))
    direction = 1 if action == "LONG" else -1
    stop = entry - direction * params.sl_atr_multiple * atr_value
    target = entry + direction * params.tp_atr_multiple * atr_value
    reason = f"{action}: structure {snapshot.trend} and momentum {snapshot.momentum}"
    return Signal(action, reason, rationale, entry, stop, target)
