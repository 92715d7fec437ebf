"""Spot-ETF flow context: daily totals, rolling sums, streaks and surprise. Pure: no Django, no I/O."""
from __future__ import annotations

import statistics
from collections import defaultdict

from analytics.flow.types import EtfContext, EtfFlowPoint, FlowParams


def latest_revisions(flows: tuple[EtfFlowPoint, ...]) -> tuple[EtfFlowPoint, ...]:
    """Return one flow per (fund, day): the one known last (a revision replaces the first figure)."""
    latest: dict = {}
    for f in flows:
        key = (f.fund, f.day)
        if key not in latest or f.known_at_ms >= latest[key].known_at_ms:
            latest[key] = f
    return tuple(latest.values())


def daily_totals(flows: tuple[EtfFlowPoint, ...]) -> list[tuple]:
    """Return [(day, net flow in USD summed over funds)], oldest day first; flows already one per fund and day."""
    totals: dict = defaultdict(float)
    for f in flows:
        totals[f.day] += f.net_flow_usd
    return sorted(totals.items())


def streak_days(totals: list[float]) -> int:
    """Return +n for n inflow days in a row up to the last, -n for outflow days, 0 after a flat day."""
    if not totals or totals[-1] == 0:
        return 0
    sign = 1 if totals[-1] > 0 else -1
    n = 0
    for value in reversed(totals):
        if value * sign <= 0:
            break
        n += 1
    return sign * n


def surprise_z(totals: list[float], days: int, min_history: int) -> float | None:
    """Return (last total - mean of the previous `days` totals) / their sample std."""
    history = totals[-1 - days:-1]
    if len(history) < max(2, min_history):
        return None
    std = statistics.stdev(history)
    return (totals[-1] - statistics.fmean(history)) / std if std > 0 else None


def etf_context(flows: tuple[EtfFlowPoint, ...], params: FlowParams) -> EtfContext:
    """Return the ETF context of the flows known so far; days count as trading days present."""
    flows = latest_revisions(flows)
    by_day = daily_totals(flows)
    if not by_day:
        return EtfContext(notes=("etf_flows: no rows",))
    days, totals = [d for d, _ in by_day], [t for _, t in by_day]
    notes = []
    if len(totals) < params.etf_surprise_days:
        notes.append(f"etf_flows: {len(totals)} days known, sums cover fewer than {params.etf_surprise_days}")
    z = surprise_z(totals, params.etf_surprise_days, params.etf_min_history_days)
    if z is None:
        notes.append("etf_flows: too little history (or no spread) for a surprise z-score")
    latest = tuple(sorted((f.fund, f.net_flow_usd) for f in flows if f.day == days[-1]))
    return EtfContext(
        latest_day=days[-1], latest_by_fund=latest, total_1d_usd=totals[-1], total_5d_usd=sum(totals[-5:]),
        total_20d_usd=sum(totals[-20:]), streak_days=streak_days(totals), surprise_z=z, notes=tuple(notes),
    )
