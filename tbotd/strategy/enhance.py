"""The ML enhancement layer (README: Strategies): a classic signal and the ML opinion → one signal.

Written over arrays (one element per bar), so the backtest runs it over a whole history at once
and the daemon over its newest bar with the very same code. ``base`` is the classic signal
(``ABSTAIN`` when it has no setup or is warming up, ``FLAT`` for its exit rule, ``LONG``/``SHORT``
for a setup), ``ml`` the ML opinion with its abstentions already applied
(:func:`~tbotd.strategy.ml_opinion.ml_opinions`). ML *agrees* when it names the same direction as
the classic signal, *disagrees* when it names another one (a confident neutral disagrees with a
long), *abstains* otherwise. The truth table (README, "Strategies"):

========  ==================================  =======================  ======================
mode      ML agrees                           ML disagrees             ML abstains
========  ==================================  =======================  ======================
boost     conf = b·(1−w) + m·w  (boosted)     conf = b·(1 − w/2)       classic unchanged
                                              (reduced)                (ml_abstained)
filter    classic unchanged (ml_confirmed)    no signal (vetoed)       no signal, or classic
                                                                       with ``fail_open``
replace   ML's direction and confidence (replaced), on classic setups  no trade (ml_abstained)
          (``replace_on = "all_bars"``: on every bar)
hybrid    s = (1−w)·b± + w·m±; flat weight f = (1−w)·b_flat + w·m_flat;  classic unchanged
          |s| > f: sign(s) at |s|; else flat at f (blended)              (ml_abstained)
========  ==================================  =======================  ======================

Without a classic signal (``ABSTAIN``) boost, filter and replace-on-setups pass it through
(``classic_only``); hybrid blends it as 0. Exits follow the direction traded: the classic
strategy's (fixed percentages) unless the result took ML's direction (replace, or a hybrid blend
won by ML), then the model's ``sd`` or prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Provenance
from tbotd.strategy.kinds import EnhanceMode, ReplaceOn
from tbotd.strategy.signal import ABSTAIN, FLAT, LONG, SHORT, Opinions, signed

PROVENANCES = tuple(Provenance)
PROVENANCE_CODE = {p: i for i, p in enumerate(PROVENANCES)}


@dataclass(frozen=True, slots=True)
class EnhanceParams:
    """``strategy.enhance``: the mode and its knobs."""

    mode: EnhanceMode
    ml_weight: float = 0.3
    confidence_threshold: float = 0.6
    fail_open: bool = False
    replace_on: ReplaceOn = ReplaceOn.CLASSIC_BARS


@dataclass(frozen=True)
class Enhanced:
    """The combined signal, what the layer did per bar (codes of :data:`PROVENANCES`) and where
    the result follows ML's direction (so it takes ML's exits)."""

    result: Opinions
    provenance: NDArray[np.int8]
    from_ml: NDArray[np.bool_]


def enhance(base: Opinions, ml: Opinions, params: EnhanceParams) -> Enhanced:
    """Apply ``params.mode`` bar by bar (see the module's truth table)."""
    has_base = base.direction != ABSTAIN
    ml_ok = ml.direction != ABSTAIN
    agree = has_base & ml_ok & (ml.direction == base.direction)
    disagree = has_base & ml_ok & ~agree
    prov = np.full(len(base), PROVENANCE_CODE[Provenance.CLASSIC_ONLY], dtype=np.int8)
    direction = base.direction.copy()
    confidence = base.confidence.copy()
    from_ml = np.zeros(len(base), dtype=bool)
    w, mode = params.ml_weight, params.mode

    def mark(mask: NDArray[np.bool_], what: Provenance) -> None:
        prov[mask] = PROVENANCE_CODE[what]

    if mode is EnhanceMode.BOOST:
        confidence = np.where(agree, base.confidence * (1 - w) + ml.confidence * w, confidence)
        confidence = np.where(disagree, base.confidence * (1 - w * 0.5), confidence)
        mark(agree, Provenance.BOOSTED)
        mark(disagree, Provenance.REDUCED)
        mark(has_base & ~ml_ok, Provenance.ML_ABSTAINED)
    elif mode is EnhanceMode.FILTER:
        blocked = disagree | (has_base & ~ml_ok & (not params.fail_open))
        direction[blocked] = ABSTAIN
        confidence[blocked] = 0.0
        mark(agree, Provenance.ML_CONFIRMED)
        mark(disagree, Provenance.VETOED)
        mark(has_base & ~ml_ok, Provenance.ML_ABSTAINED)
    elif mode is EnhanceMode.REPLACE:
        where = (
            np.ones(len(base), dtype=bool)
            if params.replace_on is ReplaceOn.ALL_BARS
            else (base.direction == LONG) | (base.direction == SHORT)
        )
        direction = np.where(where, ml.direction, direction).astype(np.int8)
        confidence = np.where(where, ml.confidence, confidence)
        from_ml = where & ml_ok
        mark(where & ml_ok, Provenance.REPLACED)
        mark(where & ~ml_ok, Provenance.ML_ABSTAINED)
    else:
        direction, confidence, from_ml = _blend(base, ml, w)
        direction = np.where(ml_ok, direction, base.direction).astype(np.int8)
        confidence = np.where(ml_ok, confidence, base.confidence)
        from_ml &= ml_ok
        mark(ml_ok, Provenance.BLENDED)
        mark(~ml_ok, Provenance.ML_ABSTAINED)
    classic_only = prov == PROVENANCE_CODE[Provenance.CLASSIC_ONLY]
    reasons = np.where(classic_only, base.reasons, base.reasons | ml.reasons)
    return Enhanced(Opinions(direction, confidence, reasons), prov, from_ml)


def _blend(
    base: Opinions, ml: Opinions, w: float
) -> tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.bool_]]:
    """Hybrid: the weighted blend of the signed confidences against the weight on "flat"."""
    s = (1 - w) * signed(base.direction) * base.confidence + w * signed(ml.direction) * (
        ml.confidence
    )
    f = (1 - w) * np.where(base.direction == FLAT, base.confidence, 0.0) + w * np.where(
        ml.direction == FLAT, ml.confidence, 0.0
    )
    side = np.abs(s) > f
    direction = np.where(side, np.where(s > 0, LONG, SHORT), np.where(f > 0, FLAT, ABSTAIN)).astype(
        np.int8
    )
    confidence = np.where(side, np.abs(s), f)
    from_ml = (direction != base.direction) & (direction == ml.direction)
    return direction, confidence, from_ml
