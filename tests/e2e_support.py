"""End-to-end helpers: `tbotd sim` and `tbotd run` as real processes, and a scripted ML oracle.

The oracle speaks tbotd's JSON prediction API and answers a fixed, confident pattern per candle
(so the daemon trades); everything else is the real product: the sim, ccxt, the daemon.
Processes are watched through their JSON log lines — tests wait for events, never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tbotd.domain.values import datetime_to_ms
from tests.conftest import REPO, tbotd_env

ORACLE_TOKEN = "e2e-oracle-token-7f3a"
PATTERN = ("long", "long", "long", "short", "short", "short", "neutral", "long")


def oracle_signal(candle_time: datetime) -> str:
    """The oracle's call for a candle: a fixed rotation, changing every few candles."""
    return PATTERN[(datetime_to_ms(candle_time) // 300_000) % len(PATTERN)]


def oracle_app() -> web.Application:
    """A remote ML service answering the JSON API (single and batch) with :func:`oracle_signal`."""

    def answer(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": item["symbol"],
            "timestamp": item["timestamp"],
            "signal": oracle_signal(datetime.fromisoformat(item["timestamp"])),
            "confidence": 0.9,
            "sd": 0.004,
            "model_version": "oracle-1",
            "source": "remote",
        }

    def refused(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {ORACLE_TOKEN}":
            return None
        return web.json_response({"error": "unauthorized"}, status=401)

    async def single(request: web.Request) -> web.Response:
        return refused(request) or web.json_response(answer(await request.json()))

    async def batch(request: web.Request) -> web.Response:
        body = await request.json()
        answers = [answer(item) for item in body["requests"]]
        return refused(request) or web.json_response({"predictions": answers})

    app = web.Application()
    app.router.add_post("/v1/predictions", single)
    app.router.add_post("/v1/predictions:batch", batch)
    return app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _caught(pid: int) -> int:
    """The mask of signals process ``pid`` has handlers for (``SigCgt`` in /proc; a local read)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["SigCgt"], 16)


async def handling(pid: int, signum: signal.Signals, within_s: float = 60.0) -> None:
    """Wait until process ``pid`` has a handler of its own for ``signum``: a signal sent before
    that meets the default action — on a loaded machine the interpreter can take over a second
    to start — and proves nothing about tbotd."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not _caught(pid) >> (signum - 1) & 1:
        if loop.time() > deadline:
            raise AssertionError(f"process {pid} took no {signum.name} handler in {within_s} s")
        await asyncio.sleep(0.01)


@dataclass
class Process:
    """A tbotd process and the JSON events it logged so far."""

    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "text": line}
            async with self.changed:
                self.events.append(event if isinstance(event, dict) else {"event": str(event)})
                self.changed.notify_all()
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(
        self, ready: Callable[[list[dict[str, Any]]], bool], within_s: float
    ) -> None:
        """Wait until ``ready(events)`` (or the process exits, or the timeout passes)."""
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: ready(self.events) or self.exited), within_s
            )
        if not ready(self.events):
            raise AssertionError(f"process exited first: {self.events[-5:]}")

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None or (self.reader is not None and self.reader.done())

    def count(self, name: str) -> int:
        """How many events called ``name`` were logged."""
        return sum(1 for e in self.events if e.get("event") == name)

    async def stop(self, sig: int = signal.SIGTERM, within_s: float = 60) -> int:
        """Send ``sig`` and return the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), within_s)
        if self.reader is not None:
            await self.reader
        return code


async def spawn(*args: str, env: Mapping[str, str] | None = None) -> Process:
    """Start `python -m tbotd ARGS` with stdout captured line by line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tbotd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=tbotd_env(env),
        cwd=REPO,
    )
    process = Process(proc)
    process.reader = asyncio.create_task(process._read())
    return process


@asynccontextmanager
async def sim_process(*flags: str) -> AsyncIterator[tuple[Process, str]]:
    """`tbotd sim --port 0 --admin FLAGS`; yields the process and its URL."""
    sim = await spawn("sim", "--port", "0", "--admin", *flags)
    try:
        await sim.wait_for(lambda ev: any(e.get("event") == "sim_ready" for e in ev), 60)
        url = next(e["url"] for e in sim.events if e.get("event") == "sim_ready")
        yield sim, url
    finally:
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            await sim.stop(within_s=20)


@asynccontextmanager
async def oracle() -> AsyncIterator[str]:
    """The scripted ML service on a free port; yields its base URL."""
    runner = web.AppRunner(oracle_app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
