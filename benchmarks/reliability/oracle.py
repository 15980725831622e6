"""An "oracle" ML service speaking tbotd's JSON prediction API, with switchable misbehaviour.

It answers every candle with a confident signal chosen by a hash of (symbol, candle time), so a
daemon restarted mid-run asks again and gets the same answer — decisions are reproducible, and
trades happen often (long 40 %, short 40 %, neutral 20 %, confidence 0.9, ``sd`` 0.3 %).

``mode`` switches what it does, for the fault matrix:

* ``ok`` — the predictions above;
* ``down`` — the listening socket is closed (connection refused);
* ``slow`` — answers after ``slow_s`` (past the daemon's deadline);
* ``garbage`` — 200 with bodies that are not predictions (bad JSON, wrong shapes, NaN, wrong
  candle), rotating;
* ``unauthorized`` — 401 to every request;
* ``error`` — 503.

It checks the bearer token like a real service (a wrong token gets 401) and counts requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

MODES = ("ok", "down", "slow", "garbage", "unauthorized", "error")
GARBAGE = (
    b"{not json",
    b'{"schema_version": 1}',
    b"[1, 2, 3]",
    b'{"schema_version": 1, "symbol": "BTC/USDT:USDT", "signal": "long", "confidence": NaN}',
)


def oracle_signal(symbol: str, candle_time_iso: str) -> tuple[str, float]:
    """The (signal, confidence) the oracle gives for one candle: deterministic, confident."""
    digest = hashlib.sha256(f"{symbol}|{candle_time_iso}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    signal = "long" if u < 0.4 else "short" if u < 0.8 else "neutral"
    return signal, 0.9


def prediction_for(request: dict[str, Any]) -> dict[str, Any]:
    """The oracle's answer to one request object of the JSON prediction API."""
    symbol = str(request["symbol"])
    stamp = datetime.fromisoformat(str(request["timestamp"])).isoformat()
    signal, confidence = oracle_signal(symbol, stamp)
    return {
        "schema_version": 1,
        "symbol": symbol,
        "timestamp": stamp,
        "signal": signal,
        "confidence": confidence,
        "sd": 0.003,
        "model_version": "oracle-1",
    }


def _quoting(answer: dict[str, Any], text: str) -> dict[str, Any]:
    """``answer`` with every prediction's symbol replaced by ``text``."""
    if "predictions" in answer:
        return {"predictions": [{**p, "symbol": text} for p in answer["predictions"]]}
    return {**answer, "symbol": text}


class Oracle:
    """The server (start/stop in the caller's event loop); ``mode`` may change at any time."""

    def __init__(self, token: str, slow_s: float = 5.0, echo: bool = False) -> None:
        self.token, self.slow_s = token, slow_s
        self.echo = echo  # a careless service: its errors quote the Authorization header back
        self.mode = "ok"
        self.answer: Callable[[dict[str, Any]], dict[str, Any]] = prediction_for  # replaceable
        self.requests = 0
        self._garbage = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL (loopback, plain http: the daemon allows its token there)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        """Listen on a free port; returns the URL."""
        app = web.Application()
        app.router.add_post("/v1/predictions", self._single)
        app.router.add_post("/v1/predictions:batch", self._batch)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await self._listen()
        return self.url

    async def _listen(self) -> None:
        if self._runner is None:
            raise RuntimeError("the oracle has not been started")
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[0][1]

    async def set_mode(self, mode: str) -> None:
        """Switch behaviour; ``down`` closes the socket, leaving it reopens on the same port."""
        if mode not in MODES:
            raise ValueError(f"unknown oracle mode {mode!r}")
        if mode == "down" and self._site is not None:
            await self._site.stop()
            self._site = None
        elif mode != "down" and self._site is None:
            await self._listen()
        self.mode = mode

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request, build: Any) -> web.Response:
        self.requests += 1
        if self.mode == "down" and request.transport is not None:  # a kept-alive connection
            logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # writes now fail
            request.transport.close()
            return web.Response(status=503)
        presented = request.headers.get("Authorization", "")
        quoted = f": {presented}" if self.echo else ""
        if presented != f"Bearer {self.token}":
            return web.json_response({"error": f"unauthorized{quoted}"}, status=401)
        if self.mode == "unauthorized":
            return web.json_response({"error": f"token revoked{quoted}"}, status=401)
        if self.mode == "error":
            return web.json_response({"error": f"overloaded{quoted}"}, status=503)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        if self.mode == "garbage":
            self._garbage += 1
            body = GARBAGE[self._garbage % len(GARBAGE)]
            if self.echo and self._garbage % 2:  # a wrong answer that quotes the header
                body = json.dumps(_quoting(build(await request.json()), presented)).encode()
            return web.Response(body=body, content_type="application/json")
        return web.Response(
            text=json.dumps(build(await request.json())), content_type="application/json"
        )

    async def _single(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.answer)

    async def _batch(self, request: web.Request) -> web.Response:
        return await self._answer(
            request, lambda body: {"predictions": [self.answer(r) for r in body["requests"]]}
        )
