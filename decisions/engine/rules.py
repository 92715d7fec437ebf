"""The analysts' entry rule. Pure: no Django, no I/O.

LONG when the structure is up (HH-HL) and momentum is up, and the flow does not object: funding
acceptable, open interest not falling, liquidations sitting below, ETF flows supporting, global
risk acceptable and no blocking warning. SHORT mirrored. FLAT on conflicting signals, and FLAT
with the named reason when a flow filter objects. Every threshold is a RuleParams field.
"""
from dataclasses import dataclass, field
from decimal import Decimal

from analytics.snapshot import MarketSnapshot


@dataclass(frozen=True, slots=True)
class RuleParams:
    sl_atr_multiple: Decimal = Decimal("1.5")
    max_funding_long: float = 0.0005        # per 8h: a long pays more than 0.05 % -> too crowded
    min_funding_short: float = -0.0005      # a short pays more than 0.05 % -> too crowded
    oi_falling_pct: float = -2.0            # 4h open-interest change at or below this counts as falling
    max_global_risk: float = 70.0           # 0..100 flow risk score above which nothing is opened
    use_liquidations: bool = True           # LONG needs the liquidation magnet below (or none), SHORT above
    use_etf_flows: bool = True              # LONG needs 5-day ETF flows >= 0, SHORT <= 0
    blocking_warnings: tuple[str, ...] = ("funding_extreme_long", "funding_extreme_short", "oi_spike")
    # Take-profit ladder: targets at these multiples of the risk (entry to stop), closing these
    # shares of the position; the last target is `target_price`.
    tp_r_multiples: tuple[Decimal, ...] = (Decimal("1"), Decimal("2"), Decimal("3"))
    tp_shares: tuple[Decimal, ...] = (Decimal("0.4"), Decimal("0.4"), Decimal("0.2"))
    # Lower or other timeframes whose structure must agree (snapshot.extra["structure_trends"]);
    # one without enough closed bars is named in the rationale and not checked.
    structure_timeframes: tuple[str, ...] = ()
    # "atr": the stop sits sl_atr_multiple ATR from the entry. "structure": beyond the last swing low
    # (long) or high (short) by structure_buffer_atr ATR; the ATR stop when the swing is missing, on
    # the wrong side or further than structure_max_atr ATR away.
    stop_mode: str = "atr"
    structure_buffer_atr: Decimal = Decimal("0.2")
    structure_max_atr: Decimal = Decimal("4")


@dataclass(frozen=True, slots=True)
class FlowView:
    """The flow facts the rule reads; None where the input is missing (a missing input never blocks)."""

    funding_rate: float | None = None       # latest, per 8h
    oi_change_4h_pct: float | None = None
    liquidation_magnet: str = ""            # "above", "below" or ""
    etf_5d_usd: float | None = None
    global_risk: float | None = None        # 0..100
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Signal:
    action: str                          # LONG, SHORT or FLAT
    reason: str
    rationale: tuple[str, ...] = field(default=())
    entry_price: Decimal | None = None
    stop_price: Decimal | None = None
    target_price: Decimal | None = None
    take_profits: tuple[tuple[Decimal, Decimal], ...] = ()   # (price, share of the position), nearest first


def take_profit_ladder(entry: Decimal, stop: Decimal, params: RuleParams) -> tuple[tuple[Decimal, Decimal], ...]:
    """Return the (price, share) targets at the ladder's R multiples, on the profitable side of entry."""
    risk = entry - stop                     # positive for a long, negative for a short
    return tuple((entry + r * risk, share) for r, share in zip(params.tp_r_multiples, params.tp_shares))


