"""The processes a reliability run drives: `tbotd sim` (with its admin routes) and `tbotd run`.

Both are real subprocesses started the way a user starts them (``python -m tbotd ...``), so a
SIGKILL is a real crash: no ``finally`` runs, sockets are dropped by the kernel, the SQLite file
is left as the instant found it. Waiting on them is polling with a deadline (they are other
processes; there is nothing to await).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

import aiohttp

from benchmarks.reliability.oracle import Oracle

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEY = "tbotd-sim-demo-key"
DEMO_SECRET = "tbotd-sim-demo-secret"  # noqa: S105 - the sim's public demo account
TIMEOUT = aiohttp.ClientTimeout(total=10)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This checkout importable; no TBOTD_*/BASIS_* leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TBOTD_", "BASIS_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port that was free a moment ago (for the daemon's ops endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, every_s: float = 0.05
) -> float:
    """Poll ``check`` until true; returns the seconds it took, TimeoutError after ``timeout_s``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not true after {timeout_s} s")
        await asyncio.sleep(every_s)


class SimProcess:
    """`tbotd sim --admin` in its own process, and a client for its admin routes."""

    def __init__(
        self,
        workdir: Path,
        speed: float,
        seed: int,
        args: tuple[str, ...] = (),
        account: str = DEMO_KEY,
    ) -> None:
        self.workdir, self.speed, self.seed, self.args = workdir, speed, seed, args
        self.account = account
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        """Start it and wait for its ``sim_ready`` line; returns the URL."""
        self._log = (self.workdir / "sim.log").open("a")
        command = [
            sys.executable,
            "-m",
            "tbotd",
            "sim",
            "--port",
            "0",
            "--admin",
            "--speed",
            str(self.speed),
            "--seed",
            str(self.seed),
            *self.args,
        ]
        self._process = process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        line = await asyncio.to_thread(process.stdout.readline) if process.stdout else ""
        if not line:
            raise RuntimeError(f"tbotd sim did not start (see {self.workdir / 'sim.log'})")
        self.url = json.loads(line)["url"]
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self.url

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            raise RuntimeError("the sim has not been started")
        async with self._session.request(method, self.url + path, json=body) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {data}")
            return data

    async def state(self) -> dict[str, Any]:
        """The exchange's own records (GET /sim/state) for the daemon's account."""
        data: dict[str, Any] = await self._call("GET", f"/sim/state?account={self.account}")
        return data

    async def faults(self, **changes: Any) -> dict[str, Any]:
        """Change faults (POST /sim/faults); with no changes, read them."""
        if not changes:
            data: dict[str, Any] = await self._call("GET", "/sim/faults")
            return data
        changed: dict[str, Any] = await self._call("POST", "/sim/faults", changes)
        return changed

    async def clock(self, running: bool) -> None:
        """Pause or resume market time."""
        await self._call("POST", "/sim/clock", {"running": running})

    async def time_ms(self) -> int:
        """Market time now."""
        data = await self._call("GET", "/sim/time")
        return int(data["market_time_ms"])

    async def drop_websockets(self) -> int:
        """Close every websocket now."""
        data = await self._call("POST", "/sim/drop-websockets")
        return int(data["dropped"])

    async def stop(self) -> None:
        """SIGTERM and wait."""
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            await asyncio.to_thread(self._process.wait, 30)
        if self._log is not None:
            self._log.close()


