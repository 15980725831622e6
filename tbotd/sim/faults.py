"""Fault injection: the failures a real venue inflicts, on demand.

Switchable at start (``--faults``) and at run time (:meth:`SimExchange.set_faults` or
``POST /sim/faults``). What each fault does on the wire and what ccxt 4.5.90 raises for it:

=================  ====================================================  =======================
fault              wire                                                  ccxt exception
=================  ====================================================  =======================
``http_5xx_rate``  503, plain-text body (a gateway, no Binance code)      ExchangeNotAvailable
``rate_limit_rate`` 429 ``{"code":-1003}`` + ``Retry-After``              DDoSProtection
``hang_rate``      no answer until ``hang_s`` (past the client timeout)   RequestTimeout
``latency_ms``     every REST answer delayed                             (none)
``lose_replies``   the next N accepted orders execute, the reply is lost  per ``lose_reply_mode``
``clock_skew_ms``  the venue's clock runs this far ahead of the client's   InvalidNonce (-1021)
                   (negative: behind) when it checks request timestamps    beyond the recvWindow
drop websockets    every websocket closed (code 1001)                     NetworkError
=================  ====================================================  =======================

``lose_reply_mode``: ``timeout`` (hang → RequestTimeout), ``5xx`` (502 text →
ExchangeNotAvailable) or ``unknown`` (503 ``{"code":-1007}`` "send status unknown" →
RequestTimeout). In every mode the order exists on the exchange: look it up by client id.
Faults apply to the ``/fapi`` and ``/dapi`` REST routes only, never to ``/sim`` admin routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from aiohttp import web

LOSE_MODES = ("timeout", "5xx", "unknown")
_ALIASES = {
    "5xx": "http_5xx_rate",
    "429": "rate_limit_rate",
    "hang": "hang_rate",
    "latency": "latency_ms",
    "lose": "lose_replies",
    "lose_mode": "lose_reply_mode",
    "retry_after": "retry_after_s",
    "skew": "clock_skew_ms",
    "silent": "silent_streams",
}


@dataclass(frozen=True)
class FaultConfig:
    """Which faults are on. Rates are probabilities per REST request (0 = off, 1 = always)."""

    http_5xx_rate: float = 0.0
    rate_limit_rate: float = 0.0
    hang_rate: float = 0.0
    latency_ms: int = 0
    lose_replies: int = 0
    lose_reply_mode: str = "timeout"
    retry_after_s: int = 1
    hang_s: float = 30.0
    clock_skew_ms: int = 0
    silent_streams: int = 0  # 1: websockets stay connected and answer pings but send no klines
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("http_5xx_rate", "rate_limit_rate", "hang_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"fault {name} must be a probability in [0, 1]")
        if self.latency_ms < 0 or self.lose_replies < 0 or self.hang_s <= 0:
            raise ValueError("latency_ms and lose_replies must be >= 0, hang_s > 0")
        if self.lose_reply_mode not in LOSE_MODES:
            raise ValueError(f"lose_reply_mode must be one of {', '.join(LOSE_MODES)}")

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        """A copy with ``changes`` (names or their short aliases) applied and type-checked."""
        known = {f.name: f for f in fields(self)}
        typed: dict[str, Any] = {}
        for raw_name, value in changes.items():
            name = _ALIASES.get(raw_name, raw_name)
            if name not in known:
                raise ValueError(f"unknown fault {raw_name!r}; known: {', '.join(sorted(known))}")
            kind = type(getattr(self, name))
            typed[name] = value if kind is str else kind(value)
        return replace(self, **typed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def parse_faults(spec: str) -> FaultConfig:
    """``"5xx=0.1,429=0.05,hang=0.01,latency_ms=50,lose=3,lose_mode=5xx"`` → FaultConfig."""
    changes: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault {item!r} is not NAME=VALUE")
        changes[name.strip()] = value.strip()
    return FaultConfig().updated(changes)


ORDER_PLACEMENT = frozenset({"/order", "/algoOrder", "/batchOrders"})


class Faults:
    """The live fault state and the aiohttp middleware that applies it."""

    def __init__(self, config: FaultConfig, stopping: asyncio.Event) -> None:
        self.config = config
        self._stopping = stopping
        self._rng = random.Random(config.seed)
        self.lost_replies = 0
        self.reply_lost = asyncio.Event()  # set once an order executed but its reply was lost

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        """Apply ``changes`` now; returns the new configuration."""
        self.config = self.config.updated(changes)
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)
        return self.config

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    async def _hang(self) -> None:
        """Hold the request until ``hang_s`` passes or the sim stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.config.hang_s)

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Apply the configured faults to venue REST requests."""
        path = request.path
        if not path.startswith(("/fapi/", "/dapi/")):
            return await handler(request)
        config = self.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if self._roll(config.rate_limit_rate):
            body = {
                "code": -1003,
                "msg": "Too many requests; current limit is 2400 requests per minute.",
            }
            headers = {"Retry-After": str(config.retry_after_s)}
            return web.json_response(body, status=429, headers=headers)
        if self._roll(config.http_5xx_rate):
            return web.Response(status=503, text="Service Unavailable")
        if self._roll(config.hang_rate):
            await self._hang()
            return web.Response(status=504, text="Gateway Timeout")
        response = await handler(request)
        placing = request.method == "POST" and any(path.endswith(p) for p in ORDER_PLACEMENT)
        if placing and response.status == 200 and self.config.lose_replies > 0:
            self.config = replace(self.config, lose_replies=self.config.lose_replies - 1)
            self.lost_replies += 1
            self.reply_lost.set()
            return await self._lost_reply()
        return response

    async def _lost_reply(self) -> web.StreamResponse:
        mode = self.config.lose_reply_mode
        if mode == "timeout":
            await self._hang()
            return web.Response(status=504, text="Gateway Timeout")
        if mode == "5xx":
            return web.Response(status=502, text="Bad Gateway")
        body = {
            "code": -1007,
            "msg": "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        }
        return web.json_response(body, status=503)
