"""What the three models learn: label definitions, aligned so that row t never sees its own future
through its features, only through its label.

Features of row t use bars ≤ t. Labels of row t use bars after t (that is the point of a label),
so a training row's label window ends ``LabelSpec.lookahead`` bars later; walk-forward splits purge
that many bars (plus the longest feature warm-up) between training and test rows.

* direction: forward return over ``horizon`` bars, ``fwd[t] = close[t+h] / close[t] - 1``;
  class 0 = down (``fwd < -band``), 1 = neutral (``|fwd| <= band``), 2 = up (``fwd > band``). The
  band is cost-aware: by default the round-trip taker fee (2 × ``fee_bps``), i.e. a move too small
  to pay for entering and leaving counts as neutral.
* volatility: the same ``fwd[t]``; the model predicts its mean and standard deviation ``sd``.
* regime: the trend of a window *centred* on t, ``move = close[t+w] / close[t-w] - 1`` against
  the trailing per-bar volatility ``rv_288[t]`` scaled to 2w bars: class 0 = trend-down
  (``move < -k·σ``), 1 = sideways, 2 = trend-up (``move > k·σ``). The model sees only features of
  bars ≤ t, so what it outputs is a causal (filtered) probability of the regime a hindsight
  observer would assign — never a smoothed one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.features.primitives import FloatArray

IntArray = NDArray[np.int64]
MISSING = -1
DIRECTION_CLASSES = ("down", "neutral", "up")
REGIME_CLASSES = ("trend_down", "sideways", "trend_up")


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """Label parameters; stored in the model manifest so a model says what it was taught."""

    horizon: int = 12
    fee_bps: float = 5.0
    neutral_bps: float | None = None
    regime_window: int = 24
    regime_k: float = 0.75

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.regime_window < 1:
            raise ValueError("horizon and regime_window must be at least 1 bar")
        if self.fee_bps < 0 or (self.neutral_bps is not None and self.neutral_bps < 0):
            raise ValueError("fee_bps and neutral_bps must not be negative")

    @property
    def band(self) -> float:
        """Half-width of the neutral band as a fraction (default: round-trip taker fee)."""
        bps = 2 * self.fee_bps if self.neutral_bps is None else self.neutral_bps
        return bps / 10_000

    @property
    def lookahead(self) -> int:
        """How many bars after t any label of row t reads."""
        return max(self.horizon, self.regime_window)

    def describe(self) -> dict[str, object]:
        """Manifest/report form: the parameters and the definitions in words."""
        return asdict(self) | {
            "band": self.band,
            "lookahead_bars": self.lookahead,
            "direction": f"fwd = close[t+{self.horizon}]/close[t] - 1; down if fwd < -{self.band},"
            f" up if fwd > {self.band}, else neutral; classes {list(DIRECTION_CLASSES)}",
            "volatility": "mean and standard deviation of fwd (fraction of price)",
            "regime": f"move = close[t+{self.regime_window}]/close[t-{self.regime_window}] - 1 "
            f"vs {self.regime_k} * rv_288[t] * sqrt({2 * self.regime_window}); classes "
            f"{list(REGIME_CLASSES)}",
        }


def forward_returns(close: FloatArray, horizon: int) -> FloatArray:
    """``close[t+h] / close[t] - 1``; NaN for the last ``h`` rows, which have no future yet."""
    out = np.full(close.shape, np.nan)
    out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


def direction_labels(fwd: FloatArray, band: float) -> IntArray:
    """0 down / 1 neutral / 2 up from forward returns; :data:`MISSING` where fwd is NaN."""
    labels = np.full(fwd.shape, MISSING, dtype=np.int64)
    known = np.isfinite(fwd)
    labels[known] = 1
    labels[known & (fwd > band)] = 2
    labels[known & (fwd < -band)] = 0
    return labels


def regime_labels(close: FloatArray, rv: FloatArray, window: int, k: float) -> IntArray:
    """0 trend-down / 1 sideways / 2 trend-up of the window centred on t; MISSING at the edges."""
    move = np.full(close.shape, np.nan)
    move[window:-window] = close[2 * window :] / close[: -2 * window] - 1.0
    threshold = k * rv * math.sqrt(2 * window)
    labels = np.full(close.shape, MISSING, dtype=np.int64)
    known = np.isfinite(move) & np.isfinite(threshold)
    labels[known] = 1
    labels[known & (move > threshold)] = 2
    labels[known & (move < -threshold)] = 0
    return labels
