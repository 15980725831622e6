"""The meta-label classifier, its files and its fixed-block forward.

Inputs: the 25 engineered features of the signal bar (``FEATURE_NAMES`` order) and the side
(+1 long, -1 short); output: P(take-profit first after fees), Platt-calibrated on a held-out
slice (two buffers, so the weights file carries the map). :func:`meta_probabilities` answers for
**both** sides of every row in fixed 64-row blocks — the backtest's whole history and the
daemon's single candle go through the same blocks, so they get the same numbers bit for bit.

Files (``DIR``): ``meta_label.safetensors`` and ``meta_label.json`` (its own manifest: format,
feature schema, barriers, the classic strategy it learnt, the threshold, metrics, sha256), next
to or apart from the other models' ``manifest.json``. Loading checks the schema and the sha256
before reading a tensor and never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH, WARMUP
from tbotd.ml.errors import (
    FeatureSchemaMismatchError,
    FormatVersionError,
    ManifestError,
    ModelNotFoundError,
    WeightsIntegrityError,
)
from tbotd.ml.manifest import sha256_file
from tbotd.ml.models import FORWARD_BLOCK, ModelShape, _StandardisedMLP

META_MANIFEST = "meta_label.json"
META_WEIGHTS = "meta_label.safetensors"
META_FORMAT_VERSION = 1
META_INPUTS = (*FEATURE_NAMES, "side")


class MetaClassifier(_StandardisedMLP):
    """σ(a · logit + b): P(take-profit first) for raw inputs ``META_INPUTS``."""

    platt_a: torch.Tensor
    platt_b: torch.Tensor

    def __init__(self, shape: ModelShape) -> None:
        super().__init__(shape)
        self.register_buffer("platt_a", torch.ones(()))
        self.register_buffer("platt_b", torch.zeros(()))

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """The uncalibrated logit [N]."""
        return self.raw(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities [N]."""
        return torch.sigmoid(self.platt_a * self.logit(x) + self.platt_b)


def with_side(features: NDArray[np.floating], side: float) -> NDArray[np.float32]:
    """Feature rows [N, 25] with the side column appended."""
    x = np.asarray(features, dtype=np.float32)
    return np.concatenate([x, np.full((len(x), 1), side, dtype=np.float32)], axis=1)


def run_blocks(
    model: MetaClassifier, x: NDArray[np.float32], device: torch.device
) -> NDArray[np.float64]:
    """Forward rows [N, 26] in fixed blocks (padded), so a row's answer never depends on N."""
    n = len(x)
    padded = -(-n // FORWARD_BLOCK) * FORWARD_BLOCK
    block = np.zeros((padded, x.shape[1]), dtype=np.float32)
    block[:n] = x
    with torch.inference_mode():
        xs = torch.from_numpy(block).to(device)
        parts = [model(xs[s : s + FORWARD_BLOCK]) for s in range(0, padded, FORWARD_BLOCK)]
        out = torch.cat(parts)[:n].float().cpu().numpy() if parts else np.zeros(0, np.float32)
    return np.asarray(out, dtype=np.float64)


def meta_probabilities(
    model: MetaClassifier, features: NDArray[np.floating], device: torch.device
) -> NDArray[np.float64]:
    """[N, 2]: P(take-profit first) for a long and a short on each row; NaN where a feature is."""
    x = np.asarray(features, dtype=np.float64)
    ok = np.isfinite(x).all(axis=1)
    out = np.full((len(x), 2), np.nan)
    rows = x[ok]
    if len(rows):
        both = np.concatenate([with_side(rows, 1.0), with_side(rows, -1.0)])
        p = run_blocks(model, both, device)
        out[ok, 0], out[ok, 1] = p[: len(rows)], p[len(rows) :]
    return out


def save_meta(model: MetaClassifier, out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the weights, then the manifest (last: a half-written directory never loads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / META_WEIGHTS
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.write_bytes(save(tensors, metadata={"model": "meta_label"}))
    full = {
        "format_version": META_FORMAT_VERSION,
        "kind": "meta_label",
        "features": {
            "names": list(FEATURE_NAMES),
            "schema_hash": FEATURE_SCHEMA_HASH,
            "warmup_bars": WARMUP,
        },
        "inputs": list(META_INPUTS),
        "model": {"file": path.name, "sha256": sha256_file(path), "shape": model.shape.to_dict()},
    } | manifest
    tmp = out_dir / f".{META_MANIFEST}.tmp"
    tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / META_MANIFEST)
    return full


@dataclass(frozen=True)
class LoadedMeta:
    """A checked meta-label model on its device, and its manifest."""

    model: MetaClassifier
    manifest: dict[str, Any]
    device: torch.device

    @property
    def threshold(self) -> float:
        """The P(take-profit first) it was trained to confirm at."""
        return float(self.manifest["threshold"])

    def probabilities(self, features: NDArray[np.floating]) -> NDArray[np.float64]:
        """:func:`meta_probabilities` with this model."""
        return meta_probabilities(self.model, features, self.device)


def load_meta(models_dir: Path, device: torch.device) -> LoadedMeta:
    """Check ``models_dir/meta_label.json`` (format, feature schema, sha256) and load the model;
    a named :class:`~tbotd.ml.errors.ModelLoadError` says what is wrong."""
    path = models_dir / META_MANIFEST
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing; train one with `tbotd train --meta-label --config CFG "
            f"--data CANDLES.csv --out {models_dir}`"
        )
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        entry, feats = m["model"], m["features"]
        shape = entry["shape"]
        model = MetaClassifier(
            ModelShape(
                int(shape["n_features"]),
                int(shape["n_outputs"]),
                tuple(shape["hidden"]),
                float(shape["dropout"]),
            )
        )
        float(m["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{path} is not a meta-label manifest ({e})") from e
    if m.get("format_version") != META_FORMAT_VERSION or m.get("kind") != "meta_label":
        raise FormatVersionError(
            f"{path}: format {m.get('format_version')!r}, kind {m.get('kind')!r}"
        )
    if feats.get("schema_hash") != FEATURE_SCHEMA_HASH or m.get("inputs") != list(META_INPUTS):
        raise FeatureSchemaMismatchError(
            f"{models_dir}'s meta-label model was trained on other features; retrain it"
        )
    weights = models_dir / str(entry["file"])
    if not weights.is_file() or sha256_file(weights) != entry["sha256"]:
        raise WeightsIntegrityError(f"{weights} is missing or differs from its sha256; retrain")
    try:
        model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as e:
        raise WeightsIntegrityError(f"{weights} cannot be loaded: {e}") from e
    if not all(torch.isfinite(v).all() for v in model.state_dict().values()):
        raise WeightsIntegrityError(f"{weights} has non-finite values")
    return LoadedMeta(model.to(device).eval(), m, device)
