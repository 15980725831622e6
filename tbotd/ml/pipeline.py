"""The training run: features → walk-forward folds (out-of-sample predictions) → final model.

Every number a report shows comes from :attr:`TrainingRun.oos`: predictions made by a model that
was fitted (and early-stopped, and temperature-calibrated, and standardised) only on rows that
end ``purge_gap`` bars before the predicted rows began. The final model, fitted on all usable
rows the same way, is the one that is deployed; it is never scored on the data it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from tbotd.ml.dataset import Dataset, Fold, build_dataset, plan_folds
from tbotd.ml.labels import LabelSpec
from tbotd.ml.metrics import class_frequencies
from tbotd.ml.models import run_models
from tbotd.ml.outputs import ModelOutputs
from tbotd.ml.trainer import FitConfig, FitResult, fit_models

ProgressFn = Callable[[str, int, int], None]
"""``progress(description, done, total)``; ``total`` counts training epochs of the whole run."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that decides what a training run does (all stored in the manifest)."""

    label: LabelSpec = field(default_factory=LabelSpec)
    fit: FitConfig = field(default_factory=FitConfig)
    folds: int = 4
    min_train_frac: float = 0.5
    cal_frac: float = 0.1
    threshold: float = 0.55
    timeframe: str = "5m"


@dataclass(frozen=True)
class OutOfSample:
    """Walk-forward predictions on the test rows of every fold, concatenated in time order."""

    rows: NDArray[np.int64]
    fold: NDArray[np.int64]
    outputs: ModelOutputs
    raw_direction: NDArray[np.float64]  # [n, 3] the direction model before calibration
    direction_prior: NDArray[np.float64]  # [n, 3] class frequencies of the fold's fit labels
    regime_prior: NDArray[np.float64]


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`train` produced."""

    dataset: Dataset
    folds: list[Fold]
    final_fold: Fold
    oos: OutOfSample
    final: FitResult
    fold_fits: list[FitResult]
    seconds: dict[str, float]


class _EpochCounter:
    """Turns per-fit epoch callbacks into one progress over the whole run."""

    def __init__(self, progress: ProgressFn | None, fits: int, epochs: int) -> None:
        self.progress, self.total, self.epochs, self.base = progress, fits * epochs, epochs, 0

    def fit_started(self, what: str) -> Callable[[int, int], None]:
        base = self.base
        if self.progress is not None:
            self.progress(what, base, self.total)

        def on_epoch(done: int, _total: int) -> None:
            if self.progress is not None:
                self.progress(what, base + done, self.total)

        return on_epoch

    def fit_done(self, what: str) -> None:
        self.base += self.epochs
        if self.progress is not None:
            self.progress(what, self.base, self.total)


def _prior(labels: NDArray[np.int64], rows: int) -> NDArray[np.float64]:
    return np.tile(np.array(class_frequencies(labels)), (rows, 1))


def _uncalibrated(
    result: FitResult, x: NDArray[np.floating], device: torch.device
) -> NDArray[np.float64]:
    """The direction model's probabilities without its calibration map (for the report)."""
    with torch.no_grad():
        features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        logits = result.models.direction.raw(features)
        return torch.softmax(logits.double(), dim=-1).cpu().numpy()


def _concat(parts: list[ModelOutputs]) -> ModelOutputs:
    return ModelOutputs(
        direction=np.concatenate([p.direction for p in parts]),
        ret_mean=np.concatenate([p.ret_mean for p in parts]),
        sd=np.concatenate([p.sd for p in parts]),
        regime=np.concatenate([p.regime for p in parts]),
    )


def train(
    frame: pd.DataFrame,
    cfg: TrainConfig,
    device: torch.device,
    progress: ProgressFn | None = None,
) -> TrainingRun:
    """Run walk-forward evaluation and fit the deployable models on a validated candle frame."""
    started = time.perf_counter()
    ds = build_dataset(frame, cfg.label)
    features_s = time.perf_counter() - started
    folds, final_fold = plan_folds(ds, cfg.label, cfg.folds, cfg.min_train_frac, cfg.cal_frac)
    counter = _EpochCounter(progress, len(folds) + 1, cfg.fit.epochs)
    parts: list[ModelOutputs] = []
    rows, fold_ids, d_prior, r_prior, fits, raw = [], [], [], [], [], []
    for k, fold in enumerate(folds):
        if fold.test is None:
            raise ValueError("a walk-forward fold needs a test segment")
        what = f"fold {k + 1}/{len(folds)}"
        fit_slice = ds.slice(fold.fit.start, fold.fit.stop)
        result = fit_models(
            fit_slice,
            ds.slice(fold.cal.start, fold.cal.stop),
            cfg.fit,
            device,
            counter.fit_started(what),
        )
        counter.fit_done(what)
        fits.append(result)
        test_rows = np.flatnonzero(ds.valid[fold.test.start : fold.test.stop]) + fold.test.start
        parts.append(run_models(result.models, ds.features[test_rows], device))
        raw.append(_uncalibrated(result, ds.features[test_rows], device))
        rows.append(test_rows)
        fold_ids.append(np.full(len(test_rows), k, dtype=np.int64))
        d_prior.append(_prior(fit_slice.direction, len(test_rows)))
        r_prior.append(_prior(fit_slice.regime, len(test_rows)))
    walk_forward_s = time.perf_counter() - started - features_s
    final = fit_models(
        ds.slice(final_fold.fit.start, final_fold.fit.stop),
        ds.slice(final_fold.cal.start, final_fold.cal.stop),
        cfg.fit,
        device,
        counter.fit_started("final model"),
    )
    counter.fit_done("final model")
    oos = OutOfSample(
        rows=np.concatenate(rows),
        fold=np.concatenate(fold_ids),
        outputs=_concat(parts),
        raw_direction=np.concatenate(raw),
        direction_prior=np.concatenate(d_prior),
        regime_prior=np.concatenate(r_prior),
    )
    seconds = {
        "features": features_s,
        "walk_forward": walk_forward_s,
        "final_fit": final.seconds,
        "total": time.perf_counter() - started,
    }
    return TrainingRun(ds, folds, final_fold, oos, final, fits, seconds)
