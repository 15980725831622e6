"""`tbotd serve --export` writes a Triton model repository whose ONNX graph reproduces the PyTorch
models, whose config.pbtxt Triton's own schema accepts, and which the tbotd client can use through
a Triton-style server (schema hash read from the model configuration)."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from pydantic import SecretStr

from tbotd.cli import main
from tbotd.config.settings import MLConfig, WireFormat
from tbotd.domain.market import Candle
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.predictor import oip
from tbotd.predictor.errors import SchemaMismatchError
from tbotd.predictor.local import LocalPredictor
from tbotd.predictor.remote import RemotePredictor
from tests.conftest import tbotd_env
from tests.integration.conftest import Start

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def repo(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository that already held version 1; the CLI adds version 2."""
    root = tmp_path_factory.mktemp("triton")
    (root / "tbotd" / "1").mkdir(parents=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tbotd",
            "serve",
            "--models",
            str(models_dir),
            "--json",
            "--export",
            str(root),
        ],
        capture_output=True,
        text=True,
        env=tbotd_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["version"] == 2
    assert summary["max_abs_diff"] <= 1e-5
    return root


@functools.cache
def triton_model_config() -> ModuleType:
    """Triton's ModelConfig protobuf, as shipped inside tritonclient."""
    tritonclient = pytest.importorskip("tritonclient")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    if not path.exists():
        pytest.skip("this tritonclient does not ship model_config_pb2")
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parsed_config(repo: Path) -> dict[str, Any]:
    from google.protobuf import json_format, text_format

    schema = triton_model_config()
    text = (repo / "tbotd" / "config.pbtxt").read_text(encoding="utf-8")
    message = text_format.Parse(text, schema.ModelConfig())
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def test_repository_layout_and_config_follow_triton(repo: Path) -> None:
    """<model>/config.pbtxt + <model>/<version>/model.onnx; the config parses as a ModelConfig."""
    version_dir = repo / "tbotd" / "2"
    assert (version_dir / "model.onnx").is_file()
    assert (version_dir / "tbotd-manifest.json").is_file()
    config = parsed_config(repo)
    assert config["platform"] == "onnxruntime_onnx"
    assert config["input"] == [{"name": "features", "data_type": "TYPE_FP32", "dims": ["25"]}]
    assert [o["name"] for o in config["output"]] == ["direction", "volatility", "regime"]
    assert config["parameters"]["feature_schema_hash"]["string_value"] == FEATURE_SCHEMA_HASH
    assert "dynamic_batching" in config
    graph = onnx.load(str(version_dir / "model.onnx"))
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["feature_schema_hash"] == FEATURE_SCHEMA_HASH
    assert json.loads(props["feature_names"]) == list(FEATURE_NAMES)


def test_onnx_matches_the_torch_models(repo: Path, local_predictor: LocalPredictor) -> None:
    """onnxruntime on random realistic features agrees with PyTorch to 5e-5, any batch size.

    Float32 kernels differ in summation order (onnxruntime 1.32's MLAS vs torch): a saturated
    softmax moves by up to ~1.3e-5, so the bound is 5e-5 — far below any decision threshold.
    """
    session = onnxruntime.InferenceSession(
        str(repo / "tbotd" / "2" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(5)
    for n in (1, 7, 300):
        features = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
        direction, volatility, regime = session.run(None, {"features": features})
        want = local_predictor.predict_features(features)
        np.testing.assert_allclose(direction, want.direction, atol=5e-5)
        np.testing.assert_allclose(volatility[:, 1], want.sd, atol=5e-5)
        np.testing.assert_allclose(regime, want.regime, atol=5e-5)


class TritonStandIn:
    """A Triton-shaped OIP server over the exported ONNX: metadata without tbotd's parameters,
    the schema hash only in the model configuration."""

    def __init__(self, repo: Path, with_config: bool = True) -> None:
        self.session = onnxruntime.InferenceSession(
            str(repo / "tbotd" / "2" / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self.config = parsed_config(repo) if with_config else None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/health/ready", self.empty)
        app.router.add_get("/v2/models/tbotd/ready", self.empty)
        app.router.add_get("/v2/models/tbotd", self.metadata)
        app.router.add_get("/v2/models/tbotd/config", self.model_config)
        app.router.add_post("/v2/models/tbotd/infer", self.infer)
        return app

    async def empty(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)  # required_api.md: status only, empty body

    async def metadata(self, _request: web.Request) -> web.Response:
        def tensor(t: Any) -> dict[str, Any]:
            shape = [d if isinstance(d, int) else -1 for d in t.shape]
            return {"name": t.name, "datatype": "FP32", "shape": shape}

        return web.json_response(
            {
                "name": "tbotd",
                "versions": ["2"],
                "platform": "onnxruntime_onnx",
                "inputs": [tensor(t) for t in self.session.get_inputs()],
                "outputs": [tensor(t) for t in self.session.get_outputs()],
            }
        )

    async def model_config(self, _request: web.Request) -> web.Response:
        if self.config is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(self.config)

    async def infer(self, request: web.Request) -> web.Response:
        decoded = oip.decode_infer_request(await request.read(), None)
        results = self.session.run(None, {"features": decoded.features})
        outputs = [
            {"name": name, "datatype": "FP32", "shape": list(r.shape), "data": r.ravel().tolist()}
            for (name, _), r in zip(oip.OUTPUTS, results, strict=True)
        ]
        body = {"model_name": "tbotd", "model_version": "2", "id": decoded.request_id}
        return web.json_response({**body, "outputs": outputs})


def oip_client(url: str, require_hash: bool = True) -> RemotePredictor:
    config = MLConfig(
        remote_url=url,
        wire_format=WireFormat.OIP,
        token=SecretStr("PLANTED-triton-token"),
        remote_require_schema_hash=require_hash,
    )
    return RemotePredictor(config)


async def test_the_client_uses_a_triton_deployment_of_the_export(
    repo: Path,
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """Through the ONNX export on a Triton-shaped server: the local predictions (to 1e-5)."""
    running = await start_app(TritonStandIn(repo).app())
    client = oip_client(running.url)
    try:
        result = await client.predict(
            histories, candle_time, asyncio.get_running_loop().time() + 10
        )
    finally:
        await client.close()
    local = await local_predictor.predict(histories)
    assert result.rejections == {}
    for symbol, p in result.predictions.items():
        assert p.signal == local[symbol].signal
        assert p.confidence == pytest.approx(local[symbol].confidence, abs=1e-5)
        assert p.model_version == "tbotd/2"


async def test_a_model_that_does_not_state_its_feature_schema_is_refused(
    repo: Path, start_app: Start, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """No hash in metadata or configuration: refused unless the operator opts out."""
    running = await start_app(TritonStandIn(repo, with_config=False).app())
    strict = oip_client(running.url)
    lenient = oip_client(running.url, require_hash=False)
    deadline = asyncio.get_running_loop().time() + 10
    try:
        with pytest.raises(SchemaMismatchError, match="does not declare"):
            await strict.predict(histories, candle_time, deadline)
        assert strict.breaker.is_open
        result = await lenient.predict(histories, candle_time, deadline)
    finally:
        await strict.close()
        await lenient.close()
    assert len(result.predictions) == len(histories)


def test_export_without_onnx_says_what_to_install(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Missing onnx/onnxscript: exit 1 naming the `export` extra, nothing written."""
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    code = main(["serve", "--models", str(models_dir), "--export", str(tmp_path / "r")])
    assert code == 1
    assert "pip install 'tbotd[export]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
