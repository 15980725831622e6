"""The three local models: small MLPs over the engineered features, normalisation folded in.

Each module maps *raw* features (float32, shape [N, F], in :data:`tbotd.features.FEATURE_NAMES`
order) to its outputs; the training fold's feature mean/std (and the calibration temperature or
target scale) are buffers, so the saved weights are the whole model and an ONNX export needs no
side files:

* :class:`DirectionClassifier` → [N, 3] probabilities of (down, neutral, up).
* :class:`VolatilityPredictor` → [N, 2]: mean and standard deviation ``sd`` of the forward return
  (fractions of price), from a Gaussian negative-log-likelihood fit.
* :class:`RegimeDetector` → [N, 3] probabilities of (trend-down, sideways, trend-up).

:func:`run_models` is the one forward path every caller uses. It feeds rows in fixed blocks of
:data:`FORWARD_BLOCK` (zero-padded), because a matrix product's rounding depends on its shape:
with a fixed shape, a row's outputs do not depend on how many other rows were in the call, so the
live batch of S symbols and the backtester's whole history give bit-identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from tbotd.ml.outputs import ModelOutputs

FORWARD_BLOCK = 64
_LOG_SD_MIN, _LOG_SD_MAX = -8.0, 4.0


@dataclass(frozen=True, slots=True)
class ModelShape:
    """Architecture hyper-parameters, stored in the manifest so loading rebuilds the same net."""

    n_features: int
    n_outputs: int
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.1

    def to_dict(self) -> dict[str, object]:
        """JSON form for the manifest."""
        return asdict(self) | {"hidden": list(self.hidden)}


class _StandardisedMLP(nn.Module):
    """(x - mean) / std → [Linear → ReLU → Dropout] × len(hidden) → Linear."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.shape = shape
        self.register_buffer("feature_mean", torch.zeros(shape.n_features))
        self.register_buffer("feature_std", torch.ones(shape.n_features))
        layers: list[nn.Module] = []
        width = shape.n_features
        for h in shape.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(shape.dropout)]
            width = h
        layers.append(nn.Linear(width, shape.n_outputs))
        self.body = nn.Sequential(*layers)

    def set_normalisation(self, mean: NDArray[np.float64], std: NDArray[np.float64]) -> None:
        """Fold the training fold's feature statistics into the module (std floored at 1e-12)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        safe = np.where(std > 1e-12, std, 1.0)
        self.feature_std.copy_(torch.as_tensor(safe, dtype=torch.float32))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unscaled network outputs for raw features."""
        out: torch.Tensor = self.body((x - self.feature_mean) / self.feature_std)
        return out


class _Classifier(_StandardisedMLP):
    """Softmax classifier calibrated on held-out data (:mod:`tbotd.ml.calibration`):
    ``(1 - class_mix) · softmax(logits / temperature · class_scale + class_bias) + class_mix ·
    class_prior``. Models trained before per-class calibration carry only ``temperature``; their
    files load with scale 1, bias 0 and no mix, so they answer exactly as before.

    Standardised features are clipped to ``±feature_clip`` (training sets 3 sd; 0 = no clip):
    a ReLU network extrapolates linearly, so a volatility spike five training sd out made the
    direction model's rarest calls its most confident and its least right (0.75 predicted, 42 %
    observed), where no calibration slice holds enough such bars to correct it. The volatility
    model is not clipped: its ``sd`` must follow a crash, not stop at the third sd."""

    temperature: torch.Tensor
    class_scale: torch.Tensor
    class_bias: torch.Tensor
    class_mix: torch.Tensor
    class_prior: torch.Tensor
    feature_clip: torch.Tensor
    CALIBRATION_BUFFERS = ("class_scale", "class_bias", "class_mix", "class_prior", "feature_clip")

    def __init__(self, shape: ModelShape) -> None:
        super().__init__(shape)
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("class_scale", torch.ones(shape.n_outputs))
        self.register_buffer("class_bias", torch.zeros(shape.n_outputs))
        self.register_buffer("class_mix", torch.zeros(()))
        self.register_buffer("class_prior", torch.full((shape.n_outputs,), 1 / shape.n_outputs))
        self.register_buffer("feature_clip", torch.zeros(()))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unscaled logits for raw features, standardised features clipped to ±feature_clip."""
        z = (x - self.feature_mean) / self.feature_std
        c = self.feature_clip
        # torch.where, not `if`: one graph for clipped and unclipped files (ONNX export traces it)
        z = torch.where(c > 0, torch.minimum(torch.maximum(z, -c), c), z)
        out: torch.Tensor = self.body(z)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities [N, n_outputs]."""
        z = self.raw(x) / self.temperature * self.class_scale + self.class_bias
        p = torch.softmax(z, dim=-1)
        return (1 - self.class_mix) * p + self.class_mix * self.class_prior


