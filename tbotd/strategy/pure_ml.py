"""The pure ML kinds (README: Pure ML strategies): the models' own answers, gated by the regime
model and by the models' consensus.

* ``ml_momentum`` trades the direction model's call (its most probable class, at that
  probability) only while the regime model says *trending*: the gate opens when
  P(trend_up) + P(trend_down) ≥ ``enter_trend`` and closes only when it falls below
  ``exit_trend`` (hysteresis, so a flicker around one level does not flip positions; a bar
  without a regime answer closes it). The gate is the only state of any kind: the backtest
  computes it over every bar at once (:func:`trending`), the daemon carries it from one candle to
  the next (:class:`~tbotd.strategy.strategy.Session`), both from the same rule.
* ``ml_mean_reversion`` fades an extreme call — max(P(down), P(up)) ≥ ``extreme_probability`` —
  only while P(sideways) ≥ ``min_sideways``; its confidence is that extreme probability.

Both require the models' consensus (:mod:`~tbotd.strategy.consensus`) on the direction the
direction model names: the one momentum follows, the one mean reversion fades. Otherwise they
abstain with structured reasons (what the gate said and what the consensus said), so a closed
gate or a missing consensus never opens a position and never flattens one: open positions keep
their exchange-side TP/SL. Exits are the price model's ``sd`` (× ``k_sl``/``k_tp``, bounded by
the protection limits) when it answered, else the prediction's own, else the fixed percentages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.actions import Reason
from tbotd.strategy.consensus import ConsensusParams, consensus
from tbotd.strategy.kinds import StrategyKind
from tbotd.strategy.ml_opinion import MLInputs, ml_opinions
from tbotd.strategy.signal import (
    ABSTAIN,
    BIT,
    LONG,
    SHORT,
    ExitHints,
    Floats,
    Opinions,
    SignalSeries,
)

Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class MLMomentumParams:
    """``[strategy.ml_momentum]``: the trending gate's levels (enter ≥ exit)."""

    enter_trend: float = 0.6
    exit_trend: float = 0.5


@dataclass(frozen=True, slots=True)
class MLMeanReversionParams:
    """``[strategy.ml_mean_reversion]``: what counts as extreme, and as sideways."""

    extreme_probability: float = 0.7
    min_sideways: float = 0.5


@dataclass(frozen=True, slots=True)
class PureML:
    """A pure ML kind and every knob it reads."""

    kind: StrategyKind
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    momentum: MLMomentumParams = field(default_factory=MLMomentumParams)
    mean_reversion: MLMeanReversionParams = field(default_factory=MLMeanReversionParams)


def trending(mass: Floats, enter: float, leave: float, start: bool = False) -> Bools:
    """The hysteresis gate per bar: on from a bar with ``mass ≥ enter``, off from a bar with
    ``mass < leave`` or no answer (NaN), otherwise as on the bar before (``start`` before the
    first bar)."""
    n = len(mass)
    with np.errstate(invalid="ignore"):
        on = mass >= enter
        off = ~np.isfinite(mass) | (mass < leave)
    decisive = on | off
    last = np.maximum.accumulate(np.where(decisive, np.arange(n), -1)) if n else np.zeros(0, int)
    return np.where(last >= 0, on[np.maximum(last, 0)], start)


def _missing(ml: MLInputs) -> tuple[Bools, Floats]:
    """Bars that cannot be judged at all (with their reason bits), in order of precedence."""
    models = ml.answers
    reasons = np.zeros(len(ml), dtype=np.int64)
    no_direction = ~np.isfinite(models.direction).all(axis=1)
    no_regime = ~np.isfinite(models.regime).all(axis=1)
    reasons = np.where(no_regime, BIT[Reason.REGIME_MISSING], reasons)
    reasons = np.where(no_direction, BIT[Reason.DIRECTION_MISSING], reasons)
    reasons = np.where(ml.degraded, BIT[Reason.ML_DEGRADED], reasons)
    reasons = np.where(ml.code == ABSTAIN, BIT[Reason.ML_NO_PREDICTION], reasons)
    return np.asarray(reasons != 0, dtype=bool), np.asarray(reasons, dtype=np.int64)


