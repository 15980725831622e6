"""The fault matrix: one daemon (live, against an accelerated `tbotd sim`, predictions from the
oracle ML server) lives through each fault in turn, for ``cycles`` candles each, with a quiet
candle between faults. Per fault, from the daemon's database and the exchange's records:

* **on time** — candles (× symbols) decided before the next candle closed, of those that closed
  while the fault was on; ``delay_ms`` is how long after the close the decision was recorded,
  in wall-clock milliseconds (at ``speed`` × real time);
* **missed** — candles that closed during the fault and were never decided;
* **sources** — which prediction source each decision used (remote, local-cpu, neutral);
* **orders** / **duplicates** — orders the exchange received during the fault, and client ids
  or decisions it received twice (whole run);
* **failed cycles**, **events** — what the daemon recorded as unusual;
* after every fault: positions protected, and at the end the database equals the exchange.

Faults (``FAULTS``): websocket drops every 1.5 candles; 10 % of REST calls answered 503; 10 %
hanging past the client timeout; 429 bursts (every request refused for a quarter of each
candle); the venue's clock 0.8 s behind (inside Binance's 1 s tolerance) and 2.5 s behind (every
signed request refused, -1021); the ML service down, slow (past the deadline), answering garbage,
and refusing the token (401).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.reliability.checks import compare, read_db, unprotected
from benchmarks.reliability.oracle import Oracle
from benchmarks.reliability.procs import (
    DaemonProcess,
    SimProcess,
    daemon_env,
    start_stack,
    wait_for,
)

INSTANCE = "matrix"
SIM_SEED = 3
INITIAL = Decimal(10000)
CANDLE_MS = 300_000
TOKEN = "matrix-oracle-token-77c1"  # noqa: S105 - a throwaway token for the local oracle
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
BURST_S = 10.0  # a 429 burst, in market seconds (Binance's Retry-After is seconds, not minutes)
REQUEST_TIMEOUT_S = 10.0  # the production default, in market seconds (scaled to wall time)


@dataclass
class Fault:
    """One row of the matrix: how to switch it on and off, and an optional background task."""

    name: str
    what: str
    on: Callable[[Matrix], Awaitable[None]]
    off: Callable[[Matrix], Awaitable[None]]
    background: Callable[[Matrix], Awaitable[None]] | None = None


async def _nothing(_m: Matrix) -> None:
    return None


async def _sim(m: Matrix, **changes: Any) -> None:
    await m.sim.faults(**changes)


async def _drop_forever(m: Matrix) -> None:
    while True:
        await asyncio.sleep(1.5 * m.candle_s)
        await m.sim.drop_websockets()
        m.drops += 1


async def _429_bursts(m: Matrix) -> None:
    """Every request refused for BURST_S (market seconds) from each candle's close: right when
    the cycle reads balances, places orders and fills history."""
    while True:
        now = await m.sim.time_ms()
        await asyncio.sleep((CANDLE_MS - now % CANDLE_MS) / 1000 / m.o.speed)
        await m.sim.faults(rate_limit_rate=1.0)
        await asyncio.sleep(BURST_S / m.o.speed)
        await m.sim.faults(rate_limit_rate=0.0)


def _oracle(mode: str) -> Callable[[Matrix], Awaitable[None]]:
    async def switch(m: Matrix) -> None:
        await m.oracle.set_mode(mode)

    return switch


FAULTS: tuple[Fault, ...] = (
    Fault("baseline", "no fault", _nothing, _nothing),
    Fault(
        "ws-drops", "every websocket dropped every 1.5 candles", _nothing, _nothing, _drop_forever
    ),
    Fault(
        "rest-5xx-10%",
        "10 % of REST calls answered 503",
        lambda m: _sim(m, http_5xx_rate=0.1),
        lambda m: _sim(m, http_5xx_rate=0.0),
    ),
    Fault(
        "rest-timeouts-10%",
        "10 % of REST calls hang past the client timeout",
        lambda m: _sim(m, hang_rate=0.1, hang_s=2 * m.request_timeout_s),
        lambda m: _sim(m, hang_rate=0.0),
    ),
    Fault(
        "429-bursts",
        "every REST call refused with 429 for the first 10 s after each candle's close",
        _nothing,
        lambda m: _sim(m, rate_limit_rate=0.0),
        _429_bursts,
    ),
    Fault(
        "clock-skew-0.8s",
        "the venue's clock 0.8 s behind the daemon's (inside the 1 s tolerance)",
        lambda m: _sim(m, clock_skew_ms=-800),
        lambda m: _sim(m, clock_skew_ms=0),
    ),
    Fault(
        "clock-skew-2.5s",
        "the venue's clock 2.5 s behind the daemon's: every signed request refused (-1021)",
        lambda m: _sim(m, clock_skew_ms=-2500),
        lambda m: _sim(m, clock_skew_ms=0),
    ),
    Fault("ml-down", "the ML service refuses connections", _oracle("down"), _oracle("ok")),
    Fault("ml-slow", "the ML service answers after 5 s", _oracle("slow"), _oracle("ok")),
    Fault(
        "ml-garbage", "the ML service answers 200 with garbage", _oracle("garbage"), _oracle("ok")
    ),
    Fault(
        "ml-401", "the ML service refuses the token (401)", _oracle("unauthorized"), _oracle("ok")
    ),
)


@dataclass
class Window:
    """When a fault was on, in market time."""

    fault: Fault
    start_ms: int
    end_ms: int
    unprotected: list[str] = field(default_factory=list)
    drops: int = 0


@dataclass
class MatrixOptions:
    """How long each fault lasts and how fast the market runs."""

    cycles: int = 20
    speed: float = 100.0
    faults: tuple[str, ...] = ()  # names from FAULTS; empty: all of them
    models_dir: Path | None = None  # local models for the remote → local fallback
    workdir: Path | None = None


class Matrix:
    """One fault-matrix run (see the module docstring)."""

    def __init__(self, options: MatrixOptions, workdir: Path) -> None:
        self.o, self.workdir = options, workdir
        self.candle_s = CANDLE_MS / 1000 / options.speed
        # the client timeout scaled like the candles (10 s of 300), but at least 0.25 s of wall
        # time, so loopback latency under load never looks like a timeout
        self.request_timeout_s = max(0.25, REQUEST_TIMEOUT_S / options.speed)
        self.db = workdir / "matrix.sqlite"
        self.oracle = Oracle(TOKEN, slow_s=5.0)
        self.sim = SimProcess(workdir, options.speed, seed=SIM_SEED)
        self.daemon: DaemonProcess | None = None
        self.windows: list[Window] = []
        self.drops = 0

    def faults(self) -> list[Fault]:
        """The faults to run, in order."""
        wanted = set(self.o.faults)
        unknown = wanted - {f.name for f in FAULTS}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        return [f for f in FAULTS if not wanted or f.name in wanted]

    async def run(self) -> dict[str, Any]:
        """Every fault in turn, then the figures."""
        started = time.monotonic()
        try:
            daemon = await self._start()
            for fault in self.faults():
                await self._phase(fault)
            await self.sim.clock(running=False)
            exit_code = await daemon.terminate()
            return self._figures(exit_code, time.monotonic() - started, await self.sim.state())
        finally:
            if self.daemon is not None:
                await self.daemon.kill()
            await self.sim.stop()
            await self.oracle.stop()

    async def _start(self) -> DaemonProcess:
        models = f'models_dir = "{self.o.models_dir}"' if self.o.models_dir else ""
        self.daemon = await start_stack(
            self.sim,
            self.oracle,
            self.workdir / "matrix.toml",
            self.db,
            self.workdir / "daemon.log",
            daemon_env(TOKEN),
            speed=self.o.speed,
            symbols=SYMBOLS,
            instance=INSTANCE,
            request_timeout_s=self.request_timeout_s,
            ml_deadline_s=min(0.5, 0.3 * self.candle_s),
            ml_extra=models,
            history_bars=1000 if self.o.models_dir else 100,  # local models need their warm-up
        )
        self.daemon.start()
        await self.daemon.wait_ready(120)
        return self.daemon

    async def _phase(self, fault: Fault) -> None:
        start = await self.sim.time_ms()
        self.drops = 0
        await fault.on(self)
        task = asyncio.create_task(fault.background(self)) if fault.background else None
        try:
            await asyncio.sleep(self.o.cycles * self.candle_s)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await fault.off(self)
        window = Window(fault, start, await self.sim.time_ms(), drops=self.drops)
        window.unprotected = await self._unprotected_after()
        self.windows.append(window)

    async def _unprotected_after(self) -> list[str]:
        """Positions still unprotected (strict definition) once the fault is off: one quiet
        candle separates the faults, and the repair that follows a fault may take up to two
        more (the bounded window) before a position counts as left unprotected."""
        await asyncio.sleep(self.candle_s)
        missing: list[str] = []

        async def protected() -> bool:
            nonlocal missing
            missing = unprotected(await self.sim.state())
            return not missing

        with contextlib.suppress(TimeoutError):
            await wait_for(protected, 2 * self.candle_s, "protected after the fault")
        return missing

    def _figures(self, exit_code: int, wall_s: float, state: dict[str, Any]) -> dict[str, Any]:
        db = read_db(self.db)
        findings = compare(state, db, INSTANCE, INITIAL)
        rows = [self._row(w, state) for w in self.windows]
        return {
            "faults": rows,
            "cycles_per_fault": self.o.cycles,
            "speed": self.o.speed,
            "duplicate_orders": len(findings.duplicates),
            "unknown_orders": len(findings.unknown),
            "mismatches": len(findings.mismatches),
            "unprotected_at_end": len(findings.unprotected),
            "details": {
                "duplicates": findings.duplicates[:20],
                "unknown": findings.unknown[:20],
                "mismatches": findings.mismatches[:20],
            },
            "exit_code": exit_code,
            "wall_s": round(wall_s, 1),
            "workdir": str(self.workdir),
        }

    def _row(self, w: Window, state: dict[str, Any]) -> dict[str, Any]:
        closes = [
            t
            for t in range(w.start_ms - w.start_ms % CANDLE_MS, w.end_ms, CANDLE_MS)
            if w.start_ms <= t < w.end_ms
        ]
        expected = {(s, t - CANDLE_MS) for t in closes for s in SYMBOLS}
        decided = self._decided(expected)
        delays = [(at - (t + CANDLE_MS)) / self.o.speed for (_, t), at in decided.items()]
        on_time = sum(1 for (_, t), at in decided.items() if at < t + 2 * CANDLE_MS)
        sources = self._sources(expected)
        events = self._events(w)
        orders = [
            o
            for o in state["orders"] + state["algo_orders"]
            if w.start_ms <= int(o["time_ms"]) < w.end_ms
        ]
        return {
            "fault": w.fault.name,
            "what": w.fault.what,
            "candles": len(expected),
            "on_time": on_time,
            "missed": len(expected) - len(decided),
            "delay_ms_median": round(statistics.median(delays)) if delays else None,
            "delay_ms_max": round(max(delays)) if delays else None,
            "sources": sources,
            "orders": len(orders),
            "failed_cycles": events.get("cycle-failed", 0),
            "events": events,
            "unprotected_after": len(w.unprotected),
            "ws_drops": w.drops,
        }

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    def _decided(self, expected: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        rows = self._query("SELECT symbol, candle_time, created_at FROM decisions", ())
        return {(s, t): at for s, t, at in rows if (s, t) in expected}

    def _sources(self, expected: set[tuple[str, int]]) -> dict[str, int]:
        rows = self._query("SELECT symbol, candle_time, source FROM predictions", ())
        return dict(Counter(src for s, t, src in rows if (s, t) in expected))

    def _events(self, w: Window) -> dict[str, int]:
        rows = self._query(
            "SELECT kind FROM events WHERE time >= ? AND time < ?",
            (w.start_ms, w.end_ms + CANDLE_MS),
        )
        return dict(Counter(kind for (kind,) in rows))


def train_models(out: Path, seed: int = SIM_SEED) -> Path:
    """Small local models trained on the sim's own history before "now" (the daemon's remote →
    local fallback then has something to fall back to). Takes a minute on 2 cores."""
    from tbotd.daemon.demo import train_models as train_on_sim_history
    from tbotd.sim import SimConfig, SimExchange

    return train_on_sim_history(SimExchange(SimConfig(seed=seed)), out, None)


async def run_matrix(options: MatrixOptions) -> dict[str, Any]:
    """Run it in ``options.workdir`` (a temporary folder, kept, when None)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tbotd-matrix-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return await Matrix(options, workdir).run()
