"""Saving and loading model weights: safetensors only, checked against the manifest.

Loading never unpickles anything: ``safetensors.torch.load_file`` reads raw tensors, the modules
are rebuilt from code using the manifest's hyper-parameters, and ``load_state_dict(strict=True)``
refuses a file with missing, extra or misshapen tensors.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import safetensors
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from tbotd.features import FEATURE_DEFINITIONS_VERSION, FEATURE_NAMES, FEATURE_SCHEMA_HASH, WARMUP
from tbotd.ml.errors import WeightsIntegrityError
from tbotd.ml.manifest import (
    MANIFEST_NAME,
    MODEL_FORMAT_VERSION,
    Manifest,
    read_manifest,
    sha256_file,
    verify_weights,
)
from tbotd.ml.models import (
    MODEL_OUTPUTS,
    DirectionClassifier,
    ModelSet,
    ModelShape,
    RegimeDetector,
    VolatilityPredictor,
    _Classifier,
    _StandardisedMLP,
)


def library_versions() -> dict[str, str]:
    """Versions that produced (or load) the weights, recorded for reproducibility."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "safetensors": safetensors.__version__,
    }


def _canonical(blob: bytes) -> bytes:
    """The same file with its JSON header's keys sorted: safetensors writes the metadata in a
    hash map's order, so identical training would otherwise give files that differ byte-wise
    (and in sha256). The header's length and padding are kept, the tensor data is untouched."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > size:  # cannot happen for the same keys and values; never write a bad file
        return blob
    return blob[:8] + text.ljust(size, b" ") + blob[8 + size :]


def save_weights(models: ModelSet, out_dir: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """Write ``<name>.safetensors`` per model; returns the manifest's ``models`` section."""
    entries: dict[str, Any] = {}
    for name, module in models.items():
        path = out_dir / f"{name}.safetensors"
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        path.write_bytes(_canonical(save(tensors, metadata=metadata | {"model": name})))
        entry: dict[str, Any] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "class": type(module).__name__,
            "shape": module.shape.to_dict(),
            "outputs": list(MODEL_OUTPUTS[name]),
            "normalisation": {
                "feature_mean": module.feature_mean.cpu().tolist(),
                "feature_std": module.feature_std.cpu().tolist(),
            },
        }
        if isinstance(module, DirectionClassifier | RegimeDetector):
            entry["temperature"] = float(module.temperature)
            entry["calibration"] = {
                "scale": module.class_scale.cpu().tolist(),
                "bias": module.class_bias.cpu().tolist(),
                "mix": float(module.class_mix),
                "prior": module.class_prior.cpu().tolist(),
                "feature_clip_sd": float(module.feature_clip),
            }
        if isinstance(module, VolatilityPredictor):
            entry["target_scale"] = float(module.target_scale)
        entries[name] = entry
    return entries


def build_manifest(
    models: dict[str, Any],
    now: datetime,
    timeframe: str,
    label: dict[str, Any],
    training: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The manifest dict; ``model_version`` is the creation time plus a hash of all weights."""
    combined = "".join(models[name]["sha256"] for name in sorted(models))
    tag = hashlib.sha256(combined.encode()).hexdigest()[:10]
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "model_version": f"local-{now:%Y%m%dT%H%M%SZ}-{tag}",
        "created_at": now.isoformat(),
        "timeframe": timeframe,
        "required_history": WARMUP,
        "features": {
            "names": list(FEATURE_NAMES),
            "schema_hash": FEATURE_SCHEMA_HASH,
            "definitions_version": FEATURE_DEFINITIONS_VERSION,
            "warmup_bars": WARMUP,
        },
        "signal_rule": "signal = argmax of P(down, neutral, up) → short/neutral/long; "
        "confidence = that probability (temperature-calibrated); sd from the volatility model",
        "models": models,
        "label": label,
        "training": training,
        "libraries": library_versions(),
        "metrics": metrics,
    }


_CLASSES: dict[str, type[_StandardisedMLP]] = {
    "direction": DirectionClassifier,
    "volatility": VolatilityPredictor,
    "regime": RegimeDetector,
}


@dataclass(frozen=True)
class LoadedModels:
    """Modules on their device (eval mode) with the manifest that describes them."""

    models: ModelSet
    manifest: Manifest
    device: torch.device


def with_calibration_defaults(
    module: _StandardisedMLP, tensors: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A classifier file from before per-class calibration has no ``class_*`` buffers: they get
    the identity map (scale 1, bias 0, no mix), and one from before feature clipping no
    ``feature_clip`` (0: none), so the model answers exactly as it did."""
    if not isinstance(module, _Classifier):
        return tensors
    defaults = {k: module.state_dict()[k] for k in _Classifier.CALIBRATION_BUFFERS}
    return defaults | tensors


def _load_module(
    models_dir: Path, name: str, manifest: Manifest, device: torch.device
) -> _StandardisedMLP:
    entry = manifest.models[name]  # type: ignore[index]
    path = verify_weights(models_dir, name, entry)
    shape = ModelShape(
        entry.shape.n_features,
        entry.shape.n_outputs,
        tuple(entry.shape.hidden),
        entry.shape.dropout,
    )
    module = _CLASSES[name](shape)
    try:
        tensors = load_file(str(path), device="cpu")
        module.load_state_dict(with_calibration_defaults(module, tensors), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as e:
        raise WeightsIntegrityError(f"{path} ({name} weights) cannot be loaded: {e}") from e
    bad = [k for k, v in module.state_dict().items() if not torch.isfinite(v).all()]
    if bad:
        raise WeightsIntegrityError(f"{path} ({name} weights) has non-finite values in {bad}")
    return module.to(device).eval()


def load_models(models_dir: Path, device: torch.device) -> LoadedModels:
    """Check ``models_dir`` (:func:`tbotd.ml.manifest.read_manifest`) and load all three models."""
    manifest = read_manifest(models_dir, check_weights=False)
    modules = {
        name: _load_module(models_dir, name, manifest, device)
        for name in ("direction", "volatility", "regime")
    }
    return LoadedModels(
        ModelSet(
            direction=cast(DirectionClassifier, modules["direction"]),
            volatility=cast(VolatilityPredictor, modules["volatility"]),
            regime=cast(RegimeDetector, modules["regime"]),
        ),
        manifest,
        device,
    )


__all__ = ["MANIFEST_NAME", "LoadedModels", "build_manifest", "load_models", "save_weights"]
