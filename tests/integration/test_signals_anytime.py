"""Signals at any moment of a long command end it cleanly: SIGTERM while `tbotd demo` imports,
trains or trades exits 0 without a traceback; a SIGHUP before the daemon is ready is deferred,
not fatal."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO, tbotd_env
from tests.e2e_support import free_port, handling, spawn
from tests.integration.test_e2e_daemon import daemon_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("after_s", [1.0, 5.0, 20.0])
async def test_sigterm_at_any_phase_of_the_demo_exits_0(tmp_path: Path, after_s: float) -> None:
    """SIGTERM 1 s (importing), 5 s (training) and 20 s (training or trading) after `tbotd demo`
    starts, and never before tbotd's first instruction could take it: exit 0, no traceback."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tbotd", "demo", "--out", str(tmp_path / "out"), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=tbotd_env(), cwd=REPO,
    )  # fmt: skip
    started = asyncio.get_running_loop().time()
    await handling(proc.pid, signal.SIGTERM)
    await asyncio.sleep(max(0.0, after_s - (asyncio.get_running_loop().time() - started)))
    proc.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err


async def test_sighup_before_ready_is_deferred_not_fatal(tmp_path: Path) -> None:
    """SIGHUP as soon as tbotd can take it (before the daemon's handlers exist): it keeps going and
    waits for its exchange, and SIGTERM then exits 0."""
    env = daemon_env(tmp_path, f"http://127.0.0.1:{free_port()}", "http://127.0.0.1:9", "paper")
    env["TBOTD_DAEMON__STARTUP_RETRY_CAP_S"] = "1"
    daemon = await spawn("run", "--config", str(CONFIGS / "ml_usdt_directional.toml"), env=env)
    await handling(daemon.proc.pid, signal.SIGHUP)  # tbotd's early handler; not the daemon's own
    daemon.proc.send_signal(signal.SIGHUP)
    waiting = "exchange unreachable at start; waiting"
    await daemon.wait_for(lambda ev: sum(e.get("event") == waiting for e in ev) >= 2, 60)
    assert not daemon.exited
    assert await daemon.stop() == 0
