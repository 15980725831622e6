"""`tbotd run` started while the exchange is down (a reboot during network bring-up, an
exchange's maintenance, `tbotd sim` started late) waits for it with capped backoff — saying
what it waits for in the log and on `/readyz` — becomes ready by itself once it answers, and
trades; a stop while it waits exits 0."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONFIGS
from tests.e2e_support import free_port, oracle, sim_process, spawn
from tests.integration.test_e2e_daemon import cycles, daemon_env

pytestmark = pytest.mark.slow
WAITING = "exchange unreachable at start; waiting"


def readyz(port: str) -> tuple[int, dict[str, Any]]:
    """`/readyz`'s status and body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def waited(events: list[dict[str, Any]]) -> int:
    """Attempts logged while waiting."""
    return sum(1 for e in events if e.get("event") == WAITING)


async def test_a_daemon_started_before_the_exchange_waits_then_trades(tmp_path: Path) -> None:
    """Started with nothing on the exchange's port: one line per attempt naming the URL and the
    cause, /readyz 503 "waiting for exchange"; the sim comes up → ready within one backoff
    step (cap 1 s), and cycles."""
    port = free_port()
    async with oracle() as ml_url:
        env = daemon_env(tmp_path, f"http://127.0.0.1:{port}", ml_url, "paper")
        env["TBOTD_DAEMON__STARTUP_RETRY_CAP_S"] = "1"
        daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
        try:
            await daemon.wait_for(lambda ev: waited(ev) >= 2, 60)
            first = next(e for e in daemon.events if e.get("event") == WAITING)
            assert first["url"] == f"http://127.0.0.1:{port}"
            assert "Connect" in first["cause"]  # the cause, not only the request
            assert "tbotd sim" in first["hint"]
            status, body = await asyncio.to_thread(readyz, env["TBOTD_OPS__PORT"])
            assert status == 503
            assert body["reason"].startswith("waiting for exchange")
            sim = await spawn("sim", "--port", str(port), "--admin", "--speed", "600")
            try:
                await daemon.wait_for(lambda ev: any(e.get("event") == "ready" for e in ev), 60)
                await daemon.wait_for(lambda ev: cycles(ev) >= 2, 120)
            finally:
                await sim.stop(within_s=20)
        finally:
            assert await daemon.stop() == 0


async def test_a_stop_while_waiting_for_the_exchange_exits_0(tmp_path: Path) -> None:
    """SIGTERM while the exchange is unreachable: exit 0, no traceback."""
    port = free_port()
    env = daemon_env(tmp_path, f"http://127.0.0.1:{port}", "http://127.0.0.1:9", "paper")
    env["TBOTD_DAEMON__STARTUP_RETRY_CAP_S"] = "1"
    daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
    await daemon.wait_for(lambda ev: waited(ev) >= 1, 60)
    assert await daemon.stop() == 0
    assert not any("Traceback" in str(e.get("text", "")) for e in daemon.events)


async def test_a_symbol_the_venue_does_not_list_is_left_out_and_the_others_trade(
    tmp_path: Path,
) -> None:
    """exchange.symbols with one the sim does not list: the daemon starts, records a
    symbol-unavailable event naming it, and cycles for the other (/readyz ok)."""
    async with oracle() as ml_url, sim_process("--speed", "600") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, "paper")
        env["TBOTD_EXCHANGE__SYMBOLS"] = '["BTC/USDT:USDT", "NOPE/USDT:USDT"]'
        daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
        try:
            await daemon.wait_for(lambda ev: cycles(ev) >= 2, 120)
            left = [e for e in daemon.events if e.get("event") == "symbol left out"]
            assert [e["symbol"] for e in left] == ["NOPE/USDT:USDT"]
            status, body = await asyncio.to_thread(readyz, env["TBOTD_OPS__PORT"])
            assert (status, body["reason"]) == (200, "ok")
        finally:
            assert await daemon.stop() == 0
    with sqlite3.connect(env["TBOTD_STORE__PATH"]) as conn:
        events = conn.execute(
            "SELECT symbol FROM events WHERE kind = 'symbol-unavailable'"
        ).fetchall()
        decided = {r[0] for r in conn.execute("SELECT DISTINCT symbol FROM decisions")}
    assert events == [("NOPE/USDT:USDT",)]
    assert decided == {"BTC/USDT:USDT"}
