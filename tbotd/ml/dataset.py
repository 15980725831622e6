"""Features and labels of a candle history, and the walk-forward plan over it.

Rows are bars. A row is usable when every feature has finished its warm-up and every label's
future window lies inside the data. Walk-forward folds (expanding window) are laid out over the
usable rows so that between any rows a model learns from (fitting or calibration) and the rows it
is judged on there are ``gap`` bars, with ``gap >= label lookahead + longest feature warm-up``:
no training label reads a bar that a test feature also reads.

    |------------- fit -------------|gap|-- cal --|gap|---- test ----|
    first                                                            (next fold's test follows)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.domain.errors import InvalidDataError
from tbotd.features import FEATURE_NAMES, WARMUP, bars_from_frame, feature_matrix
from tbotd.ml.labels import (
    MISSING,
    LabelSpec,
    direction_labels,
    forward_returns,
    regime_labels,
)
from tbotd.ml.trainer import Slice

MIN_FIT_ROWS = 256
MIN_SEGMENT_ROWS = 32


@dataclass(frozen=True)
class Dataset:
    """Per-bar arrays of one symbol's history (length N)."""

    open_time: NDArray[np.int64]
    close: NDArray[np.float64]
    features: NDArray[np.float64]  # [N, F]
    fwd: NDArray[np.float64]
    direction: NDArray[np.int64]
    regime: NDArray[np.int64]
    valid: NDArray[np.bool_]
    first: int  # first usable row
    stop: int  # one past the last usable row

    def column(self, name: str) -> NDArray[np.float64]:
        """One feature column by name."""
        return self.features[:, FEATURE_NAMES.index(name)]

    def slice(self, start: int, stop: int) -> Slice:
        """The valid rows of ``[start, stop)`` as a training slice."""
        rows = np.flatnonzero(self.valid[start:stop]) + start
        return Slice(
            x=self.features[rows].astype(np.float32),
            direction=self.direction[rows],
            fwd=self.fwd[rows],
            regime=self.regime[rows],
        )


def build_dataset(frame: pd.DataFrame, label: LabelSpec) -> Dataset:
    """Features and all three labels for a validated candle frame (oldest first)."""
    features = feature_matrix(bars_from_frame(frame))[0]
    close = np.asarray(frame["close"], dtype=np.float64)
    fwd = forward_returns(close, label.horizon)
    direction = direction_labels(fwd, label.band)
    rv = features[:, FEATURE_NAMES.index("rv_288")]
    regime = regime_labels(close, rv, label.regime_window, label.regime_k)
    valid = np.isfinite(features).all(axis=1) & (direction != MISSING) & (regime != MISSING)
    first = max(WARMUP - 1, label.regime_window, label.horizon)
    stop = len(close) - label.lookahead
    return Dataset(
        open_time=np.asarray(bars_from_frame(frame).open_time[0]),
        close=close,
        features=features,
        fwd=fwd,
        direction=direction,
        regime=regime,
        valid=valid,
        first=first,
        stop=max(stop, first),
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """Rows ``[start, stop)``."""

    start: int
    stop: int

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {"start": self.start, "stop": self.stop}


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward step; the final (deployment) fit has no test segment."""

    fit: Segment
    cal: Segment
    test: Segment | None


def purge_gap(label: LabelSpec) -> int:
    """Bars between training and evaluation rows: label lookahead + longest warm-up."""
    return label.lookahead + WARMUP


def min_rows(label: LabelSpec, folds: int, min_train_frac: float) -> int:
    """Roughly the fewest candles a training run with this plan accepts."""
    gap = purge_gap(label)
    usable = max(
        (MIN_FIT_ROWS + 2 * gap + MIN_SEGMENT_ROWS) / min_train_frac,
        MIN_FIT_ROWS + 2 * gap + MIN_SEGMENT_ROWS * (folds + 1),
    )
    return int(usable) + WARMUP + label.lookahead + 1


def _split_training(start: int, stop: int, gap: int, cal_frac: float) -> tuple[Segment, Segment]:
    cal_len = max(int((stop - start) * cal_frac), MIN_SEGMENT_ROWS)
    cal = Segment(stop - cal_len, stop)
    return Segment(start, cal.start - gap), cal


def plan_folds(
    ds: Dataset, label: LabelSpec, folds: int, min_train_frac: float, cal_frac: float
) -> tuple[list[Fold], Fold]:
    """Expanding-window walk-forward folds and the final fit over all usable rows."""
    gap = purge_gap(label)
    total = ds.stop - ds.first
    first_test = ds.first + int(total * min_train_frac)
    test_len = (ds.stop - first_test) // folds if folds else 0
    plan: list[Fold] = []
    for k in range(folds):
        test = Segment(
            first_test + k * test_len,
            ds.stop if k == folds - 1 else first_test + (k + 1) * test_len,
        )
        fit, cal = _split_training(ds.first, test.start - gap, gap, cal_frac)
        plan.append(Fold(fit, cal, test))
    fit, cal = _split_training(ds.first, ds.stop, gap, cal_frac)
    final = Fold(fit, cal, None)
    too_small = [
        f
        for f in [*plan, final]
        if len(f.fit) < MIN_FIT_ROWS or (f.test is not None and len(f.test) < MIN_SEGMENT_ROWS)
    ]
    if folds < 1 or too_small:
        raise InvalidDataError(
            f"{len(ds.close)} candles are too few for {folds} walk-forward fold(s) with a purge "
            f"gap of {gap} bars; give at least {min_rows(label, max(folds, 1), min_train_frac)} "
            "candles or fewer folds"
        )
    return plan, final
