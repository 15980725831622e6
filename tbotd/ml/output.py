"""Writing a model directory: weights, report, plot, then the manifest (last).

The manifest is removed first and written last (atomically), so a directory whose training was
interrupted has no manifest and :class:`~tbotd.predictor.local.LocalPredictor` refuses it with a
clear message instead of loading a mix of old and new files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.ml.artifacts import build_manifest, save_weights
from tbotd.ml.data import CandleData
from tbotd.ml.dataset import purge_gap
from tbotd.ml.manifest import MANIFEST_NAME, MODEL_FORMAT_VERSION, write_json_atomic
from tbotd.ml.pipeline import ProgressFn, TrainConfig, TrainingRun, train
from tbotd.ml.report import build_report, plot_report
from tbotd.monitoring.drift import DriftReference, reference_from

REPORT_NAME = "report.json"
PLOT_NAME = "report.png"


def clean_json(value: Any) -> Any:
    """Replace NaN/inf by None (strict JSON) and numpy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _training_section(
    run: TrainingRun, cfg: TrainConfig, data: CandleData, device: torch.device
) -> dict[str, Any]:
    ds, fold = run.dataset, run.final_fold
    values = data.frame[["open_time", "open", "high", "low", "close", "volume"]].to_numpy()
    return {
        "source": data.source,
        "window": {
            "start": _iso(int(ds.open_time[fold.fit.start])),
            "end": _iso(int(ds.open_time[fold.cal.stop - 1])),
            "fit_rows": len(fold.fit),
            "calibration_rows": len(fold.cal),
        },
        "data_rows": len(data.frame),
        "data_sha256": hashlib.sha256(
            np.ascontiguousarray(values, dtype=np.float64).tobytes()
        ).hexdigest(),
        "walk_forward": {
            "folds": len(run.folds),
            "purge_bars": purge_gap(cfg.label),
            "scheme": "expanding",
        },
        "fit": asdict(cfg.fit) | {"hidden": list(cfg.fit.hidden)},
        "best_epochs": run.final.best_epochs,
        "calibration": {k: c.describe() for k, c in run.final.calibrations.items()},
        "device": device.type,
        "threads": torch.get_num_threads(),
    }


def _drift_reference(run: TrainingRun) -> DriftReference:
    """Each feature's distribution on the deployed model's fitting rows (drift's yardstick)."""
    ds, fit = run.dataset, run.final_fold.fit
    rows = np.flatnonzero(ds.valid[fit.start : fit.stop]) + fit.start
    return reference_from(ds.features[rows], FEATURE_NAMES)


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    d, b, bt = report["direction"], report["baselines"], report["backtest"]
    return {
        "direction": {
            k: d[k] for k in ("hit_rate", "n_calls", "brier", "brier_climatology", "ece")
        },
        "baselines": {k: {"hit_rate": v["hit_rate"]} for k, v in b.items()},
        "backtest": {k: bt[k] for k in ("total_return", "sharpe", "max_drawdown", "fees")},
        "oos_bars": report["evaluation"]["oos_bars"],
        "train_seconds": report["train_seconds"],
    }


def write_model_dir(
    data: CandleData,
    cfg: TrainConfig,
    device: torch.device,
    out: Path,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Train on ``data``, write the model directory ``out`` and return a summary dict."""
    now = now or datetime.now(UTC)
    run = train(data.frame, cfg, device, progress)
    report, curves = build_report(run, cfg, data.describe())
    report = clean_json(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    metadata = {
        "format_version": str(MODEL_FORMAT_VERSION),
        "feature_schema_hash": FEATURE_SCHEMA_HASH,
    }
    entries = save_weights(run.final.models, out, metadata)
    write_json_atomic(out / REPORT_NAME, report)
    plot_report(report, curves, str(out / PLOT_NAME))
    manifest = build_manifest(
        entries,
        now,
        cfg.timeframe,
        cfg.label.describe(),
        _training_section(run, cfg, data, device),
        _headline(report),
    )
    manifest["drift_reference"] = _drift_reference(run).to_json()
    write_json_atomic(out / MANIFEST_NAME, clean_json(manifest))
    b = report["baselines"]
    return {
        "ok": True,
        "out": str(out),
        "model_version": manifest["model_version"],
        "device": device.type,
        "rows": len(data.frame),
        "oos_bars": report["evaluation"]["oos_bars"],
        "direction": {
            k: report["direction"][k]
            for k in ("hit_rate", "n_calls", "brier", "brier_climatology", "at_threshold")
        },
        "calibration": {
            k: v for k, v in report["direction"]["calibration"].items() if k != "uncalibrated"
        }
        | {
            "uncalibrated": {
                k: v
                for k, v in report["direction"]["calibration"]["uncalibrated"].items()
                if k != "reliability"
            }
        },
        "baselines": {
            k: {"hit_rate": v["hit_rate"], "total_return": v["backtest"]["total_return"]}
            for k, v in b.items()
        },
        "backtest": {
            k: report["backtest"][k] for k in ("total_return", "sharpe", "max_drawdown", "fees")
        },
        "train_seconds": report["train_seconds"],
        "files": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
    }
