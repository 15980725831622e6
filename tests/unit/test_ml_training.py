"""Training is honest: no edge on a random walk, scalers from the fold only, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tbotd.ml.dataset import build_dataset
from tbotd.ml.labels import LabelSpec
from tbotd.ml.pipeline import TrainConfig, TrainingRun, train
from tbotd.ml.report import build_report
from tbotd.ml.trainer import FitConfig, fit_models
from tests.synthetic import random_walk

CPU = torch.device("cpu")


def test_random_walk_has_no_out_of_sample_edge() -> None:
    """On 40,000 bars of a driftless random walk the OOS hit rate is 50 ± 2 %.

    With a 1-bar horizon the outcomes of successive calls are independent coin tosses whatever
    the model says, so ~20,000 calls give a standard error of ~0.35 %: ±2 % is over 5 standard
    errors. Any leak of the next bar into the features would show up far outside that band.
    """
    cfg = TrainConfig(
        label=LabelSpec(horizon=1, regime_window=6),
        fit=FitConfig(epochs=3, seed=0),
        folds=2,
    )
    run = train(random_walk(40_000, seed=11), cfg, CPU)
    report, _ = build_report(run, cfg, {})
    direction = report["direction"]
    assert direction["n_calls"] > 10_000
    assert 0.48 <= direction["hit_rate"] <= 0.52
    assert 0.48 <= report["baselines"]["coin_flip"]["hit_rate"] <= 0.52
    # no skill also means no better probabilities than the class frequencies
    assert direction["brier"] >= direction["brier_climatology"] - 0.005


@pytest.fixture(scope="module")
def small_run() -> tuple[TrainingRun, TrainConfig]:
    cfg = TrainConfig(
        label=LabelSpec(horizon=3, regime_window=6),
        fit=FitConfig(epochs=2, seed=3, batch_size=256),
        folds=2,
    )
    return train(random_walk(6_000, seed=12), cfg, CPU), cfg


def test_scalers_are_fitted_inside_each_fold(small_run: tuple[TrainingRun, TrainConfig]) -> None:
    """Each fold's folded-in feature mean/std come from that fold's fitting rows only."""
    run, _ = small_run
    ds = run.dataset
    means = []
    for fold, fit in zip(run.folds, run.fold_fits, strict=True):
        rows = ds.slice(fold.fit.start, fold.fit.stop).x.astype(np.float64)
        for module in fit.models.modules():
            np.testing.assert_allclose(module.feature_mean.numpy(), rows.mean(axis=0), rtol=1e-5)
        means.append(fit.models.direction.feature_mean.numpy())
    assert not np.array_equal(means[0], means[1])


def test_report_numbers_are_out_of_sample(small_run: tuple[TrainingRun, TrainConfig]) -> None:
    """Predicted rows all lie in test segments, each after its fold's training rows."""
    run, cfg = small_run
    rows = run.oos.rows
    for k, fold in enumerate(run.folds):
        mine = rows[run.oos.fold == k]
        assert mine.min() >= fold.test.start
        assert mine.max() < fold.test.stop
        assert fold.test.start - fold.cal.stop >= cfg.label.lookahead
    report, _ = build_report(run, cfg, {})
    assert report["evaluation"]["oos_bars"] == len(rows)
    for key in ("always_long", "persistence", "coin_flip"):
        assert report["baselines"][key]["n_calls"] > 0


def test_training_is_deterministic_given_a_seed() -> None:
    """The same seed gives bit-identical weights; another seed gives different ones."""
    spec = LabelSpec(horizon=3, regime_window=6)
    ds = build_dataset(random_walk(3_000, seed=13), spec)
    fit, cal = ds.slice(ds.first, 2000), ds.slice(2100, ds.stop)

    def weights(seed: int) -> list[torch.Tensor]:
        cfg = FitConfig(epochs=2, seed=seed, batch_size=128)
        result = fit_models(fit, cal, cfg, CPU)
        return [t for m in result.models.modules() for t in m.state_dict().values()]

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_calibration_and_outputs_are_sane(small_run: tuple[TrainingRun, TrainConfig]) -> None:
    """Probabilities sum to 1, sd is positive, calibration is positive and stored as buffers."""
    run, _ = small_run
    out = run.oos.outputs
    np.testing.assert_allclose(out.direction.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.regime.sum(axis=1), 1.0, atol=1e-5)
    assert (out.sd > 0).all()
    final = run.final
    calibration = final.calibrations["direction"]
    assert all(v > 0 for v in calibration.scale)
    stored = final.models.direction.class_scale.tolist()
    assert stored == [float(np.float32(v)) for v in calibration.scale]
