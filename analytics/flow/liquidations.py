"""Liquidation-zone context: nearest clusters around the price and the magnet side.

Pure: no Django, no I/O, no clock. Each uploaded zone is one cluster (zones are not merged).
"""
from __future__ import annotations

import math

from analytics.flow.types import Cluster, FlowParams, LiquidationContext, LiquidationZonePoint


def to_cluster(zone: LiquidationZonePoint, price: float) -> tuple[str, Cluster]:
    """Return ('above' | 'below', the zone with its distance from `price` in percent)."""
    mid = (zone.price_low + zone.price_high) / 2.0
    where = "above" if mid > price else "below"
    if zone.price_low <= price <= zone.price_high:
        gap = 0.0
    else:
        gap = zone.price_low - price if where == "above" else price - zone.price_high
    return where, Cluster(zone.price_low, zone.price_high, zone.side, zone.size_usd, gap / price * 100.0)


def proximity_weight(cluster: Cluster, proximity_pct: float) -> float:
    """Return size_usd * exp(-distance_pct / proximity_pct): big and near pulls hardest."""
    return cluster.size_usd * math.exp(-cluster.distance_pct / proximity_pct)


def liquidation_context(zones: tuple[LiquidationZonePoint, ...], price: float | None,
                        params: FlowParams) -> LiquidationContext:
    """Return nearest clusters above and below `price` and the magnet (the heavier proximity-weighted side)."""
    if price is None or not price > 0:
        return LiquidationContext(notes=("liquidation_zones: no price to measure distances from",))
    if not zones:
        return LiquidationContext(price=price, notes=("liquidation_zones: no valid zones",))
    sides: dict[str, list[Cluster]] = {"above": [], "below": []}
    for zone in zones:
        where, cluster = to_cluster(zone, price)
        sides[where].append(cluster)
    nearest = {k: min(v, key=lambda c: c.distance_pct) if v else None for k, v in sides.items()}
    weight = {k: sum(proximity_weight(c, params.liquidation_proximity_pct) for c in v) for k, v in sides.items()}
    total = weight["above"] + weight["below"]
    strength = abs(weight["above"] - weight["below"]) / total if total > 0 else 0.0
    magnet = "" if strength == 0 else ("above" if weight["above"] > weight["below"] else "below")
    return LiquidationContext(
        price=price, nearest_above=nearest["above"], nearest_below=nearest["below"],
        weight_above=weight["above"], weight_below=weight["below"], magnet=magnet, magnet_strength=strength,
    )
