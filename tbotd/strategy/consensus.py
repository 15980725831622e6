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


def _argmax_votes(probs: Floats) -> tuple[Codes, Floats]:
    """Probability models' classes (index = direction code; ties: the earlier class) and their
    probabilities, for [n, k, 3] answers; a row with NaN gives confidence NaN (no vote)."""
    filled = np.where(np.isnan(probs), -1.0, probs)
    cls = np.argmax(filled, axis=-1).astype(np.int8)
    conf = filled.max(axis=-1)
    return cls, np.where(conf < 0, np.nan, conf)


def price_vote(expected: Floats, sd: Floats, band: float) -> tuple[Codes, Floats]:
    """The price model's class by the sign of its expected return beyond ``band``, and the
    Gaussian probability of that class (NaN where it did not answer)."""
    tails = normal_cdf(np.concatenate([(expected - band) / sd, (-band - expected) / sd]))
    up, down = tails[: len(expected)], tails[len(expected) :]  # P(r > band), P(r < -band)
    cls = np.where(expected > band, LONG, np.where(expected < -band, SHORT, FLAT))
    conf = np.where(cls == LONG, up, np.where(cls == SHORT, down, 1.0 - up - down))
    return cls.astype(np.int8), conf  # NaN in, NaN out: no answer, no vote


def votes(models: ModelArrays, params: ConsensusParams) -> tuple[Codes, Floats]:
    """Every model's vote per bar: classes [n, k] and confidences [n, k] (NaN: no answer), in
    the order direction, price, regime (when it votes)."""
    p_cls, p_conf = price_vote(models.expected_return, models.sd, params.fee_band)
    if not params.regime_votes:
        d_cls, d_conf = _argmax_votes(models.direction)
        return np.stack([d_cls, p_cls], axis=1), np.stack([d_conf, p_conf], axis=1)
    cls, conf = _argmax_votes(np.stack([models.direction, models.regime], axis=1))
    classes = np.stack([cls[:, 0], p_cls, cls[:, 1]], axis=1)
    return classes, np.stack([conf[:, 0], p_conf, conf[:, 1]], axis=1)


_CLASSES = np.array([SHORT, FLAT, LONG], dtype=np.int8)


def consensus(models: ModelArrays, params: ConsensusParams) -> Consensus:
    """The models' consensus on every bar (see the module docstring)."""
    classes, confidence = votes(models, params)
    voting = confidence > params.min_confidence  # NaN (no answer) never votes
    counts = ((classes[:, :, None] == _CLASSES) & voting[:, :, None]).sum(axis=1)
    quorum = counts.sum(axis=1)
    winner = np.argmax(counts, axis=1).astype(np.int8)  # index = direction code
    share = counts.max(axis=1) / np.maximum(quorum, 1)
    has_quorum = quorum >= params.min_quorum
    agreed = has_quorum & (share >= params.min_agreement - AGREEMENT_TOLERANCE)
    reasons = np.where(
        has_quorum,
        np.where(agreed, BIT[Reason.CONSENSUS], BIT[Reason.NO_CONSENSUS]),
        BIT[Reason.NO_QUORUM],
    )
    direction = np.where(agreed, winner, ABSTAIN).astype(np.int8)
    return Consensus(
        direction, quorum.astype(np.int64), np.where(has_quorum, share, np.nan), reasons
    )
