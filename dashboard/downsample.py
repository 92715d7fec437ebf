"""Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013). Pure numpy, no Django."""
from __future__ import annotations

import numpy as np


def lttb_indices(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Return the sorted indices of at most `max_points` points that keep the shape of y(x).

    `x` must be increasing; the first and last points are always kept, and exactly
    `max_points` indices come back whenever the series is longer than that.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y differ in length: {n} != {len(y)}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    # Shift x to start at zero: epoch seconds times prices would lose float64 precision.
    xs = np.asarray(x, dtype=np.float64) - float(x[0])
    ys = np.asarray(y, dtype=np.float64)
    if max_points == 2:
        return np.array([0, n - 1])
    return _select(xs, ys, max_points)


def _select(xs: np.ndarray, ys: np.ndarray, max_points: int) -> np.ndarray:
    n = len(xs)
    # Inner points are split into max_points - 2 buckets; edges[i]..edges[i+1] is bucket i.
    edges = (np.arange(max_points - 1) * ((n - 2) / (max_points - 2))).astype(np.int64) + 1
    edges[-1] = n - 1
    chosen = np.empty(max_points, dtype=np.int64)
    chosen[0], chosen[-1] = 0, n - 1
    a = 0
    for i in range(max_points - 2):
        lo, hi = edges[i], edges[i + 1]
        # The third vertex is the mean of the next bucket (the last point for the last bucket).
        nlo, nhi = (edges[i + 1], edges[i + 2]) if i + 2 < len(edges) else (n - 1, n)
        cx, cy = xs[nlo:nhi].mean(), ys[nlo:nhi].mean()
        area = np.abs((xs[a] - cx) * (ys[lo:hi] - ys[a]) - (xs[a] - xs[lo:hi]) * (cy - ys[a]))
        a = lo + int(np.argmax(area))
        chosen[i + 1] = a
    return chosen
