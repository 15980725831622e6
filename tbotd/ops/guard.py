"""The ops endpoint's door: a cap on open connections, a deadline for a client to be answered,
and a request budget per client — all before authentication, which costs nothing to bypass.

Without it, half-open connections (a client that connects and sends nothing) held the daemon's
file descriptors until the websockets could not reconnect and cycles failed. Each connection is
wrapped: beyond ``max_connections`` it is closed at once; a connection that has gone
``answer_within_s`` without the server writing anything (no request, a request dribbled a byte
at a time, or idle keep-alive) is closed. Streams that keep writing (server-sent events) live on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ConnectionGuard:
    """Counts connections and hands each a watcher; see the module docstring."""

    max_connections: int = 64
    answer_within_s: float = 15.0
    open: int = 0
    refused: int = 0
    timed_out: int = 0

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory whose protocols are guarded."""
        return lambda: _Guarded(self, factory())


class _WriteWatch:
    """The transport as the HTTP handler sees it: writes are noted, everything else passes."""

    def __init__(self, transport: asyncio.Transport, seen: _Guarded) -> None:
        self._transport, self._seen = transport, seen

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._seen.active()
        self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self._seen.active()
        self._transport.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Guarded(asyncio.Protocol):
    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard, self._inner = guard, inner
        self._transport: asyncio.Transport | None = None
        self._last = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # TCP always gives one
            raise TypeError(f"not a stream transport: {transport!r}")
        if self._guard.open >= self._guard.max_connections:
            self._guard.refused += 1
            transport.abort()  # refused fast: no file descriptor held, no log line
            return
        self._guard.open += 1
        self._transport = transport
        self._arm()
        self._inner.connection_made(_WriteWatch(transport, self))  # type: ignore[arg-type]

    def active(self) -> None:
        self._last = time.monotonic()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.answer_within_s, self._check)

    def _check(self) -> None:
        if self._transport is None:
            return
        if time.monotonic() - self._last >= self._guard.answer_within_s:
            self._guard.timed_out += 1
            self._transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: the inner protocol never saw it
        self._transport = None
        self._guard.open -= 1
        if self._timer is not None:
            self._timer.cancel()
        self._inner.connection_lost(exc)


@dataclass
class RequestBudget:
    """A token bucket per client address: ``rate_per_s`` sustained, ``burst`` at once."""

    rate_per_s: float = 20.0
    burst: float = 40.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, client: str, now: float | None = None) -> bool:
        """Take one token for ``client``; False when its budget is spent."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if len(self._buckets) > 10_000:  # many addresses: forget the full (idle) ones
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        return allowed
