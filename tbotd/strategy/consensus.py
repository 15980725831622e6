"""Model consensus (README: Pure ML strategies): do the models that answered agree on a direction?

Each model that answered casts one vote, a class in (short, flat, long) with a confidence:

* the **direction** model: its most probable class (ties: the earlier of down, neutral, up), at
  that probability;
* the **price** (volatility) model: by the sign of its expected forward return beyond the fee
  band (``fee_band``, the round trip's costs as a fraction of price): above it long, below its
  negative short, inside it flat; its confidence is the probability of that class under the
  Gaussian N(expected_return, sd) it predicts (P(r > band), P(r < −band), or the mass inside);
* the **regime** model (``regime_votes``): its most probable class (trend down → short,
  sideways → flat, trend up → long), at that probability.

The models whose confidence exceeds ``min_confidence`` form the quorum. Fewer than
``min_quorum`` of them: **no quorum**. Otherwise the most voted class must hold at least
``min_agreement`` of the quorum, else **no consensus** (so with ``min_agreement`` above one half
a tie never agrees). Absent models (NaN) never vote and are never filled in: they only shrink
the quorum. Written over arrays, so the daemon (one bar) and the backtest (every bar) agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Reason
from tbotd.strategy.model_inputs import ModelArrays
from tbotd.strategy.signal import ABSTAIN, BIT, FLAT, LONG, SHORT, Codes, Floats, Masks

AGREEMENT_TOLERANCE = 1e-9  # 3 of 5 is 60 % whatever the float rounding of 0.6 × 5
_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """``[strategy.consensus]``: who votes and how many must agree."""

    min_confidence: float = 0.3
    min_quorum: int = 2
    min_agreement: float = 0.6
    fee_band: float = 0.0  # the price model votes long/short only beyond ± this return
    regime_votes: bool = True


@dataclass(frozen=True)
class Consensus:
    """Per bar: the agreed direction (``ABSTAIN`` without quorum or consensus), the quorum's
    size, the share of it that agreed (NaN without quorum) and the reason bit (``CONSENSUS``,
    ``NO_QUORUM`` or ``NO_CONSENSUS``)."""

    direction: Codes
    quorum: NDArray[np.int64]
    agreement: Floats
    reasons: Masks


def normal_cdf(x: Floats) -> Floats:
    """Φ(x), element by element with :func:`math.erf` (the same bits for one bar or many)."""
    z = np.asarray(x, dtype=np.float64) / math.sqrt(2.0)
    erf = np.asarray(_erf(z), dtype=np.float64)
    return np.asarray(0.5 * (1.0 + erf), dtype=np.float64)


def _argmax_vote(probs: Floats) -> tuple[Codes, Floats]:
    """A probability model's class (index = direction code) and its probability; NaN rows give
    confidence NaN (no vote)."""
    filled = np.where(np.isfinite(probs), probs, -1.0)
    cls = np.argmax(filled, axis=1).astype(np.int8)
    conf = np.take_along_axis(probs, cls[:, None].astype(np.int64), axis=1)[:, 0]
    return cls, np.asarray(conf, dtype=np.float64)


def price_vote(expected: Floats, sd: Floats, band: float) -> tuple[Codes, Floats]:
    """The price model's class by the sign of its expected return beyond ``band``, and the
    Gaussian probability of that class (NaN where it did not answer)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        up = normal_cdf((expected - band) / sd)  # P(r > band)
        down = normal_cdf((-band - expected) / sd)  # P(r < -band)
        cls = np.where(expected > band, LONG, np.where(expected < -band, SHORT, FLAT))
        conf = np.where(cls == LONG, up, np.where(cls == SHORT, down, 1.0 - up - down))
    answered = np.isfinite(expected) & np.isfinite(sd)
    return cls.astype(np.int8), np.where(answered, conf, np.nan)


def votes(models: ModelArrays, params: ConsensusParams) -> tuple[Codes, Floats]:
    """Every model's vote per bar: classes [n, k] and confidences [n, k] (NaN: no answer)."""
    d_cls, d_conf = _argmax_vote(models.direction)
    p_cls, p_conf = price_vote(models.expected_return, models.sd, params.fee_band)
    classes, confidence = [d_cls, p_cls], [d_conf, p_conf]
    if params.regime_votes:
        r_cls, r_conf = _argmax_vote(models.regime)
        classes.append(r_cls)
        confidence.append(r_conf)
    return np.stack(classes, axis=1), np.stack(confidence, axis=1)


def consensus(models: ModelArrays, params: ConsensusParams) -> Consensus:
    """The models' consensus on every bar (see the module docstring)."""
    classes, confidence = votes(models, params)
    with np.errstate(invalid="ignore"):
        voting = np.isfinite(confidence) & (confidence > params.min_confidence)
    counts = np.stack([(voting & (classes == c)).sum(axis=1) for c in (SHORT, FLAT, LONG)], 1)
    quorum = counts.sum(axis=1).astype(np.int64)
    winner = np.argmax(counts, axis=1).astype(np.int8)  # index = direction code
    best = counts.max(axis=1)
    has_quorum = quorum >= params.min_quorum
    share = np.where(quorum > 0, best / np.maximum(quorum, 1), np.nan)
    agreed = has_quorum & (share >= params.min_agreement - AGREEMENT_TOLERANCE)
    reasons = np.where(
        ~has_quorum,
        BIT[Reason.NO_QUORUM],
        np.where(agreed, BIT[Reason.CONSENSUS], BIT[Reason.NO_CONSENSUS]),
    ).astype(np.int64)
    direction = np.where(agreed, winner, ABSTAIN).astype(np.int8)
    return Consensus(direction, quorum, np.where(has_quorum, share, np.nan), reasons)
