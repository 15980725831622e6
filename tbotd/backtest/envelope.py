"""Long series cut down to what a plot's pixels can show.

A year of 5-minute bars is 105,120 points on a plot about 1,200 pixels wide: drawing them all
costs matplotlib most of a second and shows nothing more. Per pixel column the first, lowest,
highest and last point are kept (the "M4" reduction), so the drawn line — every spike and every
drawdown's depth — is the same as with all the points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

COLUMNS = 1_600  # more than the ≈ 1,200-pixel plot area of a 12-inch figure at 110 dpi


def envelope(
    x: NDArray[np.generic], y: NDArray[np.float64], columns: int = COLUMNS
) -> NDArray[np.int64]:
    """Indices of the points to draw of ``y`` over the sorted ``x`` (numbers or datetime64):
    in each of ``columns`` equal slices of ``x``'s range, its first, lowest, highest and last."""
    n = len(y)
    if n <= 4 * columns:
        return np.arange(n, dtype=np.int64)
    position = x.astype(np.int64) if np.issubdtype(x.dtype, np.datetime64) else x
    bounds = np.linspace(float(position[0]), float(position[-1]), columns + 1)[1:-1]
    starts = np.unique(np.concatenate([[0], np.searchsorted(position, bounds)]))
    ends = np.append(starts[1:], n)
    segment = np.repeat(np.arange(len(starts)), ends - starts)
    keep = [starts, ends - 1]
    for extreme in (np.fmin, np.fmax):  # NaN ignored (a slice of NaN keeps only its ends)
        hits = np.flatnonzero(y == extreme.reduceat(y, starts)[segment])
        _, first = np.unique(segment[hits], return_index=True)  # the first of equal values
        keep.append(hits[first])
    return np.unique(np.concatenate(keep)).astype(np.int64)
