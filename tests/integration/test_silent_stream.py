"""A candle stream that stays connected and answers pings but sends nothing is noticed: within
three expected intervals the daemon reports not ready (saying why), records a `stream-silent`
event and redials; once data flows again it is ready again."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import CONFIGS
from tests.e2e_support import oracle, sim_process, spawn
from tests.integration.test_e2e_daemon import admin, cycles, daemon_env
from tests.integration.test_startup_waits import readyz

pytestmark = pytest.mark.slow
SILENT_AFTER_S = 2.0


async def poll_ready(port: str, want: bool, within_s: float) -> str:
    """Poll /readyz until its answer is ``want``; return its reason."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        status, body = await asyncio.to_thread(readyz, port)
        if (status == 200) is want:
            return str(body["reason"])
        assert loop.time() < deadline, f"/readyz still {status}: {body}"
        await asyncio.sleep(0.2)


async def test_a_silent_stream_is_noticed_reported_and_redialled(tmp_path: Path) -> None:
    """Silence switched on in the sim: not ready within 3 × the interval with the reason, a
    stream-silent event; silence off: ready again."""
    async with oracle() as ml_url, sim_process("--speed", "300") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, "paper")
        env["TBOTD_DAEMON__STREAM_SILENT_AFTER_S"] = str(SILENT_AFTER_S)
        daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
        try:
            await daemon.wait_for(lambda ev: cycles(ev) >= 1, 120)
            port = env["TBOTD_OPS__PORT"]
            await poll_ready(port, True, 30)
            admin(url, "/sim/faults", {"silent_streams": 1})
            reason = await poll_ready(port, False, 3 * SILENT_AFTER_S)
            assert "sent nothing" in reason
            admin(url, "/sim/faults", {"silent_streams": 0})
            await poll_ready(port, True, 30)
        finally:
            assert await daemon.stop() == 0
    with sqlite3.connect(env["TBOTD_STORE__PATH"]) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events")]
    assert "stream-silent" in kinds
