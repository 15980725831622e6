"""Scoring one stored prediction once its horizon has passed (pure).

The truth of a prediction for candle T arrives ``horizon`` bars later, so every prediction
tbotd made can be graded from stored candles alone. The definitions follow the training labels
(``tbotd/ml/labels.py``) so live numbers compare with the training report:

* ``fwd_return = close[T+h] / close[T] - 1``;
* the realised class is down / neutral / up with the model's neutral ``band`` (the round-trip
  fee it was trained with), so a move too small to pay fees counts as neutral;
* ``correct``: the predicted class equals the realised class (what ``confidence`` claims);
* ``hit``: for a long or short call on a bar that moved (``fwd != 0``), whether the move had the
  call's sign — the training report's hit rate; None for neutral calls or flat bars;
* ``past_return = close[T] / close[T-h] - 1``, the move the contrarian baseline bets against;
* ``inside_sd``: ``|fwd_return| <= sd`` at the horizon; ``stayed_in_sd``: every high and low of
  bars T+1..T+h stayed within ``close[T] * (1 ± sd)``; None without ``sd``.

A prediction whose candles T or T+h are missing for good is recorded as ``no_candles`` so it is
never retried; the metrics skip it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tbotd.domain.enums import Regime, Signal
from tbotd.domain.market import Candle


class OutcomeKind(StrEnum):
    """Whether a prediction could be graded."""

    SCORED = "scored"
    NO_CANDLES = "no_candles"


class LabelOrigin(StrEnum):
    """Where the horizon and band used for grading came from (stored with every outcome)."""

    MANIFEST = "manifest"  # the model directory's label definition
    DEFAULT = "default"  # no manifest for this model (e.g. a remote source): defaults


@dataclass(frozen=True, slots=True)
class LabelRule:
    """Horizon (bars) and neutral band (fraction of price) a prediction is graded with."""

    horizon: int
    band: float
    origin: LabelOrigin

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.band < 0:
            raise ValueError(f"horizon must be >= 1 and band >= 0, got {self.horizon}, {self.band}")


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """The fields of a stored prediction that grading and the metrics need."""

    id: int
    symbol: str
    candle_time: datetime
    signal: Signal
    confidence: float
    sd: float | None
    regime: Regime | None  # the most probable regime, when the source gave probabilities
    model: str
    source: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one prediction turned out; one row per prediction, written once."""

    prediction_id: int
    kind: OutcomeKind
    rule: LabelRule
    fwd_return: float | None = None
    realised: Signal | None = None
    correct: bool | None = None
    hit: bool | None = None
    past_return: float | None = None
    inside_sd: bool | None = None
    stayed_in_sd: bool | None = None


def due_time(prediction: StoredPrediction, rule: LabelRule, bar: timedelta) -> datetime:
    """Open time of candle T+h: once it is stored, the prediction can be graded."""
    return prediction.candle_time + rule.horizon * bar


def realised_class(fwd: float, band: float) -> Signal:
    """The direction class of a forward return with the neutral band (labels.direction_labels)."""
    if fwd > band:
        return Signal.LONG
    if fwd < -band:
        return Signal.SHORT
    return Signal.NEUTRAL


def score(
    prediction: StoredPrediction,
    rule: LabelRule,
    bars: Mapping[datetime, Candle],
    bar: timedelta,
) -> Outcome:
    """Grade ``prediction`` from ``bars`` (candles by open time, T-h..T+h where stored).

    Call only once candle T+h is due; missing T or T+h gives a ``no_candles`` outcome.
    """
    t0 = prediction.candle_time
    start, end = bars.get(t0), bars.get(t0 + rule.horizon * bar)
    if start is None or end is None:
        return Outcome(prediction.id, OutcomeKind.NO_CANDLES, rule)
    c0 = float(start.close)
    fwd = float(end.close) / c0 - 1.0
    realised = realised_class(fwd, rule.band)
    past = bars.get(t0 - rule.horizon * bar)
    return Outcome(
        prediction.id,
        OutcomeKind.SCORED,
        rule,
        fwd_return=fwd,
        realised=realised,
        correct=prediction.signal is realised,
        hit=_hit(prediction.signal, fwd),
        past_return=None if past is None else c0 / float(past.close) - 1.0,
        inside_sd=None if prediction.sd is None else abs(fwd) <= prediction.sd,
        stayed_in_sd=_stayed(prediction, rule, bars, bar, c0),
    )


def _hit(signal: Signal, fwd: float) -> bool | None:
    """A long or short call's sign against the move; None when nothing was called or moved."""
    if signal is Signal.NEUTRAL or fwd == 0:
        return None
    return (fwd > 0) == (signal is Signal.LONG)


def _stayed(
    prediction: StoredPrediction,
    rule: LabelRule,
    bars: Mapping[datetime, Candle],
    bar: timedelta,
    c0: float,
) -> bool | None:
    """Whether the path stayed inside ±sd; None without sd or with a missing bar on the path."""
    if prediction.sd is None:
        return None
    lo, hi = c0 * (1 - prediction.sd), c0 * (1 + prediction.sd)
    for k in range(1, rule.horizon + 1):
        candle = bars.get(prediction.candle_time + k * bar)
        if candle is None:
            return None
        if float(candle.low) < lo or float(candle.high) > hi:
            return False
    return True
