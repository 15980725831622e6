"""Finding the bars where something can happen, in numpy, so exact code runs only there.

The signal of every bar is known before the run (whatever the strategy's kind: ML, classic or
enhanced), and the position rules read only the signal and the state, so between two such bars
the state of a backtest provably stays as it is:

* **flat**: only a confident ``long``/``short`` can open a position; everything else makes the
  rules hold (below threshold, abstaining, ``flat`` with nothing to close);
* **in a position**: the rules can only act on a confident opposite signal (flip), a confident
  ``flat`` when ``on_neutral = "close"``, or a confident same-side signal when
  ``refresh_exits_on_hold`` (new TP/SL); a same-direction or below-threshold bar holds. Funding is
  settled at funding times; the resting stop-loss, take-profit or liquidation level can be hit.

Crossing a level is found with float64 arrays and a small tolerance, so the float test selects a
superset of the bars where :func:`tbotd.execution.paper_model.candle_exit` (the exact Decimal
test) fires; a candidate that turns out not to cross is simply a bar where the exact code finds
nothing. ``tests/unit/test_backtest_fastpath.py`` proves the whole scheme against a per-bar loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.enums import Side
from tbotd.strategy.signal import FLAT as NEUTRAL
from tbotd.strategy.signal import LONG, SHORT

TOLERANCE = 1e-9  # relative; far below any tick, far above float64's 1e-16 rounding
FIRST_WINDOW = 64
SHORT_SPAN = 8  # bars: up to here a plain loop is cheaper than a numpy window


def next_index(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``out[i]``: the first ``k >= i`` with ``mask[k]``, else ``n``; and ``out[n] = n``."""
    n = len(mask)
    idx = np.where(mask, np.arange(n, dtype=np.int64), n)
    out = np.minimum.accumulate(idx[::-1])[::-1]
    return np.append(out, np.int64(n))


@dataclass(frozen=True)
class EventIndex:
    """Next-event lookups per state (``flat``, ``long``, ``short``) and for funding times."""

    flat: NDArray[np.int64]
    long: NDArray[np.int64]
    short: NDArray[np.int64]
    funding: NDArray[np.int64]

    @classmethod
    def build(
        cls,
        signal: NDArray[np.int8],
        confidence: NDArray[np.float64],
        threshold: float,
        close_on_neutral: bool,
        refresh_on_hold: bool,
        funding_bar: NDArray[np.bool_],
    ) -> EventIndex:
        """From the per-bar signal (-1 none, or a code) and confidence the rules would see."""
        with np.errstate(invalid="ignore"):
            sure = confidence >= threshold  # the rules' own test: not (confidence < threshold)
        long_, short, neutral = (
            sure & (signal == LONG),
            sure & (signal == SHORT),
            sure & (signal == NEUTRAL),
        )
        close = neutral if close_on_neutral else np.zeros_like(neutral)
        return cls(
            flat=next_index(long_ | short),
            long=next_index(short | close | (long_ if refresh_on_hold else False)),
            short=next_index(long_ | close | (short if refresh_on_hold else False)),
            funding=next_index(funding_bar),
        )

    def decision(self, side: Side | None, i: int) -> int:
        """The first bar at or after ``i`` where the rules could act, in this state."""
        if side is None:
            found: int = self.flat.item(i)
        else:
            found = (self.long if side is Side.LONG else self.short).item(i)
        return found

    def decides(self, side: Side | None, i: int) -> bool:
        """Whether the rules could act at bar ``i`` in this state."""
        return self.decision(side, i) == i


def first_crossing(
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    lo: int,
    hi: int,
    side: Side,
    adverse: float | None,
    take: float | None,
) -> int:
    """The first bar in ``[lo, hi)`` whose range may reach ``adverse`` or ``take`` (else ``hi``).

    ``adverse`` is the level an adverse move reaches first (the nearer of stop-loss and
    liquidation), ``take`` the take-profit. Searched in growing windows, so a position that is
    closed soon costs little however long the history is.
    """
    if adverse is None and take is None:
        return hi
    up, down = 1.0 + TOLERANCE, 1.0 - TOLERANCE
    if side is Side.LONG:
        low_level = adverse * up if adverse is not None else -np.inf
        high_level = take * down if take is not None else np.inf
    else:
        low_level = take * up if take is not None else -np.inf
        high_level = adverse * down if adverse is not None else np.inf
    if hi - lo <= SHORT_SPAN:  # a position closed within a few bars: numpy's per-call cost
        for k in range(lo, hi):  # is more than comparing them one by one (the same floats)
            if low.item(k) <= low_level or high.item(k) >= high_level:
                return k
        return hi
    start, width = lo, FIRST_WINDOW
    while start < hi:
        end = min(start + width, hi)
        hit = (low[start:end] <= low_level) | (high[start:end] >= high_level)
        k = int(hit.argmax())
        if hit[k]:
            return start + k
        start, width = end, width * 4
    return hi
