"""The training report: out-of-sample metrics of every model beside naive baselines.

``report.json`` keys other tools rely on: ``direction.hit_rate`` (non-neutral calls only),
``direction.n_calls``, ``direction.brier``, ``direction.calibration``,
``baselines.{always_long,persistence,contrarian,coin_flip}.hit_rate``,
``backtest.{total_return,sharpe,max_drawdown,fees}``, ``train_seconds``. Metric definitions are
in :mod:`tbotd.ml.metrics` and repeated in the report's ``definitions``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.values import timeframe_ms
from tbotd.ml.dataset import purge_gap
from tbotd.ml.metrics import (
    backtest,
    brier,
    class_frequencies,
    hit_rate,
    log_loss,
    reliability,
    volatility_metrics,
)
from tbotd.ml.pipeline import TrainConfig, TrainingRun
from tbotd.ml.signals import positions

REPORT_FORMAT_VERSION = 1
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
DEFINITIONS = {
    "out_of_sample": "every metric is computed on walk-forward test rows, predicted by models "
    "fitted only on rows ending purge_bars before the test segment began",
    "hit_rate": "share of long/short calls whose forward return over the label horizon has the "
    "call's sign; neutral calls and zero returns are not counted",
    "hit_rate_stderr": "sqrt(p(1-p) / (n_calls / horizon)): overlapping forward windows make "
    "calls dependent, so the effective sample is about n_calls / horizon",
    "brier": "mean of sum_k (p_k - y_k)^2 over the 3 classes; brier_climatology predicts the "
    "training fold's class frequencies every bar",
    "reliability": "top-label calibration: bars binned by the predicted class's probability vs how "
    "often that class was right",
    "calibration": "each fit maps its logits to probabilities with the candidate (none, one "
    "temperature, per-class scale and bias) of lowest log-loss on the later third of its "
    "calibration slice; 'uncalibrated' is the same models' raw softmax on the same bars",
    "backtest": "simple vectorised signal backtest, NOT `tbotd backtest`: hold sign(signal) for "
    "the next bar, pay fee_bps per unit of position change; no slippage, funding, TP/SL or sizing",
    "baselines": "always_long: always +1; persistence: sign of the previous horizon-bar return; "
    "contrarian: the opposite sign (fade the last horizon's move: short-horizon mean reversion, "
    "where most of a 5-minute direction model's skill usually comes from); coin_flip: seeded "
    "random ±1 each bar",
}

Curves = dict[str, NDArray[np.float64]]


def _stderr(p: float | None, n: int, horizon: int) -> float | None:
    if p is None or n == 0:
        return None
    return math.sqrt(p * (1 - p) / max(n / horizon, 1.0))


def _direction(run: TrainingRun, cfg: TrainConfig) -> dict[str, Any]:
    ds, oos = run.dataset, run.oos
    probs = oos.outputs.direction.astype(np.float64)
    labels = ds.direction[oos.rows]
    fwd = ds.fwd[oos.rows]
    rate, n = hit_rate(positions(probs), fwd)
    curve, ece = reliability(probs, labels)
    by_threshold = []
    for th in THRESHOLDS:
        r, k = hit_rate(positions(probs, th), fwd)
        by_threshold.append({"threshold": th, "hit_rate": r, "n_calls": k})
    per_fold = []
    for k in range(len(run.folds)):
        mask = oos.fold == k
        r, c = hit_rate(positions(probs[mask]), fwd[mask])
        per_fold.append({"fold": k, "hit_rate": r, "n_calls": c, "bars": int(mask.sum())})
    majority = np.argmax(oos.direction_prior, axis=1)
    at_rate, at_n = hit_rate(positions(probs, cfg.threshold), fwd)
    return {
        "hit_rate": rate,
        "hit_rate_stderr": _stderr(rate, n, cfg.label.horizon),
        "n_calls": n,
        "coverage": n / max(len(fwd), 1),
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
        "majority_class_accuracy": float(np.mean(majority == labels)),
        "brier": brier(probs, labels),
        "brier_climatology": brier(oos.direction_prior, labels),
        "log_loss": log_loss(probs, labels),
        "ece": ece,
        "reliability": curve,
        "calibration": _calibration(run, labels, curve),
        "by_threshold": by_threshold,
        "at_threshold": {  # what a strategy with this threshold would act on, and how well
            "threshold": cfg.threshold,
            "hit_rate": at_rate,
            "n_calls": at_n,
            "coverage": at_n / max(len(fwd), 1),
        },
        "per_fold": per_fold,
        "class_frequencies_oos": class_frequencies(labels),
    }


CALIBRATION_TARGET_POINTS = 5.0  # |mean predicted - observed| per bin, in percentage points
CALIBRATION_MIN_CALLS = 300  # bins with fewer calls are too noisy to hold to the target
HIGH_CONFIDENCE = 0.6


def calibration_summary(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """Calibration error of a reliability curve: overall, in the high-confidence bins (≥ 0.6,
    where thresholds act) and the worst gap among bins with enough calls for the target."""
    total = sum(b["count"] for b in curve) or 1
    high = [b for b in curve if b["lo"] >= HIGH_CONFIDENCE - 1e-9]
    high_n = sum(b["count"] for b in high)
    big = [b for b in curve if b["count"] >= CALIBRATION_MIN_CALLS]
    gaps = [100 * abs(b["mean_confidence"] - b["accuracy"]) for b in big]
    return {
        "ece": sum(b["count"] * abs(b["mean_confidence"] - b["accuracy"]) for b in curve) / total,
        "ece_high_confidence": (
            sum(b["count"] * abs(b["mean_confidence"] - b["accuracy"]) for b in high) / high_n
            if high_n
            else None
        ),
        "high_confidence_calls": high_n,
        "max_gap_points": max(gaps) if gaps else None,
        "target_met": bool(gaps) and max(gaps) <= CALIBRATION_TARGET_POINTS,
    }


def _calibration(run: TrainingRun, labels: NDArray[np.int64], curve: list[dict[str, Any]]) -> Any:
    """The calibrated reliability next to the uncalibrated one, and how each fit calibrated."""
    raw_curve, _ = reliability(run.oos.raw_direction, labels)
    return {
        "target": f"|mean predicted - observed| <= {CALIBRATION_TARGET_POINTS:g} points in every "
        f"confidence bin with >= {CALIBRATION_MIN_CALLS} calls",
        "calibrated": calibration_summary(curve),
        "uncalibrated": calibration_summary(raw_curve) | {"reliability": raw_curve},
        "methods": [f.calibrations["direction"].method.value for f in run.fold_fits],
        "final_method": run.final.calibrations["direction"].method.value,
    }


def _baselines(
    run: TrainingRun, cfg: TrainConfig, bars_per_year: float
) -> tuple[dict[str, Any], Curves]:
    ds, rows = run.dataset, run.oos.rows
    h = cfg.label.horizon
    fwd, next_ret = ds.fwd[rows], ds.close[rows + 1] / ds.close[rows] - 1.0
    past = ds.close[rows] / ds.close[rows - h] - 1.0
    rng = np.random.default_rng(cfg.fit.seed)
    calls = {
        "always_long": np.ones(len(rows), dtype=np.int64),
        "persistence": np.sign(past).astype(np.int64),
        "contrarian": -np.sign(past).astype(np.int64),
        "coin_flip": rng.choice(np.array([-1, 1], dtype=np.int64), size=len(rows)),
    }
    out: dict[str, Any] = {}
    curves: Curves = {}
    for name, c in calls.items():
        rate, n = hit_rate(c, fwd)
        summary, equity = backtest(c, next_ret, cfg.label.fee_bps, bars_per_year)
        out[name] = {"hit_rate": rate, "n_calls": n, "backtest": summary}
        curves[name] = equity
    return out, curves


def _regime(run: TrainingRun) -> dict[str, Any]:
    labels = run.dataset.regime[run.oos.rows]
    probs = run.oos.outputs.regime.astype(np.float64)
    majority = np.argmax(run.oos.regime_prior, axis=1)
    return {
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
        "majority_class_accuracy": float(np.mean(majority == labels)),
        "brier": brier(probs, labels),
        "brier_climatology": brier(run.oos.regime_prior, labels),
        "class_frequencies_oos": class_frequencies(labels),
    }


def build_report(
    run: TrainingRun, cfg: TrainConfig, data: dict[str, Any]
) -> tuple[dict[str, Any], Curves]:
    """The report dict and the equity curves for the plot."""
    ds, oos = run.dataset, run.oos
    bars_per_year = 365 * 86_400_000 / timeframe_ms(cfg.timeframe)
    next_ret = ds.close[oos.rows + 1] / ds.close[oos.rows] - 1.0
    probs = oos.outputs.direction.astype(np.float64)
    bt, equity = backtest(positions(probs), next_ret, cfg.label.fee_bps, bars_per_year)
    bt_th, equity_th = backtest(
        positions(probs, cfg.threshold), next_ret, cfg.label.fee_bps, bars_per_year
    )
    baselines, curves = _baselines(run, cfg, bars_per_year)
    fwd = ds.fwd[oos.rows]
    naive_sd = ds.column("rv_48")[oos.rows] * math.sqrt(cfg.label.horizon)
    report: dict[str, Any] = {
        "format_version": REPORT_FORMAT_VERSION,
        "definitions": DEFINITIONS,
        "data": data,
        "label": cfg.label.describe(),
        "evaluation": {
            "scheme": "walk-forward, expanding training window",
            "folds": [
                {
                    "fit": f.fit.to_dict(),
                    "cal": f.cal.to_dict(),
                    "test": f.test.to_dict() if f.test else None,
                }
                for f in run.folds
            ],
            "purge_bars": purge_gap(cfg.label),
            "oos_bars": len(oos.rows),
            "oos_start": int(ds.open_time[oos.rows[0]]) if len(oos.rows) else None,
            "oos_end": int(ds.open_time[oos.rows[-1]]) if len(oos.rows) else None,
        },
        "direction": _direction(run, cfg),
        "baselines": baselines,
        "backtest": bt
        | {"fee_bps": cfg.label.fee_bps, "at_threshold": bt_th | {"threshold": cfg.threshold}},
        "volatility": volatility_metrics(
            oos.outputs.ret_mean.astype(np.float64),
            oos.outputs.sd.astype(np.float64),
            fwd,
            naive_sd,
        ),
        "regime": _regime(run),
        "train_seconds": run.seconds["total"],
        "seconds": run.seconds,
    }
    curves |= {"model": equity, f"model (conf ≥ {cfg.threshold:g})": equity_th}
    return report, curves


def plot_report(report: dict[str, Any], curves: Curves, path: str) -> None:
    """Write ``report.png``: hit rates vs baselines, reliability, equity after fees, per fold."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    d, b = report["direction"], report["baselines"]
    names = ["model", "always long", "persistence", "contrarian", "coin flip"]
    rates = [d["hit_rate"]] + [
        b[k]["hit_rate"] for k in ("always_long", "persistence", "contrarian", "coin_flip")
    ]
    ax = axes[0][0]
    ax.bar(names, [100 * (r or 0.0) for r in rates], color=["C0", "C7", "C7", "C7", "C7"])
    ax.axhline(50, color="k", lw=0.8, ls="--")
    err = d.get("hit_rate_stderr")
    if err:
        ax.errorbar(
            [0],
            [100 * (d["hit_rate"] or 0)],
            yerr=[196 * err],
            color="k",
            capsize=6,
            label="±1.96 s.e. (overlap-adjusted)",
        )
        ax.legend(fontsize=8, loc="lower right")
    lo = min(100 * (r or 0.5) for r in rates)
    ax.set_ylim(max(lo - 5, 0), max(100 * (r or 0.5) for r in rates) + 5)
    ax.set_title(f"Out-of-sample hit rate, non-neutral calls (n={d['n_calls']})")
    ax.set_ylabel("%")
    ax = axes[0][1]
    rel = d["reliability"]
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.plot(
        [r["mean_confidence"] for r in rel], [r["accuracy"] for r in rel], "o-", label="calibrated"
    )
    raw = d["calibration"]["uncalibrated"]["reliability"]
    ax.plot(
        [r["mean_confidence"] for r in raw],
        [r["accuracy"] for r in raw],
        "s:",
        color="C7",
        label="uncalibrated",
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        f"Reliability (Brier {d['brier']:.4f} vs climatology {d['brier_climatology']:.4f})"
    )
    ax.set_xlabel("confidence of predicted class")
    ax.set_ylabel("observed frequency")
    ax = axes[1][0]
    for name, eq in curves.items():
        ax.plot(eq, label=name, lw=1.2 if name.startswith("model") else 0.8)
    ax.set_yscale("log")
    ax.set_title(f"Simple signal backtest after {report['backtest']['fee_bps']:g} bps fees (OOS)")
    ax.set_xlabel("out-of-sample bar")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    folds = d["per_fold"]
    ax.bar([f"fold {f['fold'] + 1}" for f in folds], [100 * (f["hit_rate"] or 0) for f in folds])
    ax.axhline(50, color="k", lw=0.8, ls="--")
    fold_rates = [100 * (f["hit_rate"] or 0.5) for f in folds] or [50.0]
    ax.set_ylim(min(40.0, min(fold_rates) - 2), max(60.0, max(fold_rates) + 2))
    ax.set_title("Hit rate per walk-forward fold")
    fig.suptitle("tbotd train — all numbers out-of-sample (walk-forward, purged)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
