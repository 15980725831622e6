"""NVIDIA's own `tritonclient[http]` can use `tbotd serve`'s OIP v2 routes (health, metadata,
infer — JSON and binary tensors) and gets exactly the local predictor's predictions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH, WARMUP
from tbotd.ml.outputs import ModelOutputs
from tbotd.ml.signals import prediction_from_outputs
from tbotd.predictor.history import SeriesCache, latest_feature_rows
from tbotd.predictor.local import LocalPredictor
from tests.integration.conftest import TOKEN, Running

httpclient = pytest.importorskip("tritonclient.http")
aioclient = pytest.importorskip("tritonclient.http.aio")
triton_utils = pytest.importorskip("tritonclient.utils")


def auth() -> dict[str, str]:
    # a fresh dict per call: tritonclient adds its own headers to the dict it is given
    return {"Authorization": f"Bearer {TOKEN}"}


def features_of(histories: dict[str, list[Candle]]) -> tuple[list[str], np.ndarray]:
    symbols, _, matrix, problems = latest_feature_rows(SeriesCache(WARMUP, "5m"), histories, WARMUP)
    assert not problems
    return symbols, matrix.astype(np.float32)


def outputs_from(result: Any) -> ModelOutputs:
    volatility = result.as_numpy("volatility")
    return ModelOutputs(
        direction=result.as_numpy("direction"),
        ret_mean=volatility[:, 0],
        sd=volatility[:, 1],
        regime=result.as_numpy("regime"),
    )


def sync_session(host: str, features: np.ndarray) -> dict[str, Any]:
    """What a Triton user would do with the blocking (gevent) client."""
    client = httpclient.InferenceServerClient(host)
    try:
        found: dict[str, Any] = {
            "live": client.is_server_live(),
            "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready("tbotd"),
            "server": client.get_server_metadata(headers=auth()),
            "metadata": client.get_model_metadata("tbotd", headers=auth()),
            "config": client.get_model_config("tbotd", headers=auth()),
        }
        binary = httpclient.InferInput("features", list(features.shape), "FP32")
        binary.set_data_from_numpy(features)  # binary tensor extension (the default)
        found["binary"] = client.infer("tbotd", [binary], headers=auth())
        as_json = httpclient.InferInput("features", list(features.shape), "FP32")
        as_json.set_data_from_numpy(features, binary_data=False)
        wanted = [
            httpclient.InferRequestedOutput(name, binary_data=False)
            for name in ("direction", "volatility", "regime")
        ]
        found["json"] = client.infer(
            "tbotd", [as_json], outputs=wanted, model_version="1", headers=auth()
        )
        with pytest.raises(triton_utils.InferenceServerException, match="401"):
            client.get_model_metadata("tbotd")
        return found
    finally:
        client.close()


async def test_tritonclient_health_metadata_and_infer(
    serve: Running,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """Both tensor encodings give the local predictor's Predictions, value for value."""
    symbols, features = features_of(histories)
    host = serve.url.removeprefix("http://")
    found = await asyncio.to_thread(sync_session, host, features)
    assert found["live"]
    assert found["ready"]
    assert found["model_ready"]
    assert found["server"]["extensions"] == ["binary_tensor_data", "model_configuration"]
    meta = found["metadata"]
    assert meta["inputs"][0]["shape"] == [-1, len(FEATURE_NAMES)]
    assert meta["parameters"]["feature_schema_hash"] == FEATURE_SCHEMA_HASH
    assert (
        found["config"]["parameters"]["feature_schema_hash"]["string_value"] == FEATURE_SCHEMA_HASH
    )
    local = await local_predictor.predict(histories)
    for key in ("binary", "json"):
        out = outputs_from(found[key])
        for i, symbol in enumerate(symbols):
            p = prediction_from_outputs(
                symbol, candle_time, out, i, local_predictor.model_version, PredictionSource.REMOTE
            )
            want = local[symbol]
            assert (p.signal, p.confidence, p.sd, p.regime) == (
                want.signal,
                want.confidence,
                want.sd,
                want.regime,
            ), key


async def test_tritonclient_asyncio_client(
    serve: Running, local_predictor: LocalPredictor, histories: dict[str, list[Candle]]
) -> None:
    """tritonclient's aiohttp-based client works as well."""
    _, features = features_of(histories)
    client = aioclient.InferenceServerClient(serve.url.removeprefix("http://"))
    try:
        assert await client.is_server_ready()
        tensor = aioclient.InferInput("features", list(features.shape), "FP32")
        tensor.set_data_from_numpy(features)
        result = await client.infer("tbotd", [tensor], headers=auth())
    finally:
        await client.close()
    want = local_predictor.predict_features(features)
    np.testing.assert_array_equal(result.as_numpy("direction"), want.direction)
    np.testing.assert_array_equal(result.as_numpy("regime"), want.regime)
