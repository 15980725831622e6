"""The meta-label gate (README: The ML enhancement layer, ``secondary_model = "meta_label"``).

A meta-label model (``tbotd train --meta-label``) learnt, from the classic strategy's own past
signals, the probability that a trade in a given direction reaches its take-profit before its
stop-loss after fees. It answers for **both** directions on every bar (``meta[:, 0]`` for a
long, ``meta[:, 1]`` for a short), so its answer never depends on the classic signal or on any
strategy state: the backtest computes it for every bar at once, the daemon for the candle that
just closed, and the gate below picks the column of the classic signal's direction.

The gate acts on the classic signal's setups only (long or short): at or above ``threshold``
the setup stands (``meta_confirmed``), below it the setup is vetoed (abstain, ``meta_vetoed``),
and without an answer (NaN: the model could not be loaded, too little history) it is vetoed too
(``meta_missing``) — a confirmation model that cannot confirm never lets a trade through.
Flat (mean reversion's exit) and abstaining bars pass unchanged: the gate decides entries, never
exits. It sizes nothing: the classic confidence is kept, so the position rules act as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Reason
from tbotd.domain.market import Candle
from tbotd.strategy.signal import ABSTAIN, BIT, LONG, SHORT, Floats, Opinions

META_SIDES = ("long", "short")  # the columns of a meta-label answer


class MetaScorer(Protocol):
    """The meta-label model as the strategy asks it: per closed candle (the daemon's session),
    per bar of a history (the backtest)."""

    @property
    def error(self) -> str | None:
        """Why the model is unusable (every setup is then vetoed); None while it is usable or
        not asked yet."""

    def latest(self, history: Sequence[Candle]) -> Floats:
        """P(take-profit first | long, short) for the newest candle of ``history``: [1, 2],
        NaN where the model has no answer."""

    def threshold(self) -> float:
        """The level the model was trained to confirm at (NaN: no model)."""

    def batch(self, open_ms: NDArray[np.int64], ohlcv: tuple[Floats, ...]) -> Floats:
        """[n, 2] for every bar of one symbol's candles (open, high, low, close, volume)."""


@dataclass(frozen=True)
class MetaLabel:
    """The gate's level (None: the model's own) and the model behind it (``scorer``: loaded
    lazily, see ``tbotd.ml.meta.scorer``)."""

    threshold: float | None
    scorer: MetaScorer

    def level(self) -> float:
        """The P(take-profit first) a setup needs."""
        return self.scorer.threshold() if self.threshold is None else self.threshold


def no_meta(n: int) -> Floats:
    """``n`` bars without a meta-label answer."""
    return np.full((n, 2), np.nan)


def meta_gate(base: Opinions, meta: Floats | None, threshold: float) -> Opinions:
    """The classic signal with every long/short setup confirmed or vetoed by ``meta``."""
    n = len(base)
    p_all = no_meta(n) if meta is None else meta
    setup = (base.direction == LONG) | (base.direction == SHORT)
    p = np.where(base.direction == LONG, p_all[:, 0], p_all[:, 1])
    missing = setup & ~np.isfinite(p)
    with np.errstate(invalid="ignore"):
        confirmed = setup & ~missing & (p >= threshold)
    vetoed = setup & ~missing & ~confirmed
    direction = base.direction.copy()
    confidence = base.confidence.copy()
    reasons = base.reasons.copy()
    blocked = missing | vetoed
    direction[blocked] = ABSTAIN
    confidence[blocked] = 0.0
    reasons[confirmed] |= BIT[Reason.META_CONFIRMED]
    reasons[vetoed] |= BIT[Reason.META_VETOED]
    reasons[missing] |= BIT[Reason.META_MISSING]
    return Opinions(direction, confidence, reasons)
