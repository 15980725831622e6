"""``manifest.json``: what a model directory contains and how to trust it (no torch needed).

A model directory holds ``manifest.json``, one safetensors file per model, ``report.json`` and
``report.png``. The manifest records the feature names and order, the feature schema hash,
warm-up, each model's architecture, normalisation and calibration, the label definition, the
training window, library versions, headline metrics and the sha256 of every weights file.

:func:`read_manifest` refuses (with a named :class:`~tbotd.ml.errors.ModelLoadError`) a missing
directory or manifest, unparsable JSON, a different :data:`MODEL_FORMAT_VERSION`, a feature schema
other than the running code's, and weights files whose sha256 differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH, WARMUP
from tbotd.ml.errors import (
    FeatureSchemaMismatchError,
    FormatVersionError,
    ManifestError,
    ModelNotFoundError,
    WeightsIntegrityError,
)

MODEL_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MODEL_NAMES = ("direction", "volatility", "regime")

_Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ShapeEntry(_Strict):
    """Architecture hyper-parameters (see :class:`tbotd.ml.models.ModelShape`)."""

    n_features: Annotated[int, Field(ge=1)]
    n_outputs: Annotated[int, Field(ge=1)]
    hidden: list[Annotated[int, Field(ge=1)]]
    dropout: Annotated[float, Field(ge=0, lt=1)]


class ModelEntry(_Strict):
    """One model's weights file and what it outputs."""

    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.safetensors$")]
    sha256: _Hex64
    shape: ShapeEntry
    outputs: list[str]


class FeaturesEntry(_Strict):
    """The feature schema the models were trained on."""

    names: list[str]
    schema_hash: _Hex64
    definitions_version: int
    warmup_bars: Annotated[int, Field(ge=1)]


class Manifest(_Strict):
    """The validated manifest; unknown extra fields are kept (newer optional information)."""

    format_version: Literal[1]
    model_version: Annotated[str, Field(min_length=1, max_length=128)]
    created_at: str
    timeframe: str
    required_history: Annotated[int, Field(ge=1)]
    features: FeaturesEntry
    models: dict[Literal["direction", "volatility", "regime"], ModelEntry]
    label: dict[str, Any]
    training: dict[str, Any]
    libraries: dict[str, str]
    metrics: dict[str, Any]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse(models_dir: Path) -> dict[str, Any]:
    if not models_dir.is_dir():
        raise ModelNotFoundError(
            f"model directory {models_dir} does not exist; train one with "
            f"`tbotd train --data CANDLES.csv --out {models_dir}`"
        )
    path = models_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing: {models_dir} is not a finished model directory (training may "
            "have been interrupted); run `tbotd train` again"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path} is not readable JSON ({e}); run `tbotd train` again") from e
    if not isinstance(raw, dict):
        raise ManifestError(f"{path} is not a JSON object")
    return raw


def read_manifest(models_dir: Path, check_weights: bool = True) -> Manifest:
    """Read and check ``models_dir/manifest.json`` against this code and the weights on disk."""
    raw = _parse(models_dir)
    path = models_dir / MANIFEST_NAME
    version = raw.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} has model format version {version!r}; this tbotd reads version "
            f"{MODEL_FORMAT_VERSION}. Retrain with this tbotd (`tbotd train`)"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ManifestError(f"{path} is invalid: {problems}") from e
    missing = [m for m in MODEL_NAMES if m not in manifest.models]
    if missing:
        raise ManifestError(f"{path} lists no {', '.join(missing)} model")
    feats = manifest.features
    if feats.schema_hash != FEATURE_SCHEMA_HASH or tuple(feats.names) != FEATURE_NAMES:
        raise FeatureSchemaMismatchError(
            f"{models_dir} was trained on feature schema {feats.schema_hash[:12]}… "
            f"(definitions v{feats.definitions_version}, {len(feats.names)} features) but this "
            f"tbotd computes {FEATURE_SCHEMA_HASH[:12]}… ({len(FEATURE_NAMES)} features); its "
            "inputs would mean something else. Retrain with `tbotd train`"
        )
    for name, entry in manifest.models.items():
        if entry.shape.n_features != len(FEATURE_NAMES):
            raise ManifestError(f"{path}: {name} takes {entry.shape.n_features} features")
        if check_weights:
            verify_weights(models_dir, name, entry)
    return manifest


def verify_weights(models_dir: Path, name: str, entry: ModelEntry) -> Path:
    """The weights file's path, after checking it exists and matches its sha256."""
    path = models_dir / entry.file
    if not path.is_file():
        raise ModelNotFoundError(f"{path} ({name} weights) is missing; run `tbotd train` again")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise WeightsIntegrityError(
            f"{path} ({name} weights) has sha256 {actual[:12]}…, the manifest says "
            f"{entry.sha256[:12]}…: the file is corrupt or was replaced; run `tbotd train` again"
        )
    return path


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file and rename it over ``path`` (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def history_shortfall(history_bars: int, manifest: Manifest) -> str | None:
    """Why ``daemon.history_bars`` cannot feed these models (None when it can): the one rule
    `check-config` and the daemon's local fallback both apply."""
    needed = max(manifest.required_history, WARMUP)
    if history_bars >= needed:
        return None
    return (
        f"daemon.history_bars ({history_bars}) is below the {needed} closed candles these "
        "models need: they could never predict; raise daemon.history_bars"
    )
