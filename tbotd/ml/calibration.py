"""Calibrating a classifier's probabilities out of sample, by held-out log-loss.

A threshold such as "act at confidence ≥ 0.7" is only meaningful on calibrated probabilities.
Each fit's calibration slice (later than its fitting rows, earlier than anything it is tested on)
is split in time: the earlier two thirds fit every candidate map, the later third picks the one
with the lowest log-loss, and the winner is refitted on the whole slice. Candidates, all carried
by the model's buffers (no side files, ONNX-able):

* ``temperature`` — one scale for every class, no bias (Guo et al. 2017);
* ``vector`` — a scale and a bias per class ("vector scaling"), which also corrects a class whose
  frequency moved between fitting and calibration;
* ``shrunk`` — vector scaling, then mixed with the calibration slice's class frequencies
  (``(1 - mix) · p + mix · prior``): a model whose edge does not carry over is pulled toward
  "no opinion" instead of staying confidently wrong in its rare high-confidence calls.

``none`` (scale 1, bias 0) is a candidate too, so calibration is only used where it helped on
rows it was not fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
from numpy.typing import NDArray

SELECT_FRAC = 1 / 3  # the later third of the calibration slice chooses the method
_TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(5.0), 121))
_L2 = 1e-3  # pulls vector scaling toward the temperature solution on small slices


class CalibrationMethod(StrEnum):
    """How raw logits become calibrated probabilities."""

    NONE = "none"
    TEMPERATURE = "temperature"
    VECTOR = "vector"
    SHRUNK = "shrunk"


@dataclass(frozen=True)
class Calibration:
    """``(1 - mix) · softmax(logits · scale + bias) + mix · prior``; ``heldout_log_loss`` is per
    candidate method."""

    method: CalibrationMethod
    scale: tuple[float, ...]
    bias: tuple[float, ...]
    mix: float = 0.0
    prior: tuple[float, ...] = ()
    heldout_log_loss: dict[str, float] = field(default_factory=dict)

    def apply(self, logits: NDArray[np.floating]) -> NDArray[np.float64]:
        """Calibrated probabilities for raw logits [N, K]."""
        z = np.asarray(logits, np.float64) * np.array(self.scale) + np.array(self.bias)
        p = softmax(z)
        return p if not self.mix else (1 - self.mix) * p + self.mix * np.array(self.prior)

    def describe(self) -> dict[str, object]:
        """The manifest's record of it."""
        return {
            "method": self.method.value,
            "scale": list(self.scale),
            "bias": list(self.bias),
            "mix": self.mix,
            "prior": list(self.prior),
            "heldout_log_loss": self.heldout_log_loss,
        }


def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax, stable for large logits."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def _nll(z: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def _fit(
    method: CalibrationMethod, logits: NDArray[np.float64], y: NDArray[np.int64]
) -> Calibration:
    k = logits.shape[1]
    if method is CalibrationMethod.NONE:
        return Calibration(method, (1.0,) * k, (0.0,) * k)
    nlls = [_nll(logits / t, y) for t in _TEMPERATURES]
    t = float(_TEMPERATURES[int(np.argmin(nlls))])
    if method is CalibrationMethod.TEMPERATURE:
        return Calibration(method, (1.0 / t,) * k, (0.0,) * k)
    vector = _vector(logits, y, 1.0 / t)
    if method is CalibrationMethod.VECTOR:
        return vector
    return _shrunk(vector, logits, y)


_MIXES = np.linspace(0.0, 0.95, 96)


def _shrunk(vector: Calibration, logits: NDArray[np.float64], y: NDArray[np.int64]) -> Calibration:
    """Vector scaling mixed with the class frequencies, the mix by NLL on the same rows (grid)."""
    k = logits.shape[1]
    prior = np.bincount(y, minlength=k).astype(np.float64)
    prior = (prior + 1.0) / (prior.sum() + k)  # never a zero probability
    p = vector.apply(logits)[np.arange(len(y)), y]
    nll = [float(-np.mean(np.log((1 - m) * p + m * prior[y]))) for m in _MIXES]
    mix = float(_MIXES[int(np.argmin(nll))])
    return Calibration(
        CalibrationMethod.SHRUNK, vector.scale, vector.bias, mix, tuple(float(v) for v in prior)
    )


def _vector(logits: NDArray[np.float64], y: NDArray[np.int64], start: float) -> Calibration:
    """Per-class scale and bias by L-BFGS on the NLL (float64, CPU: deterministic)."""
    z = torch.from_numpy(logits)
    target = torch.from_numpy(y)
    k = logits.shape[1]
    scale = torch.full((k,), start, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([scale, bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z * scale + bias, target)
        loss = loss + _L2 * (((scale - start) ** 2).sum() + (bias**2).sum())
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return Calibration(
        CalibrationMethod.VECTOR,
        tuple(float(v) for v in scale.detach()),
        tuple(float(v) for v in bias.detach()),
    )


def fit_calibration(logits: NDArray[np.floating], labels: NDArray[np.integer]) -> Calibration:
    """The candidate with the lowest log-loss on the later part of the slice (fitted on the
    earlier part), refitted on all of it (rows in time order). Too few rows to split: temperature
    scaling on all of them."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    cut = int(len(y) * (1 - SELECT_FRAC))
    if cut < 30 or len(y) - cut < 30:
        return _fit(CalibrationMethod.TEMPERATURE, z, y)
    scores = {}
    for m in CalibrationMethod:
        probs = _fit(m, z[:cut], y[:cut]).apply(z[cut:])
        picked = probs[np.arange(len(y) - cut), y[cut:]]
        scores[m.value] = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
    best = CalibrationMethod(min(scores, key=lambda m: scores[m]))
    chosen = _fit(best, z, y)
    return Calibration(chosen.method, chosen.scale, chosen.bias, chosen.mix, chosen.prior, scores)
