"""The ops port cannot be stalled without the token: half-open connections are capped and
closed when they say nothing, a flood from one client is answered 429 before authentication,
and a real daemon keeps cycling under 500 half-open connections."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tbotd.ops.guard import ConnectionGuard, RequestBudget
from tbotd.ops.http import OpsServer
from tests.conftest import CONFIGS
from tests.e2e_support import oracle, sim_process, spawn
from tests.integration.test_e2e_daemon import cycles, daemon_env

TOKEN = "ops-token-guard-PLANTED-0123456789"


async def _status() -> dict[str, object]:
    return {"instance": "guard"}


def get(port: int, path: str, token: str | None = None) -> int:
    """The HTTP status of GET ``path``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def open_files(pid: int) -> int:
    """How many file descriptors process ``pid`` holds."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def until(condition: Callable[[], bool], within_s: float) -> None:
    """Wait (polling the event loop) until ``condition`` holds; fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_half_open_connections_are_capped_and_closed_then_requests_pass() -> None:
    """200 silent connections against a cap of 32: those beyond the cap are refused at once,
    the silent ones are closed after the answer deadline, and a real request is then answered."""
    server = OpsServer("127.0.0.1", 0, TOKEN, CollectorRegistry(), _status, lambda: (True, "ok"))
    server.guard = ConnectionGuard(max_connections=32, answer_within_s=0.5)
    url = await server.start()
    port = int(url.rsplit(":", 1)[1])
    sockets = await asyncio.to_thread(half_open, port, 200)
    try:
        guard = server.guard
        # every connection is refused at once or closed at its answer deadline, never held
        # (an abort releases its connection on the loop's next turn: wait for that too)
        await until(lambda: guard.refused + guard.timed_out == 200 and guard.open == 0, 10)
        assert guard.open == 0
        assert guard.refused >= 100  # most were turned away at once (the cap, not the deadline)
        assert await asyncio.to_thread(get, port, "/status", TOKEN) == 200
    finally:
        for sock in sockets:
            sock.close()
        await server.stop()


async def test_a_flood_from_one_client_gets_429_before_authentication() -> None:
    """Guessing tokens fast: after the burst the answers are 429, /healthz still answers."""
    server = OpsServer("127.0.0.1", 0, TOKEN, CollectorRegistry(), _status, lambda: (True, "ok"))
    # a bucket that does not refill during the test: a slow machine must not earn new tokens
    server.budget = RequestBudget(rate_per_s=1e-6, burst=40)
    url = await server.start()
    port = int(url.rsplit(":", 1)[1])
    try:
        codes = [await asyncio.to_thread(get, port, "/status", "guess") for _ in range(60)]
        assert codes == [401] * 40 + [429] * 20
        assert await asyncio.to_thread(get, port, "/healthz") == 200
    finally:
        await server.stop()


@pytest.mark.slow
async def test_500_half_open_connections_leave_every_cycle_on_time(tmp_path: Path) -> None:
    """A daemon against `tbotd sim` with 500 silent connections on its ops port: it keeps
    deciding every candle, no cycle fails, and its open files stay bounded."""
    async with oracle() as ml_url, sim_process("--speed", "600") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, "paper")
        daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
        try:
            await daemon.wait_for(lambda ev: cycles(ev) >= 2, 120)
            port = int(env["TBOTD_OPS__PORT"])
            sockets = await asyncio.to_thread(half_open, port, 500)
            try:
                before = cycles(daemon.events)
                await daemon.wait_for(lambda ev: cycles(ev) >= before + 4, 120)
                fds = await asyncio.to_thread(open_files, daemon.proc.pid)
            finally:
                for sock in sockets:
                    sock.close()
        finally:
            assert await daemon.stop() == 0
    assert fds < 200  # 64 guarded connections at most, not 500
    with sqlite3.connect(env["TBOTD_STORE__PATH"]) as conn:
        failed = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'cycle-failed'").fetchone()
    assert failed == (0,)
