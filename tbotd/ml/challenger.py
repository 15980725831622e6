"""Champion or challenger? Pure scoring on the held-out bars and the promotion rule.

Both models are scored on the same rows: the newest ``holdout_bars`` bars whose direction label
is known (its horizon has passed) and on which both models answered (past their warm-up, not
abstaining out of distribution). The score that decides is the direction model's log-loss (the
mean negative log-probability of the realised class: it rewards calibrated confidence, not only
the side), the hit rate on non-neutral calls is reported beside it. The challenger is promoted
only when its log-loss is lower by at least ``margin`` nats per bar over at least ``min_scored``
rows; a live model that does not load is replaced by any challenger that scores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

EPS = 1e-12


class Verdict(StrEnum):
    """What becomes of the challenger."""

    PROMOTE = "promote"
    KEEP = "keep"  # the champion stays live


@dataclass(frozen=True, slots=True)
class Score:
    """One model on the held-out rows: how many, log-loss (nats per bar), hit rate on
    non-neutral calls (None without any)."""

    n: int
    log_loss: float
    hit_rate: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and why, in words an operator can act on."""

    verdict: Verdict
    reason: str


def score(probs: NDArray[np.floating], labels: NDArray[np.integer]) -> Score:
    """``probs`` [N, 3] (down, neutral, up) against realised classes ``labels`` [N] (0/1/2)."""
    n = len(labels)
    if n == 0:
        return Score(0, math.nan, None)
    picked = probs[np.arange(n), labels].astype(np.float64)
    log_loss = float(-np.log(np.clip(picked, EPS, 1.0)).mean())
    calls = probs.argmax(axis=1)
    acted = calls != 1
    hits = (calls == labels)[acted]
    hit_rate = float(hits.mean()) if hits.size else None
    return Score(n, log_loss, hit_rate)


def decide(champion: Score | None, challenger: Score, margin: float, min_scored: int) -> Decision:
    """Promote only a challenger that beats the champion's log-loss by ``margin`` on enough
    rows (``champion`` None: the live model does not load, so any scoring challenger wins)."""
    if challenger.n < min_scored or not math.isfinite(challenger.log_loss):
        return Decision(
            Verdict.KEEP,
            f"only {challenger.n} held-out bars scored, {min_scored} needed: store more candles "
            "or lower ml.retrain.min_scored",
        )
    if champion is None or not math.isfinite(champion.log_loss):
        return Decision(Verdict.PROMOTE, "the live model does not load or score; any will do")
    gain = champion.log_loss - challenger.log_loss
    if gain >= margin:
        return Decision(
            Verdict.PROMOTE,
            f"held-out log-loss {challenger.log_loss:.5f} vs {champion.log_loss:.5f}: "
            f"better by {gain:.5f} ≥ margin {margin}",
        )
    return Decision(
        Verdict.KEEP,
        f"held-out log-loss {challenger.log_loss:.5f} vs {champion.log_loss:.5f}: "
        f"better by {gain:.5f} < margin {margin}",
    )


def common_rows(
    labels: NDArray[np.integer], ready: tuple[NDArray[np.bool_], ...], holdout: int
) -> NDArray[np.intp]:
    """Indices among the last ``holdout`` rows with a known label where every model answered."""
    mask = labels >= 0
    for r in ready:
        mask &= r
    mask[: max(0, len(labels) - holdout)] = False
    return np.flatnonzero(mask)
