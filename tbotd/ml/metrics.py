"""Out-of-sample metrics: hit rate, calibration, a vectorised after-fee backtest, baselines.

Pure numpy over arrays aligned by bar. Definitions (also written into every report):

* **hit rate** — over bars where a call is long or short and the forward return is not exactly 0,
  the fraction whose forward return has the call's sign. Neutral calls are not counted.
* **Brier score** — mean over bars of ``sum_k (p_k - y_k)**2`` over the three classes (0 is
  perfect; always predicting the training class frequencies gives ``brier_climatology``).
* **reliability** — bars binned by confidence (the probability of the predicted class): mean
  confidence vs how often the predicted class was right.
* **backtest** — a deliberately simple signal backtest, *not* ``tbotd backtest``: at each bar's
  close hold ``position[t]`` ∈ {-1, 0, +1} for the next bar, earn ``position[t] * r[t+1]``, pay
  ``fee_bps`` per unit of position change (a flip pays twice). No slippage, funding, TP/SL,
  sizing or leverage. Sharpe is annualised from per-bar returns with ``sqrt(bars per year)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def hit_rate(calls: IntArray, fwd: FloatArray) -> tuple[float | None, int]:
    """(hit rate, number of counted calls); None when no call counts."""
    counted = (calls != 0) & (fwd != 0) & np.isfinite(fwd)
    n = int(counted.sum())
    if n == 0:
        return None, 0
    hits = np.sign(fwd[counted]) == calls[counted]
    return float(hits.mean()), n


def brier(probs: NDArray[np.floating], labels: IntArray) -> float:
    """Multi-class Brier score (0 best, 2 worst)."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def log_loss(probs: NDArray[np.floating], labels: IntArray) -> float:
    """Mean negative log-likelihood of the true class (probabilities floored at 1e-12)."""
    p = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def reliability(
    probs: NDArray[np.floating], labels: IntArray, bins: int = 10
) -> tuple[list[dict[str, Any]], float]:
    """Top-label reliability curve and expected calibration error (ECE)."""
    pred = np.argmax(probs, axis=1)
    conf = probs[np.arange(len(pred)), pred].astype(np.float64)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    curve: list[dict[str, Any]] = []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count == 0:
            continue
        mean_conf, acc = float(conf[mask].mean()), float(correct[mask].mean())
        ece += count / len(conf) * abs(mean_conf - acc)
        curve.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "mean_confidence": mean_conf,
                "accuracy": acc,
                "count": count,
            }
        )
    return curve, float(ece)


def backtest(
    position: IntArray, next_ret: FloatArray, fee_bps: float, bars_per_year: float
) -> tuple[dict[str, Any], FloatArray]:
    """The simple after-fee signal backtest; returns (summary, equity curve per bar)."""
    pos = position.astype(np.float64)
    turnover = np.abs(np.diff(np.concatenate([[0.0], pos])))
    fees = turnover * fee_bps / 10_000
    ret = pos * next_ret - fees
    equity: FloatArray = np.cumprod(1.0 + ret).astype(np.float64)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    drawdown = float(np.max(1.0 - equity / peak)) if len(equity) else 0.0
    sd = float(np.std(ret))
    summary = {
        "total_return": float(equity[-1] - 1.0) if len(equity) else 0.0,
        "sharpe": float(np.mean(ret) / sd * math.sqrt(bars_per_year)) if sd > 0 else 0.0,
        "max_drawdown": drawdown,
        "fees": float(fees.sum()),
        "gross_return": float(np.prod(1.0 + pos * next_ret) - 1.0),
        "n_trades": int(np.count_nonzero(turnover)),
        "exposure": float(np.mean(pos != 0)) if len(pos) else 0.0,
        "bars": len(pos),
    }
    return summary, equity


def volatility_metrics(
    mean: FloatArray, sd: FloatArray, fwd: FloatArray, baseline_sd: FloatArray
) -> dict[str, Any]:
    """How well the predicted ``sd`` describes the realised forward return, vs a naive baseline.

    The baseline is zero mean and the trailing realised volatility scaled to the horizon.
    """

    def nll(mu: FloatArray, s: FloatArray) -> float:
        return float(np.mean(0.5 * ((fwd - mu) / s) ** 2 + np.log(s) + 0.5 * math.log(2 * math.pi)))

    err = np.abs(fwd - mean)
    return {
        "nll": nll(mean, sd),
        "baseline_nll": nll(np.zeros_like(fwd), baseline_sd),
        "coverage_1sd": float(np.mean(err <= sd)),
        "baseline_coverage_1sd": float(np.mean(np.abs(fwd) <= baseline_sd)),
        "sd_vs_abs_return_corr": float(np.corrcoef(sd, np.abs(fwd))[0, 1]) if len(sd) > 1 else 0.0,
        "mean_sd": float(np.mean(sd)),
        "mean_abs_return": float(np.mean(np.abs(fwd))),
        "mean_direction_hit_rate": hit_rate(np.sign(mean).astype(np.int64), fwd)[0],
    }


def class_frequencies(labels: IntArray, k: int = 3) -> list[float]:
    """Share of each class among ``labels``."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return [float(c) for c in counts / max(counts.sum(), 1.0)]
