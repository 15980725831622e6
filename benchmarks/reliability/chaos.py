"""The chaos run: `tbotd run` (live, against an accelerated `tbotd sim`) killed with SIGKILL at
random instants, restarted, and checked against the exchange's own records every time.

Each round: the daemon runs; it is killed in one of three ways, in turn, at an instant drawn
from a seeded RNG —

* ``random``: at a uniformly random instant;
* ``cycle``: a random instant in the first wall-clock ``cycle_window_s`` after a candle closes,
  when the cycle is deciding and sending orders;
* ``lost-reply``: the sim is told to execute the next order but lose its reply (``lose=1``,
  a random ``lose_mode``); the kill comes within ~50 ms of the sim having executed it, while the
  daemon still waits for the answer — the crash between sending an order and recording it.

Then the database file is checked as the crash left it (``PRAGMA integrity_check``), the daemon
restarted, and once ``/readyz`` says ready: every exchange position must have its stop-loss
within ``protect_s``; then market time is paused, and once the daemon is idle the database must
equal the exchange (positions, open orders, fills, funding, balance), with no duplicate and no
unknown order (:mod:`.checks`); then time resumes. The end is a SIGTERM (exit 0 expected) and the
same checks on the final files.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.reliability.checks import Findings, compare, integrity, read_db, unprotected
from benchmarks.reliability.oracle import Oracle
from benchmarks.reliability.procs import (
    DaemonProcess,
    SimProcess,
    daemon_env,
    start_stack,
    wait_for,
)

INSTANCE = "chaos"
INITIAL = Decimal(10000)
KILL_MODES = ("random", "cycle", "lost-reply")
LOSE_MODES = ("timeout", "5xx", "unknown")
ORACLE_TOKEN = "chaos-oracle-token-5f3a"  # noqa: S105 - a throwaway token for the local oracle


@dataclass
class ChaosOptions:
    """How long and how hard."""

    kills: int = 50
    seed: int = 1
    speed: float = 300.0
    max_run_s: float = 4.0  # longest wall time the daemon runs between kills
    cycle_window_s: float = 0.4
    protect_s: float = 5.0  # an open position must have its stop this soon after "ready"
    settle_s: float = 8.0  # the daemon must agree with the exchange this soon after a pause
    workdir: Path | None = None


@dataclass
class ChaosReport:
    """Figures of one run (``summary()`` is what ``--json`` prints)."""

    seed: int
    kills: int = 0
    kill_modes: dict[str, int] = field(default_factory=dict)
    lost_replies: int = 0
    bare_at_kill: int = 0  # kills that left an exchange position without its stop
    ready_s: list[float] = field(default_factory=list)
    protect_s: list[float] = field(default_factory=list)  # from restart to every stop resting
    duplicates: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    integrity_failures: list[str] = field(default_factory=list)
    decisions: int = 0
    entries: int = 0
    orders: int = 0
    fills: int = 0
    final_exit_code: int | None = None
    wall_s: float = 0.0
    workdir: str = ""

    def add(self, findings: Findings, when: str) -> None:
        """Keep what a check found, labelled with when it was found."""
        self.duplicates += [f"{when}: {d}" for d in findings.duplicates]
        self.unknown += [f"{when}: {u}" for u in findings.unknown]
        self.unprotected += [f"{when}: {u}" for u in findings.unprotected]
        self.mismatches += [f"{when}: {m}" for m in findings.mismatches]

    def summary(self) -> dict[str, Any]:
        """The one JSON object: the issue's figures first, details after."""
        return {
            "kills": self.kills,
            "decisions": self.decisions,
            "duplicate_orders": len(self.duplicates),
            "unprotected_positions": len(self.unprotected),
            "mismatches": len(self.mismatches) + len(self.unknown),
            "integrity_ok": not self.integrity_failures,
            "seed": self.seed,
            "kill_modes": self.kill_modes,
            "lost_replies": self.lost_replies,
            "kills_leaving_a_position_without_stop": self.bare_at_kill,
            "protected_after_restart_s_max": _max(self.protect_s),
            "entries": self.entries,
            "orders_on_exchange": self.orders,
            "fills": self.fills,
            "unknown_orders": len(self.unknown),
            "ready_s_median": round(statistics.median(self.ready_s), 2) if self.ready_s else None,
            "ready_s_max": _max(self.ready_s),
            "final_exit_code": self.final_exit_code,
            "wall_s": round(self.wall_s, 1),
            "details": {
                "duplicates": self.duplicates[:20],
                "unknown": self.unknown[:20],
                "unprotected": self.unprotected[:20],
                "mismatches": self.mismatches[:20],
                "integrity": self.integrity_failures[:20],
            },
            "workdir": self.workdir,
        }


def _max(values: list[float]) -> float | None:
    return round(max(values), 2) if values else None