def flow_objections(side: str, flow: FlowView, params: RuleParams) -> list[str]:
    """Return why the flow forbids a `side` ("LONG"/"SHORT") entry; empty when it does not."""
    long = side == "LONG"
    out = []
    if flow.funding_rate is not None:
        if long and flow.funding_rate > params.max_funding_long:
            out.append(f"funding {flow.funding_rate:.4%}/8h above the long limit {params.max_funding_long:.4%}")
        if not long and flow.funding_rate < params.min_funding_short:
            out.append(f"funding {flow.funding_rate:.4%}/8h below the short limit {params.min_funding_short:.4%}")
    if flow.oi_change_4h_pct is not None and flow.oi_change_4h_pct <= params.oi_falling_pct:
        out.append(f"open interest falling {flow.oi_change_4h_pct:+.1f}% over 4h")
    if params.use_liquidations and flow.liquidation_magnet == ("above" if long else "below"):
        out.append(f"liquidation magnet {flow.liquidation_magnet} price works against a {side.lower()}")
    if params.use_etf_flows and flow.etf_5d_usd is not None and (flow.etf_5d_usd < 0 if long else flow.etf_5d_usd > 0):
        out.append(f"ETF flows {flow.etf_5d_usd / 1e6:+,.0f}M USD over 5 days against a {side.lower()}")
    if flow.global_risk is not None and flow.global_risk > params.max_global_risk:
        out.append(f"global risk {flow.global_risk:.0f}/100 above {params.max_global_risk:.0f}")
    out.extend(f"warning {w}" for w in flow.warnings if w in params.blocking_warnings)
    return out


def _structure_confirmation(snapshot: MarketSnapshot, params: RuleParams, trend: str) -> tuple[tuple, list]:
    """Return (rationale lines, disagreements) of the confirming timeframes' structure."""
    trends = snapshot.extra.get("structure_trends") or {}
    lines, against = [], []
    for timeframe in params.structure_timeframes:
        seen = trends.get(timeframe)
        if seen is None:
            lines.append(f"{timeframe} structure: not enough closed bars; not checked")
        elif seen != trend:
            against.append(f"{timeframe} structure {seen}")
        else:
            lines.append(f"{timeframe} structure {seen} confirms")
    return tuple(lines), against


def decide(snapshot: MarketSnapshot, params: RuleParams, flow: FlowView | None = None) -> Signal:
    """Return LONG when structure and momentum are up and the flow agrees, SHORT mirrored, else FLAT."""
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
    trend = "up" if action == "LONG" else "down"
    confirm, unconfirmed = _structure_confirmation(snapshot, params, trend)
    rationale += confirm
    if unconfirmed:
        return Signal("FLAT", f"{action} not confirmed: {'; '.join(unconfirmed)}"[:255], rationale)
    objections = flow_objections(action, flow, params) if flow is not None else []
    if objections:
        return Signal("FLAT", f"{action} refused by the flow: {'; '.join(objections)}"[:255],
                      rationale + tuple(f"flow objects: {o}" for o in objections))
    reason = f"{action}: structure {snapshot.trend} and momentum {snapshot.momentum}"
    return signal_with_levels(snapshot, action, reason, rationale, params)


def signal_with_levels(snapshot: MarketSnapshot, action: str, reason: str, rationale: tuple[str, ...],
                       params: RuleParams) -> Signal:
    """Return a LONG/SHORT signal entering at the close, its stop `sl_atr_multiple` ATR away and the ladder."""
    entry = Decimal(repr(snapshot.close))
    stop, how = stop_level(snapshot, action, entry, params)
    ladder = take_profit_ladder(entry, stop, params)
    return Signal(action, reason, rationale + (how,), entry, stop, ladder[-1][0], ladder)


def stop_level(snapshot: MarketSnapshot, action: str, entry: Decimal, params: RuleParams) -> tuple[Decimal, str]:
    """Return the stop of a LONG/SHORT entry and a line saying how it was placed."""
    direction = 1 if action == "LONG" else -1
    atr_value = Decimal(repr(snapshot.atr))
    atr_stop = entry - direction * params.sl_atr_multiple * atr_value
    atr_line = f"stop {params.sl_atr_multiple} ATR from entry"
    if params.stop_mode != "structure":
        return atr_stop, atr_line
    swing = snapshot.last_swing_low if action == "LONG" else snapshot.last_swing_high
    if swing is None or swing != swing:  # missing or NaN
        return atr_stop, f"{atr_line} (no swing {'low' if direction == 1 else 'high'} for a structure stop)"
    stop = Decimal(repr(swing)) - direction * params.structure_buffer_atr * atr_value
    distance = direction * (entry - stop)
    if distance <= 0 or distance > params.structure_max_atr * atr_value:
        return atr_stop, f"{atr_line} (swing {swing:g} is on the wrong side or beyond {params.structure_max_atr} ATR)"
    return stop, f"stop {params.structure_buffer_atr} ATR beyond the last swing {'low' if direction == 1 else 'high'} {swing:g}"
