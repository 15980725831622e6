"""A local webhook receiver (aiohttp on loopback) that apprise's ``json://`` targets post to.

Each path is a target; what a path does is set by the test: ``ok`` (200), ``refuse`` (401),
``missing`` (404) or ``hang`` (the request is held until :meth:`Receiver.release`). Received
messages are parsed (title, first line, ``key: value`` fields) and waited for on a condition —
never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tbotd.notify.render import parse_body


@dataclass(frozen=True)
class Received:
    """One message a target got."""

    target: str
    title: str
    text: str
    fields: dict[str, str]
    type: str

    @property
    def kind(self) -> str:
        """The notice kind (the title's last word)."""
        return self.title.rsplit(" ", 1)[-1]

    @property
    def severity(self) -> str:
        """INFO, WARNING or CRITICAL (from the title)."""
        return self.title.split("] ", 1)[1].split(" ", 1)[0]


class Receiver:
    """The server; ``modes[target]`` says how each target answers (default ``ok``)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.modes: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.held = 0
        self.changed = asyncio.Condition()
        self._release = asyncio.Event()
        self.port = 0

    def url(self, target: str, name: str = "") -> str:
        """The apprise URL of ``target`` (``name=`` prefixed when given)."""
        prefix = f"{name}=" if name else ""
        return f"{prefix}json://127.0.0.1:{self.port}/{target}"

    def of(self, target: str) -> list[Received]:
        """What ``target`` received, in order."""
        return [m for m in self.messages if m.target == target]

    async def wait_for(self, ready: Callable[[Receiver], bool], within_s: float = 30) -> None:
        """Until ``ready(self)`` holds."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: ready(self)), within_s)

    def release(self) -> None:
        """Let every held (``hang``) request answer 200 without recording it."""
        self._release.set()

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        body: dict[str, Any] = await request.json()
        mode = self.modes.get(target, "ok")
        async with self.changed:
            self.attempts[target] = self.attempts.get(target, 0) + 1
            self.held += mode == "hang"
            self.changed.notify_all()
        if mode == "hang":
            await self._release.wait()
            return web.Response(status=200)
        if mode in ("refuse", "missing"):
            return web.json_response({"error": mode}, status=401 if mode == "refuse" else 404)
        text, fields = parse_body(str(body.get("message", "")))
        received = Received(target, str(body.get("title", "")), text, fields, str(body["type"]))
        async with self.changed:
            self.messages.append(received)
            self.changed.notify_all()
        return web.Response(status=200)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver on a free loopback port."""
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{target}", r._handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.port = runner.addresses[0][1]
    try:
        yield r
    finally:
        r.release()
        await runner.cleanup()
