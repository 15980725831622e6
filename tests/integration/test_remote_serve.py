"""The remote client and `tbotd serve` interoperate in both wire formats, with bearer auth that
never leaks the token, and concurrent daemons share forward passes."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime

import aiohttp
import pytest
from pydantic import SecretStr

from tbotd.config.settings import MLConfig, WireFormat
from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.ops.logs import configure_logging
from tbotd.predictor.errors import RemoteAuthError
from tbotd.predictor.local import LocalPredictor
from tbotd.predictor.remote import RemotePredictor
from tbotd.serving.app import ServeOptions, build_app
from tests.integration.conftest import SYMBOLS, TOKEN, Running, Start


def client(url: str, wire: str, token: str = TOKEN, **extra: object) -> RemotePredictor:
    config = MLConfig(remote_url=url, wire_format=WireFormat(wire), token=SecretStr(token), **extra)
    return RemotePredictor(config)


def deadline(seconds: float = 10.0) -> float:
    return asyncio.get_running_loop().time() + seconds


@pytest.mark.parametrize("wire", ["json", "oip"])
async def test_serve_answers_exactly_what_the_local_models_say(
    serve: Running,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
    wire: str,
) -> None:
    """Same signal, confidence, sd, regime and model version; the source is remote."""
    remote = client(serve.url, wire)
    try:
        result = await remote.predict(histories, candle_time, deadline())
        single = await remote.predict({SYMBOLS[0]: histories[SYMBOLS[0]]}, candle_time, deadline())
    finally:
        await remote.close()
    local = await local_predictor.predict(histories)
    assert result.rejections == {}
    assert set(result.predictions) == set(SYMBOLS)
    for symbol, p in [*result.predictions.items(), *single.predictions.items()]:
        want = local[symbol]
        assert p.source is PredictionSource.REMOTE
        assert p.timestamp == candle_time
        assert (p.signal, p.confidence, p.sd, p.regime) == (
            want.signal,
            want.confidence,
            want.sd,
            want.regime,
        )
        assert p.model_version == local_predictor.model_version


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/predictions"),
        ("POST", "/v1/predictions:batch"),
        ("POST", "/v2/models/tbotd/infer"),
        ("GET", "/v2/models/tbotd"),
        ("GET", "/v2"),
        ("GET", "/metrics"),
    ],
)
async def test_requests_without_or_with_a_wrong_token_get_401(
    serve: Running, method: str, path: str
) -> None:
    """No header, a wrong token, the wrong scheme: 401 before the body is even read."""
    async with aiohttp.ClientSession() as session:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            async with session.request(method, serve.url + path, headers=headers, data=b"{}") as r:
                assert r.status == 401, headers
                assert r.headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with session.request(method, serve.url + path, headers=good, data=b"{}") as r:
            assert r.status != 401


async def test_health_routes_need_no_token(serve: Running) -> None:
    """Orchestrators probe liveness and readiness without the secret."""
    async with aiohttp.ClientSession() as session:
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/tbotd/ready"):
            async with session.get(serve.url + path) as r:
                assert r.status == 200, path
        async with session.get(serve.url + "/v2/models/other/ready") as r:
            assert r.status == 404


async def test_a_refused_token_is_an_auth_error(
    serve: Running, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """The client names a 401 'auth' and does not retry it."""
    remote = client(serve.url, "json", token="PLANTED-wrong-token-71a0")
    try:
        with pytest.raises(RemoteAuthError) as caught:
            await remote.predict(histories, candle_time, deadline())
    finally:
        await remote.close()
    assert caught.value.status == 401
    assert caught.value.reason == "auth"
    assert remote.breaker.is_open


async def test_the_token_never_appears_in_client_or_server_logs(
    serve: Running, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Every request of both formats, retries and refusals log lines; none holds a token."""
    out = io.StringIO()
    configure_logging("debug", "json", out)
    wrong = "PLANTED-wrong-token-9b1e"
    for wire in ("json", "oip"):
        for token in (TOKEN, wrong):
            remote = client(serve.url, wire, token=token)
            try:
                await remote.predict(histories, candle_time, deadline())
            except RemoteAuthError:
                pass
            finally:
                await remote.close()
    text = out.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert sum(1 for line in lines if line["event"] == "request") >= 6
    assert TOKEN not in text
    assert wrong not in text
    assert "***" not in text  # nothing secret was even handed to the logger to redact


async def test_concurrent_daemons_share_one_forward_pass(
    local_predictor: LocalPredictor,
    start_app: Start,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """A JSON daemon and an OIP daemon asking together are answered by one model call."""
    rows = 2 * len(SYMBOLS)
    options = ServeOptions(token=TOKEN, batch_wait_s=60, max_batch_rows=rows)
    running = await start_app(build_app(local_predictor, options))
    daemons = [client(running.url, "json"), client(running.url, "oip")]
    await daemons[1].handshake(deadline())  # metadata only, no model call
    results = await asyncio.gather(
        *(d.predict(histories, candle_time, deadline()) for d in daemons)
    )
    for daemon in daemons:
        await daemon.close()
    assert all(set(r.predictions) == set(SYMBOLS) for r in results)
    assert running.server.batcher.batches == 1


async def test_serve_reports_per_symbol_problems_in_a_batch(
    serve: Running, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """A too-short history is that symbol's error entry; the others are predicted."""
    short = {**histories, SYMBOLS[2]: histories[SYMBOLS[2]][-100:]}
    remote = client(serve.url, "json")
    try:
        result = await remote.predict(short, candle_time, deadline())
    finally:
        await remote.close()
    assert set(result.predictions) == set(SYMBOLS[:2])
    assert result.rejections[SYMBOLS[2]].reason == "remote_error"
    assert "need" in result.rejections[SYMBOLS[2]].detail


async def test_oip_metadata_and_routes(serve: Running) -> None:
    """Metadata states the input shape and schema hash; unknown models/versions are 404."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(serve.url + "/v2/models/tbotd/versions/1") as r:
            meta = await r.json()
        assert meta["inputs"] == [
            {"name": "features", "datatype": "FP32", "shape": [-1, len(FEATURE_NAMES)]}
        ]
        assert meta["parameters"]["feature_schema_hash"] == FEATURE_SCHEMA_HASH
        for path in ("/v2/models/tbotd/versions/2", "/v2/models/nope"):
            async with session.get(serve.url + path) as r:
                assert r.status == 404
        bad = {
            "inputs": [
                {"name": "features", "shape": [1, 25], "datatype": "FP32", "data": [0] * 25}
            ],
            "parameters": {"feature_schema_hash": "0" * 64},
        }
        async with session.post(serve.url + "/v2/models/tbotd/infer", json=bad) as r:
            assert r.status == 400
            assert "schema" in (await r.json())["error"]
