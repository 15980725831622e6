"""Shared by the fallback-chain integration tests: a fault-injecting JSON-API server, a chain
built as the daemon builds it (remote, then the given local models, then neutral) with short
deadlines, and small helpers to time it and read its metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from tbotd.config.settings import MLConfig, WireFormat
from tbotd.domain.market import Candle
from tbotd.ops.metrics import PredictorMetrics
from tbotd.predictor.fallback import FallbackPredictor, LocalModel, PredictionOutcome, SourceFailure
from tbotd.predictor.remote import RemotePredictor
from tests.integration.conftest import TOKEN

# Short enough that a remote fault costs the test little, long enough that the real local models
# answer inside their reserve on a loaded 2-core machine (interpreter, torch and the rest of the
# suite competing): a late answer there is a neutral prediction and a failed test.
DEADLINE_S = 2.0
RESERVE_S = 1.0
# How late a loaded machine may wake the event loop for a deadline that has passed: what is
# tested is that nothing waits for a stalled source, not the scheduler's punctuality.
LATE_WAKE_S = 0.5
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

    @property
    def alerts(self) -> list[tuple[datetime, str, str, dict[str, Any]]]:
        """The rows that are not the chain's ``ml-source`` state changes."""
        return [r for r in self.rows if r[1] != "ml-source"]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The data of each ``ml-source`` event (the chain's state changes)."""
        return [r[3] for r in self.rows if r[1] == "ml-source"]


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