class Chaos:
    """One chaos run (see the module docstring)."""

    def __init__(self, options: ChaosOptions, workdir: Path) -> None:
        self.o, self.workdir = options, workdir
        self.rng = random.Random(options.seed)
        self.report = ChaosReport(options.seed, workdir=str(workdir))
        self.db = workdir / "chaos.sqlite"
        self.oracle = Oracle(ORACLE_TOKEN)
        self.sim = SimProcess(workdir, options.speed, options.seed)
        self._daemon: DaemonProcess | None = None

    @property
    def daemon(self) -> DaemonProcess:
        """The daemon (started by :meth:`run`)."""
        if self._daemon is None:
            raise RuntimeError("the daemon has not been started")
        return self._daemon

    async def run(self) -> ChaosReport:
        """Start everything, do ``kills`` rounds, stop, check; always cleans up."""
        started = time.monotonic()
        try:
            await self._start()
            for n in range(1, self.o.kills + 1):
                await self._round(n)
            await self._finish()
        finally:
            if self._daemon is not None:
                await self._daemon.kill()
            await self.sim.stop()
            await self.oracle.stop()
            self.report.wall_s = time.monotonic() - started
        return self.report

    async def _start(self) -> None:
        self._daemon = await start_stack(
            self.sim,
            self.oracle,
            self.workdir / "chaos.toml",
            self.db,
            self.workdir / "daemon.log",
            daemon_env(ORACLE_TOKEN),
            speed=self.o.speed,
            instance=INSTANCE,
        )
        self.daemon.start()
        self.report.ready_s.append(await self.daemon.wait_ready())

    async def _round(self, n: int) -> None:
        mode = KILL_MODES[(n - 1) % len(KILL_MODES)]  # each way in turn; the instants are random
        self.report.kill_modes[mode] = self.report.kill_modes.get(mode, 0) + 1
        if mode == "lost-reply":
            await self._kill_after_lost_reply()
        elif mode == "cycle":
            await self._kill_in_cycle()
        else:
            await asyncio.sleep(self.rng.uniform(0.05, self.o.max_run_s))
            await self.daemon.kill()
        self.report.kills += 1
        if unprotected(await self.sim.state()):  # the crash hit the window before the stop
            self.report.bare_at_kill += 1
        state = integrity(self.db)
        if state != "ok":
            self.report.integrity_failures.append(f"kill {n}: {state}")
        restarted = time.monotonic()
        self.daemon.start()
        self.report.ready_s.append(await self.daemon.wait_ready())
        await self._check_protected(f"kill {n} ({mode})", restarted)
        await self._check_idle(f"kill {n} ({mode})")

    async def _kill_after_lost_reply(self) -> None:
        await self.sim.faults(lose_replies=1, lose_reply_mode=self.rng.choice(LOSE_MODES))

        async def lost() -> bool:
            return int((await self.sim.faults())["lose_replies"]) == 0

        try:
            await wait_for(lost, self.o.max_run_s * 3, "a reply lost", every_s=0.01)
            self.report.lost_replies += 1
            await asyncio.sleep(self.rng.uniform(0, 0.05))
        except TimeoutError:
            pass  # no order in that time: an ordinary kill
        await self.daemon.kill()
        await self.sim.faults(lose_replies=0)

    async def _kill_in_cycle(self) -> None:
        now = await self.sim.time_ms()
        boundary = now - now % 300_000 + 300_000
        wall_to_boundary = (boundary - now) / 1000 / self.o.speed
        await asyncio.sleep(wall_to_boundary + self.rng.uniform(0, self.o.cycle_window_s))
        await self.daemon.kill()

    async def _check_protected(self, when: str, restarted: float) -> None:
        """Every exchange position has its stop-loss within ``protect_s`` of readiness."""
        missing: list[str] = []

        async def protected() -> bool:
            nonlocal missing
            missing = unprotected(await self.sim.state())
            return not missing

        try:
            await wait_for(protected, self.o.protect_s, "positions protected", every_s=0.05)
            self.report.protect_s.append(time.monotonic() - restarted)
        except TimeoutError:
            self.report.unprotected += [f"{when}: {m}" for m in missing]

    async def _check_idle(self, when: str) -> None:
        """Market paused: the database must come to equal the exchange within ``settle_s``."""
        await self.sim.clock(running=False)
        try:
            findings = await self._settled()
            self.report.add(findings, when)
        finally:
            await self.sim.clock(running=True)

    async def _settled(self) -> Findings:
        findings = Findings()

        async def agree() -> bool:
            nonlocal findings
            findings = compare(await self.sim.state(), read_db(self.db), INSTANCE, INITIAL)
            return findings.ok

        with contextlib.suppress(TimeoutError):  # then ``findings`` holds what still differed
            await wait_for(agree, self.o.settle_s, "database equals exchange", every_s=0.1)
        return findings

    async def _finish(self) -> None:
        """Pause the market, stop the daemon with SIGTERM, check the files it left."""
        await self.sim.clock(running=False)
        self.report.final_exit_code = await self.daemon.terminate()
        state = await self.sim.state()
        db = read_db(self.db)
        self.report.add(compare(state, db, INSTANCE, INITIAL), "final")
        if db.integrity != "ok":
            self.report.integrity_failures.append(f"final: {db.integrity}")
        self.report.decisions = len(db.decisions)
        self.report.entries = sum(1 for o in db.orders.values() if o["role"] == "entry")
        self.report.orders = len(state["orders"]) + len(state["algo_orders"])
        self.report.fills = len(state["fills"])


async def run_chaos(options: ChaosOptions) -> ChaosReport:
    """Run it in ``options.workdir`` (a temporary folder, kept, when None)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tbotd-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return await Chaos(options, workdir).run()
