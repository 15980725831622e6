"""A model directory is refused, with a named error that says why, whenever it cannot be trusted;
weights are safetensors and loading never unpickles anything."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tbotd.features import FEATURE_SCHEMA_HASH
from tbotd.ml.manifest import sha256_file
from tbotd.predictor.local import (
    FeatureSchemaMismatchError,
    FormatVersionError,
    LocalPredictor,
    ManifestError,
    ModelLoadError,
    ModelNotFoundError,
    WeightsIntegrityError,
)


@pytest.fixture
def copy(models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target


def _edit_manifest(directory: Path, change: Any) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_good_directory_loads(copy: Path) -> None:
    """The directory `tbotd train` writes loads, with the manifest's history requirement."""
    with LocalPredictor.load(copy, device="cpu") as predictor:
        assert predictor.required_history == predictor.manifest.required_history
        assert set(predictor.manifest.models) == {"direction", "volatility", "regime"}


def test_missing_manifest_is_refused(copy: Path) -> None:
    """An interrupted training run (no manifest) is refused, not half-loaded."""
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"manifest\.json is missing"):
        LocalPredictor.load(copy, device="cpu")


def test_corrupt_manifest_is_refused(copy: Path) -> None:
    """Manifest text that is not JSON is a ManifestError."""
    (copy / "manifest.json").write_text('{"format_version": 1, "models": ')
    with pytest.raises(ManifestError, match="not readable JSON"):
        LocalPredictor.load(copy, device="cpu")


def test_manifest_lacking_fields_is_refused(copy: Path) -> None:
    """A manifest without its feature section names the missing field."""
    _edit_manifest(copy, lambda m: m.pop("features"))
    with pytest.raises(ManifestError, match="features"):
        LocalPredictor.load(copy, device="cpu")


def test_other_format_version_is_refused(copy: Path) -> None:
    """A manifest of another format version is refused, saying which versions are involved."""
    _edit_manifest(copy, lambda m: m.update(format_version=2))
    with pytest.raises(FormatVersionError, match="version 2"):
        LocalPredictor.load(copy, device="cpu")


def test_other_feature_schema_is_refused(copy: Path) -> None:
    """Weights trained on another feature schema are refused: their inputs would mean otherwise."""
    _edit_manifest(copy, lambda m: m["features"].update(schema_hash="0" * 64))
    with pytest.raises(FeatureSchemaMismatchError, match="Retrain"):
        LocalPredictor.load(copy, device="cpu")


def test_reordered_features_are_refused(copy: Path) -> None:
    """Same hash text but a different feature order is still a schema mismatch."""

    def swap(m: dict[str, Any]) -> None:
        names = m["features"]["names"]
        names[0], names[1] = names[1], names[0]

    _edit_manifest(copy, swap)
    with pytest.raises(FeatureSchemaMismatchError):
        LocalPredictor.load(copy, device="cpu")
    assert json.loads((copy / "manifest.json").read_text())["features"]["schema_hash"] == (
        FEATURE_SCHEMA_HASH
    )


def test_flipped_weight_bytes_are_refused(copy: Path) -> None:
    """One changed byte in a weights file fails its sha256 check."""
    path = copy / "direction.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        LocalPredictor.load(copy, device="cpu")


def test_missing_weights_are_refused(copy: Path) -> None:
    """A manifest pointing to an absent weights file is a ModelNotFoundError."""
    (copy / "regime.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="regime"):
        LocalPredictor.load(copy, device="cpu")


def test_truncated_weights_with_matching_hash_are_refused(copy: Path) -> None:
    """Even with a re-hashed manifest, a file that is not valid safetensors does not load."""
    path = copy / "volatility.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    _edit_manifest(copy, lambda m: m["models"]["volatility"].update(sha256=sha256_file(path)))
    with pytest.raises(WeightsIntegrityError, match="cannot be loaded"):
        LocalPredictor.load(copy, device="cpu")


class _Exploit:
    """Unpickling this would create a marker file: proof that a pickle was executed."""

    marker: Path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_disguised_as_weights_is_never_unpickled(copy: Path, tmp_path: Path) -> None:
    """A torch/pickle checkpoint in place of safetensors is refused without executing it."""
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    path = copy / "direction.safetensors"
    path.write_bytes(pickle.dumps({"weights": exploit}))
    _edit_manifest(copy, lambda m: m["models"]["direction"].update(sha256=sha256_file(path)))
    with pytest.raises(WeightsIntegrityError):
        LocalPredictor.load(copy, device="cpu")
    assert not marker.exists()


def test_loading_never_calls_torch_load(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader reads safetensors only; torch.load (pickle) is never used."""

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    LocalPredictor.load(copy, device="cpu").close()
    assert all(
        e["file"].endswith(".safetensors")
        for e in json.loads((copy / "manifest.json").read_text())["models"].values()
    )


def test_every_refusal_is_a_model_load_error() -> None:
    """The daemon can catch one error type for 'local models unusable' and degrade to neutral."""
    for cls in (
        ModelNotFoundError,
        ManifestError,
        FormatVersionError,
        FeatureSchemaMismatchError,
        WeightsIntegrityError,
    ):
        assert issubclass(cls, ModelLoadError)
