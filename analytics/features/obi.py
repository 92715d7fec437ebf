"""Order-book imbalance (OBI) near the mid, from depth snapshots. Pure: bytes in, values out.

OBI = bid volume / (bid volume + ask volume), counting only levels within `band_bps` of the mid
((best bid + best ask) / 2): 1 all bids, 0 all asks, 0.5 balanced. NaN when a side is empty or
nothing lies in the band. `obi` takes one snapshot (the live path); `obi_matrix` takes many
snapshots as level arrays (the vectorised path). `ObiState` and `obi_ema` add an exponential
average over snapshots that skips NaN snapshots.

Parsers for the two recorded layouts in MARKET_DATA_DIR:
- Tardis `book_snapshot_<N>` (one row per snapshot; `timestamp` in µs; columns asks[i].price,
  asks[i].amount, bids[i].price, bids[i].amount),
- Binance/nautilus depth rows (`symbol,timestamp,...,side,update_type,price,qty,pu`; ms; side b/a),
  grouped into one snapshot per (timestamp, last_update_id).
"""
import csv
import io
from dataclasses import dataclass

import numpy as np

from market.csvformat import decompress


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    ts_ms: int
    bids: np.ndarray    # shape (levels, 2): price, quantity; best first
    asks: np.ndarray


@dataclass(frozen=True, slots=True)
class ObiValue:
    obi: float
    obi_ema: float


def _band_volume(side: np.ndarray, limit: float, is_bid: bool) -> float:
    if not len(side):
        return 0.0
    inside = side[:, 0] >= limit if is_bid else side[:, 0] <= limit
    return float(side[inside, 1].sum())


def obi(bids: np.ndarray, asks: np.ndarray, band_bps: float = 10.0) -> float:
    """Return bid volume / (bid + ask volume) within `band_bps` of the mid; NaN if undefined.

    `bids` and `asks` are (levels, 2) arrays of price and quantity, in any order.
    """
    bids, asks = (np.asarray(a, np.float64).reshape(-1, 2) for a in (bids, asks))
    if not len(bids) or not len(asks):
        return float("nan")
    mid = (bids[:, 0].max() + asks[:, 0].min()) / 2
    half = mid * band_bps / 10_000
    bid_volume = _band_volume(bids, mid - half, True)
    ask_volume = _band_volume(asks, mid + half, False)
    total = bid_volume + ask_volume
    return bid_volume / total if total > 0 else float("nan")


def obi_matrix(bid_price: np.ndarray, bid_qty: np.ndarray, ask_price: np.ndarray, ask_qty: np.ndarray,
               band_bps: float = 10.0) -> np.ndarray:
    """Return OBI per snapshot from (snapshots, levels) arrays; NaN marks a missing level."""
    bid_price, bid_qty, ask_price, ask_qty = (np.asarray(a, np.float64) for a in (bid_price, bid_qty,
                                                                                    ask_price, ask_qty))
    with np.errstate(invalid="ignore"):
        best_bid = np.max(np.where(np.isnan(bid_price), -np.inf, bid_price), axis=1)
        best_ask = np.min(np.where(np.isnan(ask_price), np.inf, ask_price), axis=1)
        mid = (best_bid + best_ask) / 2
        half = mid * band_bps / 10_000
        bid_volume = np.where(bid_price >= (mid - half)[:, None], np.nan_to_num(bid_qty), 0.0).sum(axis=1)
        ask_volume = np.where(ask_price <= (mid + half)[:, None], np.nan_to_num(ask_qty), 0.0).sum(axis=1)
        total = bid_volume + ask_volume
        defined = np.isfinite(mid) & (total > 0)
        return np.where(defined, bid_volume / np.where(defined, total, 1.0), np.nan)


def obi_ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Return the exponential average of OBI values (weight `alpha` on the newest); NaN values are skipped."""
    out = np.empty(len(values))
    ema = float("nan")
    # A loop: the recursion is sequential and snapshot series are short next to bar series.
    for i, value in enumerate(np.asarray(values, np.float64).tolist()):
        if value == value:
            ema = value if ema != ema else ema + alpha * (value - ema)
        out[i] = ema
    return out


class ObiState:
    """OBI per snapshot plus its exponential average; memory is one float."""

    def __init__(self, band_bps: float = 10.0, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.band_bps, self.alpha = band_bps, alpha
        self._ema = float("nan")

    def update(self, snapshot: DepthSnapshot) -> ObiValue:
        """Add one snapshot and return its OBI and the average so far."""
        value = obi(snapshot.bids, snapshot.asks, self.band_bps)
        if value == value:
            self._ema = value if self._ema != self._ema else self._ema + self.alpha * (value - self._ema)
        return ObiValue(value, self._ema)


def snapshot_levels(snapshots: list[DepthSnapshot]) -> tuple[np.ndarray, ...]:
    """Return (bid_price, bid_qty, ask_price, ask_qty) as (snapshots, levels) arrays padded with NaN."""
    depth = max([max(len(s.bids), len(s.asks)) for s in snapshots] + [1])
    out = [np.full((len(snapshots), depth), np.nan) for _ in range(4)]
    for row, snap in enumerate(snapshots):
        for col, side in ((0, snap.bids), (2, snap.asks)):
            out[col][row, :len(side)], out[col + 1][row, :len(side)] = side[:, 0], side[:, 1]
    return tuple(out)


def parse_depth_snapshots(data: bytes, name: str) -> list[DepthSnapshot]:
    """Return the snapshots of a recorded depth file (gzip or plain), oldest first."""
    rows = list(csv.DictReader(io.StringIO(decompress(data, name).decode())))
    if rows and "asks[0].price" in rows[0]:
        return [_tardis_row(row) for row in rows]
    if rows and "side" in rows[0]:
        return _depth_rows(rows)
    raise ValueError(f"{name}: not a Tardis book snapshot or Binance depth file")


def _tardis_row(row: dict) -> DepthSnapshot:
    sides = {}
    for side in ("bids", "asks"):
        levels, i = [], 0
        while f"{side}[{i}].price" in row:
            price, amount = row[f"{side}[{i}].price"], row[f"{side}[{i}].amount"]
            if price and amount:
                levels.append((float(price), float(amount)))
            i += 1
        sides[side] = np.array(levels, np.float64).reshape(-1, 2)
    return DepthSnapshot(int(row["timestamp"]) // 1000, sides["bids"], sides["asks"])


def _depth_rows(rows: list[dict]) -> list[DepthSnapshot]:
    groups: dict[tuple[int, str], dict[str, list]] = {}
    for row in rows:
        key = (int(row["timestamp"]), row.get("last_update_id", ""))
        levels = groups.setdefault(key, {"b": [], "a": []})
        levels[row["side"]].append((float(row["price"]), float(row["qty"])))
    snapshots = []
    for (ts_ms, _), levels in groups.items():
        bids = np.array(sorted(levels["b"], reverse=True), np.float64).reshape(-1, 2)
        asks = np.array(sorted(levels["a"]), np.float64).reshape(-1, 2)
        snapshots.append(DepthSnapshot(ts_ms, bids, asks))
    return sorted(snapshots, key=lambda s: s.ts_ms)