class DirectionClassifier(_Classifier):
    """P(down), P(neutral), P(up) of the forward return over the label horizon."""


class RegimeDetector(_Classifier):
    """P(trend-down), P(sideways), P(trend-up) from features of closed bars only."""


class VolatilityPredictor(_StandardisedMLP):
    """Mean and standard deviation of the forward return (fractions of price)."""

    target_scale: torch.Tensor

    def __init__(self, shape: ModelShape) -> None:
        super().__init__(shape)
        self.register_buffer("target_scale", torch.ones(()))

    def standardised(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log sd) in units of ``target_scale``, as the loss sees them."""
        out = self.raw(x)
        return out[:, 0], out[:, 1].clamp(_LOG_SD_MIN, _LOG_SD_MAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 2]: forward-return mean and sd as fractions of price."""
        mean, log_sd = self.standardised(x)
        return torch.stack([mean, torch.exp(log_sd)], dim=-1) * self.target_scale


MODEL_CLASSES: dict[str, type[_StandardisedMLP]] = {
    "direction": DirectionClassifier,
    "volatility": VolatilityPredictor,
    "regime": RegimeDetector,
}
MODEL_OUTPUTS: dict[str, tuple[str, ...]] = {
    "direction": ("p_down", "p_neutral", "p_up"),
    "volatility": ("ret_mean", "sd"),
    "regime": ("p_trend_down", "p_sideways", "p_trend_up"),
}


@dataclass(frozen=True)
class ModelSet:
    """The three trained modules, evaluated together."""

    direction: DirectionClassifier
    volatility: VolatilityPredictor
    regime: RegimeDetector

    def items(self) -> Sequence[tuple[str, _StandardisedMLP]]:
        """(name, module) pairs in manifest order."""
        return (
            ("direction", self.direction),
            ("volatility", self.volatility),
            ("regime", self.regime),
        )

    def modules(self) -> tuple[_StandardisedMLP, ...]:
        """The three modules in manifest order."""
        return (self.direction, self.volatility, self.regime)


def new_models(n_features: int, hidden: tuple[int, ...], dropout: float, seed: int) -> ModelSet:
    """Freshly initialised models; the same seed gives the same initial weights."""
    torch.manual_seed(seed)
    direction = DirectionClassifier(ModelShape(n_features, 3, hidden, dropout))
    volatility = VolatilityPredictor(ModelShape(n_features, 2, hidden, dropout))
    regime = RegimeDetector(ModelShape(n_features, 3, hidden, dropout))
    return ModelSet(direction, volatility, regime)


def run_models(
    models: ModelSet, features: NDArray[np.floating], device: torch.device
) -> ModelOutputs:
    """Forward raw features [N, F] through all three models in fixed-size blocks.

    Runs under ``torch.inference_mode()`` on ``device`` (the modules must already be there).
    """
    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    if n == 0:
        empty = np.zeros((0,), dtype=np.float32)
        probs = np.zeros((0, 3), dtype=np.float32)
        return ModelOutputs(direction=probs, ret_mean=empty, sd=empty, regime=probs.copy())
    padded = -(-n // FORWARD_BLOCK) * FORWARD_BLOCK
    block = np.zeros((padded, x.shape[1]), dtype=np.float32)
    block[:n] = x
    outs: dict[str, list[torch.Tensor]] = {"direction": [], "volatility": [], "regime": []}
    with torch.inference_mode():
        xs = torch.from_numpy(block).to(device)
        for start in range(0, padded, FORWARD_BLOCK):
            chunk = xs[start : start + FORWARD_BLOCK]
            for name, module in models.items():
                outs[name].append(module(chunk))
        merged = {k: torch.cat(v)[:n].float().cpu().numpy() for k, v in outs.items()}
    return ModelOutputs(
        direction=merged["direction"],
        ret_mean=merged["volatility"][:, 0],
        sd=merged["volatility"][:, 1],
        regime=merged["regime"],
    )