class DaemonProcess:
    """`tbotd run --config FILE` in its own process, restarted at will."""

    def __init__(
        self,
        config: Path,
        env: Mapping[str, str],
        ops_port: int,
        log: Path,
        ops_token: str | None = None,
        umask: int = -1,
    ) -> None:
        self.config, self.env, self.log = config, dict(env), log
        self.ops_url = f"http://127.0.0.1:{ops_port}"
        self.ops_headers = {"Authorization": f"Bearer {ops_token}"} if ops_token else {}
        self.umask = umask  # -1: inherit
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        """The running process's id."""
        if self.process is None:
            raise RuntimeError("the daemon has not been started")
        return self.process.pid

    def start(self) -> None:
        """Start a new daemon process (its output appended to the log file)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tbotd", "run", "--config", str(self.config)],
                cwd=ROOT,
                env=child_env(self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                umask=self.umask,
            )
        self.starts += 1

    def alive(self) -> bool:
        """Still running."""
        return self.process is not None and self.process.poll() is None

    async def ready(self) -> bool:
        """``/readyz`` answers 200 (False while starting or recovering)."""
        if not self.alive():
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"the daemon exited (code {code}); see {self.log}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(self.ops_url + "/readyz", headers=self.ops_headers) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` answer (empty while the endpoint is not up)."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(self.ops_url + "/readyz", headers=self.ops_headers) as response,
            ):
                body: dict[str, Any] = await response.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds until ``/readyz`` said 200."""
        return await wait_for(self.ready, timeout_s, "daemon ready", every_s=0.02)

    async def kill(self) -> None:
        """SIGKILL: a crash at this very instant."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait, 30)

    async def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        process = self.process
        if process is None:
            raise RuntimeError("the daemon has not been started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(process.wait, timeout_s)

    def rss_kib(self) -> int:
        """Resident set size (VmRSS) from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_fds(self) -> int:
        """Open file descriptors (sockets included) from /proc."""
        with contextlib.suppress(FileNotFoundError):
            return sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())
        return 0


def write_daemon_config(
    path: Path,
    *,
    sim_url: str,
    oracle_url: str,
    db: Path,
    ops_port: int,
    speed: float,
    symbols: tuple[str, ...] = ("BTC/USDT:USDT", "ETH/USDT:USDT"),
    instance: str = "chaos",
    request_timeout_s: float = 3.0,
    ml_deadline_s: float = 0.5,
    history_bars: int = 100,
    ml_extra: str = "",
    extra: str = "",
) -> Path:
    """A live-mode config against the sim, predictions from the oracle (secrets come by env)."""
    listed = ", ".join(f'"{s}"' for s in symbols)
    path.write_text(
        f"""instance = "{instance}"

[exchange]
id = "binanceusdm"
market_type = "linear"
symbols = [{listed}]
timeframe = "5m"
base_url = "{sim_url}"
request_timeout_s = {request_timeout_s}

[strategy]
mode = "ml_usdt_directional"
share_class = "USDT"
initial_capital = "10000"
threshold = 0.6
on_neutral = "close"

[ml]
remote_url = "{oracle_url}"
remote_candles = 0
deadline_s = {ml_deadline_s}
local_reserve_s = {round(ml_deadline_s / 5, 4)}
remote_connect_timeout_s = 0.2
remote_timeout_s = 0.3
remote_backoff_s = 0.02
remote_backoff_cap_s = 0.05
remote_breaker_cooldown_s = 2
device = "cpu"
{ml_extra}

[execution]
mode = "live"
leverage = 1
position_fraction = "0.4"

[store]
path = "{db}"

[ops]
port = {ops_port}

[daemon]
time_scale = {speed}
history_bars = {history_bars}
candle_wait_s = 60
reconcile_interval_s = 300
stop_timeout_s = 30

[log]
format = "json"
{extra}"""
    )
    return path


def daemon_env(ml_token: str) -> dict[str, str]:
    """Secrets for the daemon: the sim's demo keys and the oracle's token."""
    return {
        "TBOTD_EXCHANGE__API_KEY": DEMO_KEY,
        "TBOTD_EXCHANGE__API_SECRET": DEMO_SECRET,
        "BASIS_ML_API_TOKEN": ml_token,
    }


async def start_stack(
    sim: SimProcess,
    oracle: Oracle,
    config_path: Path,
    db: Path,
    log: Path,
    env: Mapping[str, str],
    **config: Any,
) -> DaemonProcess:
    """Start the oracle and the sim, write the daemon's config against them (``config``: the
    options of :func:`write_daemon_config`) and return the daemon, not yet started."""
    await oracle.start()
    await sim.start()
    port = free_port()
    path = write_daemon_config(
        config_path, sim_url=sim.url, oracle_url=oracle.url, db=db, ops_port=port, **config
    )
    return DaemonProcess(path, env, port, log)
