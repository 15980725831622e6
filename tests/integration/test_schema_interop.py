"""Prediction schema 2 (every model's answer) interoperates with schema-1 clients and servers in
both directions, over the JSON API and OIP; bad per-model answers make only that model abstain."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from tbotd.domain.answers import ModelName, RefusalReason
from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.ops.clock import ManualClock
from tbotd.predictor.fallback import FallbackPredictor
from tbotd.predictor.jsonapi import (
    PREDICT_PATH,
    SCHEMA_HEADER,
    candle_rows,
    encode_request_texts,
)
from tbotd.predictor.local import LocalPredictor
from tbotd.predictor.remote import RemotePredictor
from tests.integration.conftest import SYMBOLS, TOKEN, Running, Start
from tests.integration.fallback_support import Events
from tests.integration.test_remote_serve import client, deadline


class SchemaOnePrediction(BaseModel):
    """The schema-1 shape exactly as a schema-1 client parsed it (extra fields refused)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    symbol: str
    timestamp: str
    signal: str
    confidence: float
    take_profit: str | None = None
    stop_loss: str | None = None
    sd: float | None = None
    regime: dict[str, float] | None = None
    model_version: str
    source: str


def _schema_one_request(histories: dict[str, list[Candle]], when: datetime) -> bytes:
    rows = candle_rows(histories[SYMBOLS[0]])
    _, body = encode_request_texts([(SYMBOLS[0], when, json.dumps(rows))])
    return body


async def test_a_schema_one_client_gets_the_schema_one_shape_from_serve(
    serve: Running, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """A client that does not send the schema header gets schema 1, with no per-model fields."""
    body = _schema_one_request(histories, candle_time)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(serve.url + PREDICT_PATH, data=body, headers=headers) as resp:
            assert resp.status == 200
            answer = await resp.json()
        headers[SCHEMA_HEADER] = "2"
        async with session.post(serve.url + PREDICT_PATH, data=body, headers=headers) as resp:
            newer = await resp.json()
    assert SchemaOnePrediction.model_validate(answer).schema_version == 1
    assert newer["schema_version"] == 2
    assert {m["name"] for m in newer["models"]} == set(ModelName)


async def test_the_schema_two_client_reads_each_models_answer_from_serve(
    serve: Running,
    local_predictor: LocalPredictor,
    histories: dict[str, list[Candle]],
    candle_time: datetime,
) -> None:
    """Over JSON and OIP, the client gets the three models' own answers, as the local models say,
    each with the end of their training data (so the client can check their shelf life)."""
    local = await local_predictor.predict(histories)
    for wire in ("json", "oip"):
        remote = client(serve.url, wire)
        try:
            result = await remote.predict(histories, candle_time, deadline())
        finally:
            await remote.close()
        trained = local_predictor.trained_until
        assert trained is not None
        for symbol, p in result.predictions.items():
            assert [a.name for a in p.models] == list(ModelName)
            dated = tuple(
                a.model_copy(update={"trained_until": trained}) for a in local[symbol].models
            )
            assert p.models == dated  # the server also says when its models' data ended


def _schema_one_server(entry: dict[str, Any]) -> web.Application:
    """A server as schema 1 wrote it: refuses unknown body fields, ignores unknown headers."""

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        if set(body) - {"symbol", "timestamp", "candles"}:
            return web.json_response({"error": "unknown field(s)"}, status=400)
        return web.json_response(
            {**entry, "symbol": body["symbol"], "timestamp": body["timestamp"]}
        )

    app = web.Application()
    app.router.add_post(PREDICT_PATH, predict)
    return app


ANSWER: dict[str, Any] = {
    "schema_version": 1,
    "symbol": "",
    "timestamp": "",
    "signal": "long",
    "confidence": 0.71,
    "sd": 0.004,
    "regime": {"trend_up": 0.5, "sideways": 0.3, "trend_down": 0.2},
    "model_version": "old-server",
    "source": "remote",
}


async def _ask(start_app: Start, entry: dict[str, Any]) -> RemotePredictor:
    """A new client (sending candles, as by default) of a schema-1 server answering ``entry``."""
    running = await start_app(_schema_one_server(entry))
    return client(running.url, "json")


async def test_the_new_client_reads_a_schema_one_server_with_every_model_absent(
    start_app: Start, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """The request passes a server that refuses unknown body fields, and its schema-1 answer is
    accepted as it is: no per-model answer invented, none refused."""
    remote = await _ask(start_app, ANSWER)
    try:
        result = await remote.predict({SYMBOLS[0]: histories[SYMBOLS[0]]}, candle_time, deadline())
    finally:
        await remote.close()
    p = result.predictions[SYMBOLS[0]]
    assert (p.signal, p.confidence, p.models, p.refused) == ("long", 0.71, (), ())


async def test_a_bad_model_answer_is_refused_alone_and_the_others_stand(
    start_app: Start, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Regime probabilities that do not sum to 1, a negative sd and an unknown model are each
    refused with a named reason; the direction model's answer still arrives."""
    models = [
        {"name": "direction", "version": "d", "probabilities": [0.1, 0.2, 0.7]},
        {"name": "regime", "version": "r", "probabilities": [0.5, 0.5, 0.5]},
        {"name": "volatility", "version": "v", "expected_return": 0.001, "sd": -0.01},
        {"name": "oracle", "version": "o", "probabilities": [0.0, 0.0, 1.0]},
    ]
    entry = {**ANSWER, "schema_version": 2, "models": models}
    remote = await _ask(start_app, entry)
    try:
        result = await remote.predict({SYMBOLS[0]: histories[SYMBOLS[0]]}, candle_time, deadline())
    finally:
        await remote.close()
    p = result.predictions[SYMBOLS[0]]
    assert [a.name for a in p.models] == [ModelName.DIRECTION]
    assert [(r.name, r.reason) for r in p.refused] == [
        ("regime", RefusalReason.PROBABILITIES_NOT_ONE),
        ("volatility", RefusalReason.NEGATIVE_SD),
        ("oracle", RefusalReason.UNKNOWN_MODEL),
    ]


async def test_a_remote_model_past_its_shelf_life_hands_the_symbol_on(
    start_app: Start, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """A remote answer trained 40 days before now, with a 30-day shelf life, is not used: the
    symbol goes on down the chain (here to neutral), with one model-expired event."""
    models = [
        {
            "name": "direction",
            "version": "d",
            "probabilities": [0.1, 0.2, 0.7],
            "trained_until": (candle_time - timedelta(days=40)).isoformat(),
        },
    ]
    remote = await _ask(start_app, {**ANSWER, "schema_version": 2, "models": models})
    events = Events()
    chain = FallbackPredictor(
        remote=remote, events=events, clock=ManualClock(candle_time), max_model_age_days=30
    )
    try:
        outcome = (await chain.predict({SYMBOLS[0]: histories[SYMBOLS[0]]}, candle_time))[
            SYMBOLS[0]
        ]
    finally:
        await chain.close()
    assert outcome.source is PredictionSource.NEUTRAL
    assert "remote: expired" in outcome.reasons
    assert [r[1] for r in events.alerts] == ["model-expired"]
