"""The soak: one live daemon for thousands of accelerated cycles, its memory and descriptors
sampled from /proc — they must not grow.

The daemon trades against `tbotd sim` with the oracle's predictions (entries, stops, targets,
flips, funding), its websockets are dropped every ``drop_every`` cycles and the ML service fails
for a few cycles every ``ml_fault_every`` (reconnects, the circuit breaker, new sessions: where
leaks live). Every ``sample_s`` wall seconds: VmRSS and the number of open fds of the daemon
process, the cycles decided so far, and the database size. Figures: start (after ``warmup``
cycles, once caches are full), end, max, and the least-squares slope per 1,000 cycles; the
cycle time early and late (a cost that grows with history would show there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.reliability.checks import compare, read_db
from benchmarks.reliability.oracle import Oracle
from benchmarks.reliability.procs import (
    DaemonProcess,
    SimProcess,
    daemon_env,
    start_stack,
)

INITIAL = Decimal(10000)
TOKEN = "soak-oracle-token-0b9e"  # noqa: S105 - a throwaway token for the local oracle
INSTANCE = "soak"


@dataclass
class SoakOptions:
    """How long and how fast."""

    cycles: int = 2000
    speed: float = 2000.0
    tick_s: float = 0.02
    sample_s: float = 2.0
    warmup: int = 100
    drop_every: int = 50
    ml_fault_every: int = 200
    workdir: Path | None = None


@dataclass
class Sample:
    """One reading of the daemon process."""

    wall_s: float
    cycles: int
    rss_kib: int
    fds: int
    db_bytes: int


@dataclass
class SoakRun:
    """The samples and events of one soak."""

    samples: list[Sample] = field(default_factory=list)
    drops: int = 0
    ml_faults: int = 0


def slope_per_1000(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs, per 1,000 units of x."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def series(samples: list[Sample], name: str) -> dict[str, float]:
    """start / end / max / slope per 1,000 cycles of one measure."""
    values = [float(getattr(s, name)) for s in samples]
    cycles = [float(s.cycles) for s in samples]
    return {
        "start": values[0],
        "end": values[-1],
        "max": max(values),
        "slope_per_1000_cycles": round(slope_per_1000(cycles, values), 2),
    }


class Soak:
    """One soak run (see the module docstring)."""

    def __init__(self, options: SoakOptions, workdir: Path) -> None:
        self.o, self.workdir = options, workdir
        self.db = workdir / "soak.sqlite"
        self.log = workdir / "daemon.log"
        self.oracle = Oracle(TOKEN)
        self.sim = SimProcess(
            workdir, options.speed, seed=11, args=("--tick-s", str(options.tick_s))
        )
        self.run_ = SoakRun()

    async def run(self) -> dict[str, Any]:
        """Start, sample until ``cycles`` cycles are decided, stop, summarise."""
        started = time.monotonic()
        daemon: DaemonProcess | None = None
        try:
            daemon = await start_stack(
                self.sim,
                self.oracle,
                self.workdir / "soak.toml",
                self.db,
                self.log,
                daemon_env(TOKEN),
                speed=self.o.speed,
                instance=INSTANCE,
                request_timeout_s=2.0,
                ml_deadline_s=0.08,
            )
            daemon.start()
            await daemon.wait_ready(120)
            faults = asyncio.create_task(self._faults())
            try:
                await self._sample_until_done(daemon, started)
            finally:
                faults.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await faults
            await self.oracle.set_mode("ok")
            await self.sim.clock(running=False)
            exit_code = await daemon.terminate(120)
            findings = compare(await self.sim.state(), read_db(self.db), INSTANCE, INITIAL)
            return self._summary(exit_code, time.monotonic() - started, findings.ok, findings)
        finally:
            if daemon is not None:
                await daemon.kill()
            await self.sim.stop()
            await self.oracle.stop()

    async def _sample_until_done(self, daemon: DaemonProcess, started: float) -> None:
        while True:
            cycles = self.cycles()
            self.run_.samples.append(
                Sample(
                    round(time.monotonic() - started, 1),
                    cycles,
                    daemon.rss_kib(),
                    daemon.open_fds(),
                    sum(p.stat().st_size for p in self.workdir.glob("soak.sqlite*")),
                )
            )
            if cycles >= self.o.cycles:
                return
            if not daemon.alive():
                raise RuntimeError(f"the daemon died; see {self.log}")
            await asyncio.sleep(self.o.sample_s)

    def cycles(self) -> int:
        """Cycles the daemon has logged so far."""
        with self.log.open("rb") as f:
            return sum(1 for line in f if b'"event": "cycle"' in line)

    async def _faults(self) -> None:
        """Websocket drops and ML outages at a steady rhythm (in cycles)."""
        candle_s = 300 / self.o.speed
        n = 0
        while True:
            await asyncio.sleep(candle_s)
            n += 1
            if n % self.o.drop_every == 0:
                await self.sim.drop_websockets()
                self.run_.drops += 1
            if n % self.o.ml_fault_every == 0:
                await self.oracle.set_mode("error")
                self.run_.ml_faults += 1
                await asyncio.sleep(5 * candle_s)
                await self.oracle.set_mode("ok")

    def _cycle_times(self) -> tuple[list[float], int]:
        totals, failed = [], 0
        for line in self.log.read_text().splitlines():
            if '"event": "cycle"' in line:
                totals.append(float(json.loads(line)["ms"]["total"]))
            elif '"cycle failed"' in line:
                failed += 1
        return totals, failed

    def _summary(self, exit_code: int, wall_s: float, ok: bool, findings: Any) -> dict[str, Any]:
        after = [s for s in self.run_.samples if s.cycles >= self.o.warmup]
        used = after if len(after) >= 2 else self.run_.samples
        totals, failed = self._cycle_times()
        tenth = max(1, len(totals) // 10)
        return {
            "cycles": self.run_.samples[-1].cycles,
            "speed": self.o.speed,
            "market_days": round(self.run_.samples[-1].cycles * 300 / 86400, 1),
            "samples": len(self.run_.samples),
            "rss_kib": series(used, "rss_kib"),
            "open_fds": series(used, "fds"),
            "db_bytes": series(used, "db_bytes"),
            "cycle_ms_p50_first_10pct": round(statistics.median(totals[:tenth]), 1),
            "cycle_ms_p50_last_10pct": round(statistics.median(totals[-tenth:]), 1),
            "failed_cycles": failed,
            "ws_drops": self.run_.drops,
            "ml_outages": self.run_.ml_faults,
            "invariants_ok": ok,
            "findings": {
                "duplicates": findings.duplicates[:10],
                "unknown": findings.unknown[:10],
                "unprotected": findings.unprotected[:10],
                "mismatches": findings.mismatches[:10],
            },
            "exit_code": exit_code,
            "wall_s": round(wall_s, 1),
            "workdir": str(self.workdir),
            "series": [vars(s) for s in self.run_.samples],
        }


async def run_soak(options: SoakOptions) -> dict[str, Any]:
    """Run it in ``options.workdir`` (a temporary folder, kept, when None)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tbotd-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return await Soak(options, workdir).run()
