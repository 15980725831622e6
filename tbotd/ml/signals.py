"""The signal rule: direction probabilities → Prediction.signal and confidence.

Rule (documented, shared by the predictor, ``predict_history``, evaluation and reports):
``signal`` is the most probable class of the direction classifier (down → short, neutral →
neutral, up → long; ties go to the earlier class in that order) and ``confidence`` is that
class's temperature-calibrated probability. The strategy then acts only when confidence is at or
above its threshold (0.70 / 0.65 in the shipped configs, 0.55 in the demo), so a confident
"neutral" closes a position and an unsure "long" does nothing.

``sd`` (the volatility model's standard deviation of the forward return, a fraction of price) is
clamped to [``SD_MIN``, ``SD_MAX``] so it always fits the Prediction schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.answers import ModelAnswer, ModelName
from tbotd.domain.enums import PredictionSource, Regime, Signal
from tbotd.domain.prediction import Prediction

if TYPE_CHECKING:
    from tbotd.ml.outputs import ModelOutputs

SIGNALS = (Signal.SHORT, Signal.NEUTRAL, Signal.LONG)  # index = direction class
REGIMES = (Regime.TREND_DOWN, Regime.SIDEWAYS, Regime.TREND_UP)  # regime model output order
SD_MIN = 1e-6
SD_MAX = 0.5
RETURN_MAX = 0.5  # |expected forward return| kept inside the schema's open interval


def signal_indices(probs: NDArray[np.floating]) -> NDArray[np.int64]:
    """Class index per row (0 short, 1 neutral, 2 long): the argmax, first class on ties."""
    return np.asarray(np.argmax(probs, axis=-1), dtype=np.int64)


def positions(probs: NDArray[np.floating], threshold: float = 0.0) -> NDArray[np.int64]:
    """Desired exposure per row: +1 long, -1 short, 0 neutral or below ``threshold``."""
    idx = signal_indices(probs)
    conf = np.take_along_axis(probs, idx[..., None], axis=-1)[..., 0]
    pos = idx - 1
    return np.where(conf >= threshold, pos, 0)


def clamp_sd(sd: NDArray[np.floating]) -> NDArray[np.float64]:
    """sd within the schema's open interval (0, 1)."""
    return np.clip(np.asarray(sd, dtype=np.float64), SD_MIN, SD_MAX)


def prediction_from_outputs(
    symbol: str,
    timestamp: datetime,
    out: ModelOutputs,
    row: int,
    model_version: str,
    source: PredictionSource,
    trained_until: datetime | None = None,
) -> Prediction:
    """The Prediction for row ``row`` of the models' outputs, by the rule above.

    The one place model outputs become a Prediction: the local predictor, ``tbotd serve`` and
    the remote OIP client (which receives the same outputs over the wire) all call it, so the
    same outputs give the same Prediction whichever path they took. Raises pydantic's
    ValidationError for outputs outside the schema (NaN, probabilities out of range).
    """
    probs = out.direction[row]
    idx = int(signal_indices(probs))
    return Prediction(
        symbol=symbol,
        timestamp=timestamp,
        signal=SIGNALS[idx],
        confidence=float(probs[idx]),
        sd=float(clamp_sd(out.sd[row : row + 1])[0]),
        regime={r: float(p) for r, p in zip(REGIMES, out.regime[row], strict=True)},
        model_version=model_version,
        source=source,
        models=model_answers(out, row, model_version, trained_until),
    )


def model_answers(
    out: ModelOutputs, row: int, version: str, trained_until: datetime | None = None
) -> tuple[ModelAnswer, ...]:
    """Each local model's own answer for row ``row`` (prediction schema 2).

    Every place that turns model outputs into a Prediction attaches these (through
    :func:`prediction_from_outputs`), so the live predictor, ``tbotd serve`` and the backtest's
    model table (which applies the same :func:`normalised` and :func:`clamp_return` to whole
    columns) give equal Predictions. ``trained_until`` (the end of the models' training data)
    is given by ``tbotd serve`` to its clients, who check a model's shelf life by it; the local
    predictor checks its manifest instead and leaves it out.
    """
    direction = normalised(out.direction[row : row + 1])[0]
    regime = normalised(out.regime[row : row + 1])[0]
    return (
        ModelAnswer(
            name=ModelName.DIRECTION,
            version=version,
            probabilities=(float(direction[0]), float(direction[1]), float(direction[2])),
            trained_until=trained_until,
        ),
        ModelAnswer(
            name=ModelName.VOLATILITY,
            version=version,
            expected_return=float(clamp_return(out.ret_mean[row : row + 1])[0]),
            sd=float(clamp_sd(out.sd[row : row + 1])[0]),
            trained_until=trained_until,
        ),
        ModelAnswer(
            name=ModelName.REGIME,
            version=version,
            probabilities=(float(regime[0]), float(regime[1]), float(regime[2])),
            trained_until=trained_until,
        ),
    )


def normalised(probs: NDArray[np.floating]) -> NDArray[np.float64]:
    """[n, 3] float32 probabilities as float64 rows that sum to 1 within the schema's tolerance
    (one expression, so one row and a whole column give the same bits)."""
    p = np.asarray(probs, dtype=np.float64)
    total = (p[:, 0] + p[:, 1]) + p[:, 2]
    return np.asarray(p / total[:, None], dtype=np.float64)


def clamp_return(ret: NDArray[np.floating]) -> NDArray[np.float64]:
    """The expected forward return within the schema's open interval (-1, 1)."""
    return np.clip(np.asarray(ret, dtype=np.float64), -RETURN_MAX, RETURN_MAX)
