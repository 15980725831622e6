"""Whatever the remote service does wrong, every symbol gets a prediction for this candle within
the deadline, from the right fallback source, with the failure counted (and alerted for 401)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.ops.logs import configure_logging
from tbotd.predictor import oip
from tbotd.predictor.local import LocalPredictor
from tests.integration.conftest import SYMBOLS, TOKEN, Start
from tests.integration.fallback_support import (
    DEADLINE_S,
    Events,
    FaultServer,
    Respond,
    build_chain,
    closed_port_url,
    count,
    finish,
    timed,
)


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
    assert (reason == "auth") == bool(events.alerts)
    [change] = events.sources  # one state: the fallback source, not the expected one
    assert (change["source"], change["expected"]) == (source.value, False)
    assert change["reason"].startswith(f"remote: {reason}")


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
    [(_at, kind, message, data)] = events.alerts
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
    assert [kind for _, kind, _, _ in events.alerts] == ["ml_schema_mismatch"]
    logged = [json.loads(line) for line in out.getvalue().splitlines()]
    mismatch = [e for e in logged if "schema mismatch" in e["event"]]
    assert len(mismatch) == 1