def _decide(
    ml: MLInputs,
    pure: PureML,
    gate: Bools,
    gate_bits: tuple[Reason, Reason],
    named: NDArray[np.int8],
    trade: NDArray[np.int8],
    confidence: Floats,
    extra: Bools | None = None,
) -> Opinions:
    """``trade`` at ``confidence`` where the gate is open and the consensus is on ``named``;
    abstain elsewhere, with every reason that applies."""
    missing, reasons = _missing(ml)
    agreed = consensus(ml.answers, pure.consensus)
    open_bit, closed_bit = BIT[gate_bits[0]], BIT[gate_bits[1]]
    against = (agreed.direction != ABSTAIN) & (agreed.direction != named)
    said = np.where(against, BIT[Reason.CONSENSUS_AGAINST], agreed.reasons)
    judged = np.asarray(np.where(gate, open_bit, closed_bit) | said, dtype=np.int64)
    ok = ~missing & gate & (agreed.direction == named)
    if extra is not None:
        judged |= np.where(extra, 0, BIT[Reason.NO_EXTREME])
        ok &= extra
    why = np.asarray(np.where(missing, reasons, judged), dtype=np.int64)
    direction = np.where(ok, trade, ABSTAIN).astype(np.int8)
    return Opinions(direction, np.where(ok, confidence, 0.0), why)


def momentum(ml: MLInputs, pure: PureML, start: bool = False) -> tuple[Opinions, bool]:
    """``ml_momentum`` on every bar, and the gate after the last one (the daemon keeps it)."""
    p = pure.momentum
    regime = ml.answers.regime
    gate = trending(regime[:, 0] + regime[:, 2], p.enter_trend, p.exit_trend, start)
    named, confidence = _direction_call(ml)
    result = _decide(
        ml, pure, gate, (Reason.REGIME_TRENDING, Reason.REGIME_NOT_TRENDING), named, named,
        confidence,
    )  # fmt: skip
    result = Opinions(result.direction, result.confidence, result.reasons | _signal_bit(result))
    return result, bool(gate[-1]) if len(gate) else start


def mean_reversion(ml: MLInputs, pure: PureML) -> Opinions:
    """``ml_mean_reversion`` on every bar."""
    p = pure.mean_reversion
    models = ml.answers
    with np.errstate(invalid="ignore"):
        gate = models.regime[:, 1] >= p.min_sideways
        up_wins = models.direction[:, 2] >= models.direction[:, 0]
        extreme_p = np.where(up_wins, models.direction[:, 2], models.direction[:, 0])
        extreme = extreme_p >= p.extreme_probability
    named = np.where(up_wins, LONG, SHORT).astype(np.int8)
    fade = np.where(up_wins, SHORT, LONG).astype(np.int8)
    result = _decide(
        ml, pure, gate, (Reason.REGIME_SIDEWAYS, Reason.REGIME_NOT_SIDEWAYS), named, fade,
        extreme_p, extreme,
    )  # fmt: skip
    traded = np.where(result.direction != ABSTAIN, BIT[Reason.FADED_EXTREME], 0)
    return Opinions(result.direction, result.confidence, result.reasons | traded)


def _direction_call(ml: MLInputs) -> tuple[NDArray[np.int8], Floats]:
    """The direction model's class (ties: the earlier of down, neutral, up) and probability."""
    probs = ml.answers.direction
    cls = np.argmax(np.where(np.isfinite(probs), probs, -1.0), axis=1).astype(np.int8)
    conf = np.take_along_axis(probs, cls[:, None].astype(np.int64), axis=1)[:, 0]
    return cls, np.asarray(conf, dtype=np.float64)


def _signal_bit(result: Opinions) -> NDArray[np.int64]:
    """``ml_signal`` on the bars where momentum follows the direction model."""
    return np.where(result.direction != ABSTAIN, BIT[Reason.ML_SIGNAL], 0).astype(np.int64)


def pure_exits(ml: MLInputs) -> ExitHints:
    """The price model's ``sd`` where it answered, the prediction's own hints elsewhere."""
    sd = ml.answers.sd
    return ml.exits.where(np.isfinite(sd), ExitHints(sd))


def pure_series(ml: MLInputs, pure: PureML, start: bool = False) -> tuple[SignalSeries, bool]:
    """The signal of a pure ML kind on every bar (``ml`` records the prediction's own call),
    and the momentum gate after the last bar (``start`` unchanged for mean reversion)."""
    if pure.kind is StrategyKind.ML_MOMENTUM:
        result, state = momentum(ml, pure, start)
    else:
        result, state = mean_reversion(ml, pure), start
    return SignalSeries(result, pure_exits(ml), ml=ml_opinions(ml)), state
