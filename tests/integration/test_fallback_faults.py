"""Whatever the remote service does wrong, every symbol gets a prediction for this candle within
the deadline, from the right fallback source, with the failure counted (and alerted for 401)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from tbotd.config import load_settings
from tbotd.config.settings import MLConfig, WireFormat
from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.ops.logs import configure_logging
from tbotd.ops.metrics import PredictorMetrics
from tbotd.predictor import oip
from tbotd.predictor.fallback import FallbackPredictor, LocalModel, PredictionOutcome, SourceFailure
from tbotd.predictor.local import LocalPredictor
from tbotd.predictor.remote import RemotePredictor
from tests.conftest import CONFIGS
from tests.integration.conftest import SYMBOLS, TOKEN, Start

DEADLINE_S = 0.5
RESERVE_S = 0.25
Respond = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class Events:
    """A stand-in for the Store's record_event."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, str, str, dict[str, Any]]] = []

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        assert symbol is None
        self.rows.append((at, kind, message, data))


class FaultServer:
    """A JSON-API server whose answer the test chooses; counts the requests it got."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.hits = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.json()
        return await self.respond(request, body)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def answers(body: dict[str, Any], **change: Any) -> dict[str, Any] | list[dict[str, Any]]:
    requests = body.get("requests", [body])
    made = [
        {
            "symbol": r["symbol"],
            "timestamp": r["timestamp"],
            "signal": "short",
            "confidence": 0.8,
            "sd": 0.004,
            "model_version": "remote-7",
            "source": "remote",
            **change,
        }
        for r in requests
    ]
    return {"predictions": made} if "requests" in body else made[0]


async def ok(_request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response(answers(body))


async def slow(_request: web.Request, _body: dict[str, Any]) -> web.StreamResponse:
    await asyncio.Event().wait()  # never set: the client's deadline is what is tested
    raise AssertionError("unreachable")


async def error_500(_request: web.Request, _body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response({"error": "boom"}, status=500)


async def limited_429(_request: web.Request, _body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "30"})


async def garbage(_request: web.Request, _body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=b'{"predictions": [{"symbol": "BTC', content_type="application/json")


async def schema_violation(_request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response(answers(body, confidence=1.7, signal="moon"))


async def other_candle(_request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    stale = datetime.fromisoformat(body["requests"][0]["timestamp"]) - timedelta(minutes=5)
    return web.json_response(answers(body, timestamp=stale.isoformat()))


async def refused_401(_request: web.Request, _body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response({"error": "bad token"}, status=401)


FAULTS: list[tuple[str, Respond | None, str, int]] = [
    ("connection refused", None, "connect", 0),
    ("slower than the deadline", slow, "timeout", 1),
    ("500", error_500, "http_5xx", 3),
    ("429 with Retry-After beyond the deadline", limited_429, "http_429", 1),
    ("garbage JSON", garbage, "invalid_response", 1),
    ("schema-violating body", schema_violation, "invalid_prediction", 1),
    ("prediction for another candle", other_candle, "wrong_candle", 1),
    ("401", refused_401, "auth", 1),
]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def ml_config(url: str, wire: str = "json") -> MLConfig:
    return MLConfig(
        remote_url=url,
        wire_format=WireFormat(wire),
        token=SecretStr(TOKEN),
        deadline_s=DEADLINE_S,
        local_reserve_s=RESERVE_S,
        remote_backoff_s=0.01,
        remote_backoff_cap_s=0.02,
    )


def build_chain(
    url: str,
    local: Sequence[LocalModel],
    registry: CollectorRegistry,
    events: Events | None = None,
    wire: str = "json",
) -> FallbackPredictor:
    metrics = PredictorMetrics.create(registry)
    remote = RemotePredictor(ml_config(url, wire), metrics=metrics)
    missing = None if local else SourceFailure("local", "models_missing", "no manifest.json")
    return FallbackPredictor(
        remote=remote,
        local=local,
        local_unavailable=missing,
        deadline_s=DEADLINE_S,
        local_reserve_s=RESERVE_S,
        events=events,
        metrics=metrics,
    )


async def timed(
    chain: FallbackPredictor, histories: dict[str, list[Candle]], candle_time: datetime
) -> tuple[dict[str, PredictionOutcome], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes = await chain.predict(histories, candle_time)
    return outcomes, loop.time() - started


async def finish(chain: FallbackPredictor) -> None:
    """Close the chain's remote client (the shared local predictor stays open)."""
    if chain.remote is not None:
        await chain.remote.close()


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("with_local", [True, False], ids=["local", "no-local"])
@pytest.mark.parametrize(("fault", "respond", "reason", "hits"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_every_fault_ends_in_a_valid_prediction_within_the_deadline(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
    fault: str,
    respond: Respond | None,
    reason: str,
    hits: int,
    with_local: bool,
) -> None:
    """Local models answer (or, without them, neutral) in time; the failure is counted."""
    server = FaultServer(respond) if respond else None
    url = (await start_app(server.app())).url if server else closed_port_url()
    registry = CollectorRegistry()
    events = Events()
    chain = build_chain(url, [local_predictor] if with_local else [], registry, events)
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    source = PredictionSource.LOCAL_CPU if with_local else PredictionSource.NEUTRAL
    assert elapsed < DEADLINE_S, fault
    assert set(outcomes) == set(SYMBOLS)
    for symbol, outcome in outcomes.items():
        outcome.prediction.check_for(symbol, candle_time)
        assert outcome.source is source
        assert outcome.failures[0].source == "remote"
        assert outcome.failures[0].reason == reason, outcome.failures[0]
        assert 0 < outcome.latency_ms < DEADLINE_S * 1000
        if not with_local:
            assert outcome.reasons == (f"remote: {reason}", "local: models_missing")
            assert outcome.prediction.confidence == 0
    assert server is None or server.hits == hits
    n = len(SYMBOLS)
    labels = {"source": "remote", "reason": reason}
    assert count(registry, "tbotd_prediction_failures_total", **labels) == n
    assert count(registry, "tbotd_predictions_total", source=source.value) == n
    assert (reason == "auth") == bool(events.rows)


async def test_401_raises_an_operator_alert(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """An event row and an error log line name the refused token (never the token itself)."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    url = (await start_app(FaultServer(refused_401).app())).url
    events = Events()
    chain = build_chain(url, [local_predictor], CollectorRegistry(), events)
    try:
        await chain.predict(histories, candle_time)
    finally:
        await finish(chain)
    [(_at, kind, message, data)] = events.rows
    assert kind == "ml_auth_failed"
    assert "BASIS_ML_API_TOKEN" in message
    assert data["status"] == 401
    errors = [json.loads(line) for line in out.getvalue().splitlines()]
    assert any(e["level"] == "error" and e["event"] == "remote ML token refused" for e in errors)
    assert TOKEN not in out.getvalue()


async def test_a_healthy_remote_is_used_and_429_is_retried_after_retry_after(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """A 429 with Retry-After: 0 is retried; the answer then comes from the remote."""
    calls = 0

    async def limited_once(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({}, status=429, headers={"Retry-After": "0"})
        return await ok(request, body)

    server = FaultServer(limited_once)
    url = (await start_app(server.app())).url
    registry = CollectorRegistry()
    chain = build_chain(url, [local_predictor], registry)
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    assert server.hits == 2
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.REMOTE
        assert outcome.failures == ()
        assert outcome.prediction.model_version == "remote-7"
    assert count(registry, "tbotd_remote_requests_total", outcome="http_429") == 1
    assert count(registry, "tbotd_remote_requests_total", outcome="ok") == 1


async def test_the_breaker_stops_calling_a_failing_remote(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """After 3 failed cycles the 4th does not call the remote at all ('breaker_open')."""
    server = FaultServer(garbage)
    url = (await start_app(server.app())).url
    registry = CollectorRegistry()
    chain = build_chain(url, [local_predictor], registry)
    try:
        for _ in range(4):
            outcomes, _ = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert server.hits == 3
    assert {o.reasons for o in outcomes.values()} == {("remote: breaker_open",)}
    assert count(registry, "tbotd_remote_breaker_open") == 1


class BrokenGpu:
    """A local model on a 'GPU' that fails with a CUDA-style error."""

    source = PredictionSource.LOCAL_GPU

    async def predict_partial(
        self, _histories: dict[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, str]]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def close(self) -> None:
        pass


class HangingModel:
    """A local model that never answers."""

    source = PredictionSource.LOCAL_CPU

    async def predict_partial(
        self, _histories: dict[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, str]]:
        await asyncio.Event().wait()  # never set
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


async def test_a_failing_gpu_falls_back_to_the_cpu_copy(
    local_predictor: LocalPredictor, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """remote down → local-gpu error → local-cpu answers; both failures are recorded."""
    registry = CollectorRegistry()
    chain = build_chain(closed_port_url(), [BrokenGpu(), local_predictor], registry)
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.LOCAL_CPU
        assert outcome.reasons == ("remote: connect", "local-gpu: error")
    assert count(registry, "tbotd_prediction_failures_total", source="local-gpu", reason="error")


async def test_a_hanging_local_model_still_ends_neutral_in_time(
    histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Even a local model that never returns cannot hold the decision past the deadline."""
    chain = build_chain(closed_port_url(), [HangingModel()], CollectorRegistry())
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.NEUTRAL
        assert outcome.reasons == ("remote: connect", "local-cpu: timeout")


async def test_from_settings_with_missing_models_goes_neutral(
    tmp_path: Path, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """The daemon's constructor: no models on disk and the remote down → neutral, explained."""
    settings = load_settings(
        CONFIGS / "ml_usdt_directional.toml",
        {
            "TBOTD_ML__MODELS_DIR": str(tmp_path / "missing"),
            "TBOTD_ML__REMOTE_URL": closed_port_url(),
            "TBOTD_ML__DEADLINE_S": str(DEADLINE_S),
            "TBOTD_ML__LOCAL_RESERVE_S": str(RESERVE_S),
            "BASIS_ML_API_TOKEN": TOKEN,
        },
    )
    registry = CollectorRegistry()
    chain = FallbackPredictor.from_settings(
        settings, events=Events(), metrics=PredictorMetrics.create(registry)
    )
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    for symbol, outcome in outcomes.items():
        assert outcome.prediction == Prediction.neutral(
            symbol, candle_time, "remote: connect; local: models_missing"
        )
    assert count(registry, "tbotd_predictions_total", source="neutral") == len(SYMBOLS)
    labels = {"source": "local", "reason": "models_missing"}
    assert count(registry, "tbotd_prediction_failures_total", **labels) == len(SYMBOLS)


async def test_a_history_that_stops_early_is_never_passed_off_as_this_candle(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """Missing the newest candle: not sent to the remote, refused from local → neutral."""
    server = FaultServer(ok)
    url = (await start_app(server.app())).url
    stale = {s: h[:-1] for s, h in histories.items()}
    chain = build_chain(url, [local_predictor], CollectorRegistry())
    try:
        outcomes, _ = await timed(chain, stale, candle_time)
        status = chain.status()
    finally:
        await finish(chain)
    assert server.hits == 0
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.NEUTRAL
        assert outcome.reasons == ("remote: stale_history", "local-cpu: wrong_candle")
    assert status["remote"]["breaker"] == "closed"  # nothing was asked of the remote
    assert status["local"] == ["local-cpu"]


async def test_an_oip_model_of_another_feature_schema_is_refused_once(
    start_app: Start,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """Schema mismatch: breaker open, one event, one error line; later cycles skip the remote."""
    hits: list[str] = []

    async def ready(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response()

    async def metadata(request: web.Request) -> web.Response:
        hits.append(request.path)
        meta = oip.model_metadata("tbotd", ["1"], "other-model")
        meta["parameters"]["feature_schema_hash"] = "f" * 64
        return web.json_response(meta)

    app = web.Application()
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/tbotd/ready", ready)
    app.router.add_get("/v2/models/tbotd", metadata)
    url = (await start_app(app)).url
    out = io.StringIO()
    configure_logging("info", "json", out)
    events = Events()
    chain = build_chain(url, [local_predictor], CollectorRegistry(), events, wire="oip")
    try:
        first, _ = await timed(chain, histories, candle_time)
        second, _ = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert {o.reasons for o in first.values()} == {("remote: schema_mismatch",)}
    assert {o.reasons for o in second.values()} == {("remote: breaker_open",)}
    assert all(o.source is PredictionSource.LOCAL_CPU for o in second.values())
    assert len(hits) == 3  # the handshake of the first cycle only; no infer was ever sent
    assert [kind for _, kind, _, _ in events.rows] == ["ml_schema_mismatch"]
    logged = [json.loads(line) for line in out.getvalue().splitlines()]
    mismatch = [e for e in logged if "schema mismatch" in e["event"]]
    assert len(mismatch) == 1
