"""Fitting the three models on one training slice, early-stopped and calibrated on a later one.

Everything that is learnt from data — feature mean/std, the return scale, the best epoch and the
calibration map (:mod:`tbotd.ml.calibration`) — comes from the slices given here, never from the
rows the models are later evaluated on. The same seed, data and thread count give the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from numpy.typing import NDArray

from tbotd.ml.calibration import Calibration, fit_calibration
from tbotd.ml.models import (
    ModelSet,
    VolatilityPredictor,
    _Classifier,
    _StandardisedMLP,
    new_models,
)

EpochCallback = Callable[[int, int], None]
_TARGET_CLIP = 10.0  # standardised forward returns beyond ±10 sd are clipped for the loss only


@dataclass(frozen=True, slots=True)
class FitConfig:
    """Optimisation settings shared by the three models."""

    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.1
    epochs: int = 10
    patience: int = 2
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # the classifiers' standardised inputs are clipped here (see models._Classifier; 4 sd and
    # none were measured worse: benchmarks/RESULTS.md, calibration)
    feature_clip_sd: float = 3.0


@dataclass(frozen=True)
class Slice:
    """Feature rows and their labels (see :mod:`tbotd.ml.labels`)."""

    x: NDArray[np.float32]
    direction: NDArray[np.int64]
    fwd: NDArray[np.float64]
    regime: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class FitResult:
    """Trained models (eval mode) and what training chose."""

    models: ModelSet
    best_epochs: dict[str, int]
    calibrations: dict[str, Calibration]
    seconds: float


def _nll(model: VolatilityPredictor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mean, log_sd = model.standardised(x)
    return (0.5 * (y - mean) ** 2 * torch.exp(-2 * log_sd) + log_sd).mean()


class _Targets:
    """One slice as tensors on the training device."""

    def __init__(self, data: Slice, scale: float, device: torch.device) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(data.x)).to(device)
        self.direction = torch.from_numpy(data.direction).to(device)
        clipped = np.clip(data.fwd / scale, -_TARGET_CLIP, _TARGET_CLIP).astype(np.float32)
        self.fwd = torch.from_numpy(clipped).to(device)
        self.regime = torch.from_numpy(data.regime).to(device)

    def loss(self, name: str, module: _StandardisedMLP, idx: torch.Tensor | None) -> torch.Tensor:
        x = self.x if idx is None else self.x[idx]
        if name == "volatility":
            if not isinstance(module, VolatilityPredictor):
                raise TypeError(f"{name} is not a VolatilityPredictor")
            y = self.fwd if idx is None else self.fwd[idx]
            return _nll(module, x, y)
        labels = self.direction if name == "direction" else self.regime
        return F.cross_entropy(module.raw(x), labels if idx is None else labels[idx])


def _calibrate(module: _Classifier, cal: _Targets, labels: torch.Tensor) -> Calibration:
    """Fit the classifier's calibration on the held-out slice and store it in its buffers."""
    with torch.no_grad():
        logits = module.raw(cal.x).double().cpu().numpy()
    calibration = fit_calibration(logits, labels.cpu().numpy())
    module.temperature.fill_(1.0)
    module.class_scale.copy_(torch.tensor(calibration.scale))
    module.class_bias.copy_(torch.tensor(calibration.bias))
    module.class_mix.fill_(calibration.mix)
    if calibration.prior:
        module.class_prior.copy_(torch.tensor(calibration.prior))
    return calibration


class _EarlyStopping:
    """Keeps each model's best weights by held-out loss; retires a model after ``patience``."""

    def __init__(self, models: ModelSet, patience: int) -> None:
        self.models, self.patience = models, patience
        self.active = {name for name, _ in models.items()}
        self.best_loss = dict.fromkeys(self.active, np.inf)
        self.best_epoch = dict.fromkeys(self.active, 0)
        self.best_state: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, epoch: int, held: _Targets) -> None:
        for name, module in self.models.items():
            if name not in self.active:
                continue
            module.eval()
            with torch.no_grad():
                loss = float(held.loss(name, module, None))
            if loss < self.best_loss[name] or name not in self.best_state:
                self.best_loss[name], self.best_epoch[name] = loss, epoch
                self.best_state[name] = {
                    k: v.detach().clone() for k, v in module.state_dict().items()
                }
            elif epoch - self.best_epoch[name] >= self.patience:
                self.active.discard(name)

    def restore(self) -> None:
        for name, module in self.models.items():
            module.load_state_dict(self.best_state[name])
            module.eval()


def _prepare(fit: Slice, cfg: FitConfig, device: torch.device) -> tuple[ModelSet, float]:
    """New models with the fit slice's feature statistics and return scale folded in."""
    x64 = fit.x.astype(np.float64)
    mean, std = x64.mean(axis=0), x64.std(axis=0)
    scale = float(np.std(fit.fwd)) or 1.0
    models = new_models(fit.x.shape[1], cfg.hidden, cfg.dropout, cfg.seed)
    for module in models.modules():
        module.set_normalisation(mean, std)
        module.to(device)
    models.volatility.target_scale.fill_(scale)
    models.direction.feature_clip.fill_(cfg.feature_clip_sd)
    models.regime.feature_clip.fill_(cfg.feature_clip_sd)
    return models, scale


def _epoch(
    models: ModelSet,
    train: _Targets,
    optimisers: dict[str, torch.optim.Optimizer],
    active: set[str],
    order: torch.Tensor,
    batch_size: int,
) -> None:
    for name, module in models.items():
        module.train(name in active)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        for name, module in models.items():
            if name in active:
                optimisers[name].zero_grad(set_to_none=True)
                loss = train.loss(name, module, idx)
                loss.backward()  # type: ignore[no-untyped-call]
                optimisers[name].step()


def fit_models(
    fit: Slice,
    cal: Slice,
    cfg: FitConfig,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train direction, volatility and regime models on ``fit``; stop early, calibrate on ``cal``.

    Each model keeps the weights of its best epoch by held-out loss and stops after
    ``cfg.patience`` epochs without improvement. ``on_epoch(done, total)`` reports progress.
    """
    if len(fit) == 0 or len(cal) == 0:
        raise ValueError("both the fitting and the calibration slice need rows")
    started = time.perf_counter()
    models, scale = _prepare(fit, cfg, device)
    train, held = _Targets(fit, scale, device), _Targets(cal, scale, device)
    optimisers: dict[str, torch.optim.Optimizer] = {
        name: torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for name, m in models.items()
    }
    stopping = _EarlyStopping(models, cfg.patience)
    generator = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(fit), generator=generator).to(device)
        _epoch(models, train, optimisers, stopping.active, order, cfg.batch_size)
        stopping.update(epoch, held)
        if on_epoch is not None:
            on_epoch(epoch, cfg.epochs)
        if not stopping.active:
            break
    stopping.restore()
    calibrations = {
        "direction": _calibrate(models.direction, held, held.direction),
        "regime": _calibrate(models.regime, held, held.regime),
    }
    return FitResult(models, stopping.best_epoch, calibrations, time.perf_counter() - started)
