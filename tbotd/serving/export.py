"""Export the local models as an ONNX model repository that NVIDIA Triton and KServe can load.

Layout (Triton's model repository; KServe's Triton runtime reads the same directory)::

    REPO/tbotd/config.pbtxt              platform onnxruntime_onnx, dynamic batching, the schema
    REPO/tbotd/<version>/model.onnx      all three models in one graph: features → 3 outputs
    REPO/tbotd/<version>/tbotd-manifest.json   the manifest the weights came from

The ONNX graph has the input and outputs of :mod:`tbotd.predictor.oip` (``features`` FP32
[-1, 25] → ``direction`` [-1, 3], ``volatility`` [-1, 2], ``regime`` [-1, 3]); normalisation and
calibration are folded in, so it needs no side files. ``config.pbtxt`` declares the feature schema
hash and the model version as parameters, which the tbotd client reads through
``GET /v2/models/tbotd/config`` to refuse a model trained on other features. Versions are
increasing integers: exporting into an existing repository adds the next version.

Needs the optional ``export`` extra (``onnx``, ``onnxscript``; ``onnxruntime`` to check the exported
graph against PyTorch, which is done whenever it is installed).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tbotd.domain.errors import FatalError
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.ml.artifacts import load_models
from tbotd.ml.manifest import MANIFEST_NAME
from tbotd.ml.models import ModelSet, run_models
from tbotd.predictor import oip

OPSET = 18
TOLERANCE = 1e-4


class ExportDependencyError(FatalError):
    """onnx / onnxscript are not installed."""


class ExportVerificationError(FatalError):
    """onnxruntime's outputs differ from PyTorch's: the exported graph is not used."""


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how closely onnxruntime reproduced PyTorch (None: not checked)."""

    model_dir: Path
    version: int
    onnx_path: Path
    max_abs_diff: float | None


class _AllModels(nn.Module):
    """The three models as one graph with the OIP tensor names."""

    def __init__(self, models: ModelSet) -> None:
        super().__init__()
        self.direction = models.direction
        self.volatility = models.volatility
        self.regime = models.regime

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """features [N, F] → (direction [N, 3], volatility [N, 2], regime [N, 3])."""
        return self.direction(features), self.volatility(features), self.regime(features)


def _require_exporter() -> None:
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportDependencyError(
            f"exporting to ONNX needs {' and '.join(missing)}, which are not installed: "
            "pip install 'tbotd[export]' (onnx, onnxscript, onnxruntime)"
        )


def export_repository(
    models_dir: Path, repo: Path, model_name: str = "tbotd", max_batch_size: int = 1024
) -> ExportResult:
    """Write the next version of ``model_name`` into the Triton repository ``repo``."""
    _require_exporter()
    import onnx

    loaded = load_models(models_dir, torch.device("cpu"))
    model_dir = repo / model_name
    version = _next_version(model_dir)
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True)
    onnx_path = version_dir / "model.onnx"
    try:
        _export_graph(_AllModels(loaded.models).eval(), onnx_path, max_batch_size)
        graph = onnx.load(str(onnx_path))
        for key, value in {
            oip.SCHEMA_PARAM: FEATURE_SCHEMA_HASH,
            oip.VERSION_PARAM: loaded.manifest.model_version,
            "feature_names": json.dumps(list(FEATURE_NAMES)),
        }.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(onnx_path))
        diff = verify_onnx(onnx_path, loaded.models)
        shutil.copyfile(models_dir / MANIFEST_NAME, version_dir / "tbotd-manifest.json")
    except BaseException:
        shutil.rmtree(version_dir, ignore_errors=True)
        raise
    config = config_pbtxt(model_name, max_batch_size, loaded.manifest.model_version)
    (model_dir / "config.pbtxt").write_text(config, encoding="utf-8")
    return ExportResult(model_dir, version, onnx_path, diff)


def _next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _export_graph(module: nn.Module, path: Path, max_batch_size: int) -> None:
    example = torch.zeros((4, len(FEATURE_NAMES)), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=max_batch_size)
    chatter = io.StringIO()
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    torch_onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" notes: irrelevant
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[oip.INPUT],
                output_names=[name for name, _ in oip.OUTPUTS],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        torch_onnx_log.setLevel(level)


def verify_onnx(path: Path, models: ModelSet, rows: int = 256) -> float | None:
    """Max |onnxruntime − PyTorch| over realistic random features; None without onnxruntime.

    Raises :class:`ExportVerificationError` above :data:`TOLERANCE`.
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    mean = models.direction.feature_mean.cpu().numpy()
    std = models.direction.feature_std.cpu().numpy()
    features = (mean + std * rng.standard_normal((rows, len(mean)))).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {oip.INPUT: features})
    want = run_models(models, features, torch.device("cpu"))
    expected = (want.direction, np.stack([want.ret_mean, want.sd], axis=1), want.regime)
    diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected, strict=True))
    if not diff <= TOLERANCE:
        raise ExportVerificationError(
            f"onnxruntime differs from PyTorch by {diff:.2e} (> {TOLERANCE:.0e}); not exported"
        )
    return diff


def config_pbtxt(model_name: str, max_batch_size: int, model_version: str) -> str:
    """Triton's ``config.pbtxt`` for the exported graph (text protobuf)."""
    tensors = ",\n".join(
        f'  {{ name: "{name}" data_type: TYPE_FP32 dims: [ {width} ] }}'
        for name, width in oip.OUTPUTS
    )
    params = "\n".join(
        f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
        for key, value in (
            (oip.SCHEMA_PARAM, FEATURE_SCHEMA_HASH),
            (oip.VERSION_PARAM, model_version),
        )
    )
    return (
        f'name: "{model_name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n"
        f'  {{ name: "{oip.INPUT}" data_type: TYPE_FP32 dims: [ {len(FEATURE_NAMES)} ] }}\n'
        "]\n"
        f"output [\n{tensors}\n]\n"
        "dynamic_batching { max_queue_delay_microseconds: 2000 }\n"
        "version_policy: { latest: { num_versions: 1 } }\n"
        f"{params}\n"
    )
