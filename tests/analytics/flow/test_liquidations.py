import math

import pytest

from analytics.flow.liquidations import liquidation_context, proximity_weight, to_cluster
from analytics.flow.types import Cluster, FlowParams, LiquidationZonePoint

P = FlowParams()


def zone(low, high, size, side="long"):
    return LiquidationZonePoint(side, low, high, size, 0)


def test_to_cluster_distance_to_nearest_band_edge_in_percent():
    assert to_cluster(zone(102, 104, 1.0, "short"), 100.0) == ("above", Cluster(102, 104, "short", 1.0, 2.0))
    assert to_cluster(zone(95, 97, 1.0), 100.0) == ("below", Cluster(95, 97, "long", 1.0, 3.0))


def test_to_cluster_price_inside_band_is_distance_zero():
    assert to_cluster(zone(99, 103, 1.0), 100.0)[1].distance_pct == 0.0


def test_proximity_weight_decays_with_distance():
    assert proximity_weight(Cluster(0, 0, "long", 100.0, 2.0), 2.0) == pytest.approx(100 / math.e)


def test_liquidation_context_heavier_near_side_is_magnet():
    zones = (zone(102, 103, 100.0, "short"), zone(110, 111, 500.0, "short"), zone(97, 98, 300.0))

    ctx = liquidation_context(zones, 100.0, P)

    above = 100 * math.exp(-1.0) + 500 * math.exp(-5.0)
    below = 300 * math.exp(-1.0)
    assert ctx.nearest_above.price_low == 102 and ctx.nearest_below.price_high == 98
    assert (ctx.weight_above, ctx.weight_below) == (pytest.approx(above), pytest.approx(below))
    assert ctx.magnet == "below"
    assert ctx.magnet_strength == pytest.approx((below - above) / (below + above))


def test_liquidation_context_without_price_notes_it():
    ctx = liquidation_context((zone(1, 2, 1.0),), None, P)

    assert ctx.magnet == "" and ctx.notes


def test_liquidation_context_balanced_sides_has_no_magnet():
    ctx = liquidation_context((zone(101, 101, 1.0), zone(99, 99, 1.0)), 100.0, P)

    assert (ctx.magnet, ctx.magnet_strength) == ("", 0.0)
