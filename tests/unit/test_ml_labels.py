"""Labels look forward by exactly their horizon, never change when bars are appended, and the
walk-forward plan keeps a purge gap between everything learnt and everything judged."""

from __future__ import annotations

import numpy as np
import pytest

from tbotd.domain.errors import InvalidDataError
from tbotd.features import WARMUP
from tbotd.ml.dataset import build_dataset, plan_folds, purge_gap
from tbotd.ml.labels import (
    MISSING,
    LabelSpec,
    direction_labels,
    forward_returns,
    regime_labels,
)
from tests.synthetic import random_walk


def test_forward_return_reads_exactly_h_bars_ahead() -> None:
    """fwd[t] = close[t+h]/close[t] - 1, and the last h rows have no label yet."""
    close = np.array([100.0, 101.0, 99.0, 102.0, 103.0])
    fwd = forward_returns(close, 2)
    np.testing.assert_allclose(fwd[:3], [99 / 100 - 1, 102 / 101 - 1, 103 / 99 - 1])
    assert np.isnan(fwd[3:]).all()


def test_direction_classes_use_the_cost_aware_band() -> None:
    """Moves inside ±band are neutral; the default band is the round-trip taker fee."""
    spec = LabelSpec(fee_bps=5)
    assert spec.band == pytest.approx(0.001)
    fwd = np.array([-0.002, -0.001, 0.0, 0.0005, 0.0011, np.nan])
    assert direction_labels(fwd, spec.band).tolist() == [0, 1, 1, 1, 2, MISSING]
    assert LabelSpec(neutral_bps=3).band == pytest.approx(0.0003)


def test_regime_label_compares_the_centred_move_with_volatility() -> None:
    """Trend-up/down when the centred move exceeds k·σ·sqrt(2w); edges stay unlabelled."""
    close = np.array([100.0, 100.0, 110.0, 100.0, 90.0, 90.0, 90.0])
    rv = np.full(7, 0.01)
    labels = regime_labels(close, rv, window=1, k=1.0)
    # t=1: 110/100 → up; t=2: 100/100 → sideways; t=3: 90/110 → down; t=4: 90/100 → down
    assert labels.tolist() == [MISSING, 2, 1, 0, 0, 1, MISSING]


def test_appending_bars_never_changes_existing_labels() -> None:
    """Every label known on a prefix is unchanged when later bars arrive; the rest stay missing."""
    spec = LabelSpec(horizon=6, regime_window=4)
    frame = random_walk(WARMUP + 300, seed=4)
    short = build_dataset(frame.iloc[: WARMUP + 100], spec)
    full = build_dataset(frame, spec)
    n = len(short.close)
    for name in ("direction", "regime"):
        before, after = getattr(short, name), getattr(full, name)[:n]
        known = before != MISSING
        np.testing.assert_array_equal(before[known], after[known])
    assert (short.direction[n - spec.horizon :] == MISSING).all()
    np.testing.assert_array_equal(short.features, full.features[:n])


def test_every_fold_is_purged_and_in_time_order() -> None:
    """fit < cal < test with ≥ lookahead + warm-up bars between them; test segments tile the end."""
    spec = LabelSpec(horizon=3, regime_window=6)
    ds = build_dataset(random_walk(12_000, seed=5), spec)
    folds, final = plan_folds(ds, spec, folds=3, min_train_frac=0.5, cal_frac=0.1)
    gap = purge_gap(spec)
    assert gap >= spec.lookahead + WARMUP
    for fold in folds:
        assert fold.test is not None
        assert fold.fit.start == ds.first
        assert fold.cal.start - fold.fit.stop >= gap
        assert fold.test.start - fold.cal.stop >= gap
    assert [f.test.start for f in folds[1:] if f.test] == [
        f.test.stop for f in folds[:-1] if f.test
    ]
    assert folds[-1].test is not None
    assert folds[-1].test.stop == ds.stop
    assert final.test is None
    assert final.cal.stop == ds.stop
    assert final.cal.start - final.fit.stop >= gap


def test_too_little_data_is_bad_input() -> None:
    """A history too short for the walk-forward plan is refused with the size it needs."""
    spec = LabelSpec()
    ds = build_dataset(random_walk(1500, seed=6), spec)
    with pytest.raises(InvalidDataError, match="too few"):
        plan_folds(ds, spec, folds=4, min_train_frac=0.5, cal_frac=0.1)
