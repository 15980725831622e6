"""The hostile run (README: Protection): everything an adversarial user found, against real
processes.

`tbotd run` (live, two symbols) trades against an accelerated `tbotd sim --admin`; its ML
service is the oracle answering **schema-valid but hostile** predictions. Four phases:

1. **predictions** — by turns ``sd`` 0.45 (a percent read as a fraction), ``sd`` 1e-5, absurd
   absolute prices (a long's stop at 1, its target ×10) and a flip every candle;
2. **hands** — a person with the same API key flips the daemon's position, doubles it, cancels
   its stop and sets the leverage to 125×, then closes it by hand;
3. **second daemon** — another `tbotd run` on the same database (must exit 2), then one with the
   same instance name on another database (must trade nothing the first one holds);
4. **disk** — the database's filesystem (a small tmpfs) fills up: no new entries, every position
   kept protected (a stop cancelled meanwhile is put back, across a SIGKILL and restart on the
   full disk), and once space is freed the database comes back equal to the exchange.

All the while a sampler reads the exchange every 0.1 s (as a client: positions and open
conditional orders) and times every interval during which a
position was **unprotected by the strict definition** (:func:`.checks.unprotected`); the figure
is how many lasted beyond the bounded window (the repair after a hand change or a fill). At the
end: no duplicate, no unknown order, the database equal to the exchange, trades booking exactly
the fills' realised PnL, at most ``max_entries_per_hour`` entries per symbol in any hour, every
trade's stop within the bounds, and no entry on a candle whose prediction had absurd prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.reliability.checks import compare, read_db, unprotected
from benchmarks.reliability.hostile_parts import (
    Hands,
    absurd_entries,
    entries_per_hour,
    flat_in_db,
    hostile_answer,
    mount_tmpfs,
    not_ready_because_of_disk,
    read_query,
    run_command,
    steady_answer,
    stops_out_of_bounds,
    truncate_wal,
    venue_id,
)
from benchmarks.reliability.oracle import Oracle
from benchmarks.reliability.procs import (
    DaemonProcess,
    SimProcess,
    daemon_env,
    free_port,
    start_stack,
    wait_for,
    write_daemon_config,
)

INSTANCE = "hostile"
INITIAL = Decimal(10000)
TOKEN = "hostile-oracle-token-9d2e"  # noqa: S105 - a throwaway token for the local oracle
CANDLE_MS = 300_000
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


@dataclass
class HostileOptions:
    """How long and how fast."""

    candles: int = 24  # candles of hostile predictions (phase 1)
    speed: float = 300.0
    disk: bool = True  # phase 4 (needs permission to mount a tmpfs)
    window_s: float = 3.0  # wall seconds an unprotected interval may last (the repair)
    workdir: Path | None = None


@dataclass
class HostileReport:
    """The figures (``summary()`` is what ``--json`` prints)."""

    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    episodes: list[float] = field(default_factory=list)  # unprotected intervals, wall seconds
    beyond_window: list[str] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    workdir: str = ""

    def summary(self) -> dict[str, Any]:
        """The one JSON object: the issue's figures first, details after."""
        return {
            "duplicate_orders": self.findings.get("duplicate_orders"),
            "unprotected_positions": len(self.beyond_window),
            "mismatches": self.findings.get("mismatches"),
            "unknown_orders": self.findings.get("unknown_orders"),
            "bookkeeping_equal": self.findings.get("bookkeeping_equal"),
            "max_entries_per_hour": self.findings.get("max_entries_per_hour"),
            "stops_out_of_bounds": self.findings.get("stops_out_of_bounds"),
            "entries_on_absurd_prices": self.findings.get("entries_on_absurd_prices"),
            "unprotected_intervals": len(self.episodes),
            "unprotected_interval_max_s": round(max(self.episodes), 3) if self.episodes else 0,
            "phases": self.phases,
            "details": {
                "beyond_window": self.beyond_window[:20],
                **self.findings.get("details", {}),
            },
            "wall_s": round(self.wall_s, 1),
            "workdir": self.workdir,
        }


class Hostile:
    """One hostile run (see the module docstring)."""

    def __init__(self, options: HostileOptions, workdir: Path) -> None:
        self.o, self.workdir = options, workdir
        self.candle_s = CANDLE_MS / 1000 / options.speed
        self.report = HostileReport(workdir=str(workdir))
        self.disk = workdir / "disk"
        self.disk.mkdir(exist_ok=True)
        self.mounted = options.disk and mount_tmpfs(self.disk)
        self.db = self.disk / "hostile.sqlite"
        self.oracle = Oracle(TOKEN)
        self.sim = SimProcess(workdir, options.speed, seed=11)
        self.daemon: DaemonProcess | None = None
        self.others: list[DaemonProcess] = []  # second daemons (killed at the end, whatever)
        self.hands: Hands | None = None
        self._open: dict[str, float] = {}  # symbol → wall time it became unprotected
        self._down = False  # the daemon is being restarted: its intervals are the restart's

    async def run(self) -> HostileReport:
        """Every phase, then the figures; always cleans up."""
        started = time.monotonic()
        sampler = None
        try:
            daemon = await self._start()
            sampler = asyncio.create_task(self._sample())
            await self._predictions()
            await self._hand_changes()
            await self._second_daemon()
            await self._full_disk(daemon)
            await self._finish(daemon)
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            for process in [self.daemon, *self.others]:
                if process is not None:
                    await process.kill()
            if self.hands is not None:
                await self.hands.close()
            await self.sim.stop()
            await self.oracle.stop()
            if self.mounted:  # keep the database for a post-mortem, then free the tmpfs
                run_command(["cp", "-a", str(self.disk), str(self.workdir / "disk-copy")])
                run_command(["umount", "-l", str(self.disk)])
            self.report.wall_s = time.monotonic() - started
        return self.report

    async def _start(self) -> DaemonProcess:
        self.daemon = await start_stack(
            self.sim,
            self.oracle,
            self.workdir / "hostile.toml",
            self.db,
            self.workdir / "daemon.log",
            daemon_env(TOKEN),
            speed=self.o.speed,
            symbols=SYMBOLS,
            instance=INSTANCE,
        )
        self.hands = Hands(self.sim.url)
        await self.hands.start()
        self.oracle.answer = hostile_answer
        self.daemon.start()
        await self.daemon.wait_ready(120)
        return self.daemon

    async def _sample(self) -> None:
        """Time every interval during which a position is unprotected (strict definition)."""
        while True:
            try:
                missing = set(await self._hands().unprotected(SYMBOLS))
            except Exception as e:  # noqa: BLE001 - a sampler must outlive a refused read
                print(f"sampler: {e}", file=sys.stderr)
                await asyncio.sleep(0.1)
                continue
            now = time.monotonic()
            for symbol in missing - set(self._open):
                self._open[symbol] = -now if self._down else now  # negative: began while down
            for symbol in set(self._open) - missing:
                began = self._open.pop(symbol)
                lasted = now - abs(began)
                if began < 0:  # bounded by the restart (figures: phases.disk)
                    continue
                self.report.episodes.append(lasted)
                if lasted > self.o.window_s:
                    self.report.beyond_window.append(f"{symbol} unprotected for {lasted:.2f} s")
            await asyncio.sleep(0.1)

    async def _candles(self, n: float) -> None:
        await asyncio.sleep(n * self.candle_s)

    async def _predictions(self) -> None:
        start = await self.sim.time_ms()
        await self._candles(self.o.candles)
        entries = read_query(
            self.db,
            "SELECT COUNT(*) FROM orders WHERE role = 'entry' AND created_at >= ?",
            (start,),
        )
        self.report.phases["predictions"] = {"candles": self.o.candles, "entries": entries[0][0]}

    async def _wait_position(self, symbol: str) -> dict[str, Any]:
        """The venue's position on ``symbol`` once the daemon holds one, protected."""
        found: dict[str, Any] = {}

        async def held() -> bool:
            state = await self.sim.state()
            for p in state["accounts"][0]["positions"]:
                if p["symbol"] == venue_id(symbol) and not unprotected(state):
                    found.update(p)
                    return True
            return False

        await wait_for(held, 30 * self.candle_s + 10, f"a protected {symbol} position")
        return found

    async def _protected_again(self, what: str) -> float:
        """Seconds until the strict definition holds again after ``what``."""

        async def ok() -> bool:
            return not unprotected(await self.sim.state())

        return await wait_for(ok, 3 * self.candle_s + 5, f"protected after {what}", every_s=0.02)

    async def _hand_changes(self) -> None:
        hands, symbol = self._hands(), SYMBOLS[0]
        self.oracle.answer = steady_answer("long", 0.9)
        position = await self._wait_position(symbol)
        self.oracle.answer = steady_answer("neutral", 0.1)  # below threshold: the daemon holds
        qty = abs(Decimal(position["qty"]))
        times = {}
        await hands.market(symbol, "sell", qty * 2)
        times["opposite position by hand"] = await self._protected_again("a hand flip")
        await hands.market(symbol, "sell", qty)
        times["size doubled by hand"] = await self._protected_again("a hand increase")
        await hands.cancel_stops(symbol)
        times["stop cancelled by hand"] = await self._protected_again("a cancelled stop")
        await hands.leverage(symbol, 125)
        times["leverage 125x by hand"] = await wait_for(
            self._leverage_is(symbol, 1), 3 * self.candle_s + 5, "leverage set back"
        )
        await hands.close_all(symbol)
        times["closed by hand"] = await wait_for(
            flat_in_db(self.db, symbol), 3 * self.candle_s + 5, "hand close booked"
        )
        self.report.phases["hands"] = {k: round(v, 3) for k, v in times.items()}

    def _leverage_is(self, symbol: str, leverage: int) -> Any:
        async def check() -> bool:
            [account] = (await self.sim.state())["accounts"]
            return int(account["leverage"].get(venue_id(symbol), 0)) == leverage

        return check

    def _hands(self) -> Hands:
        if self.hands is None:
            raise RuntimeError("not started")
        return self.hands

    async def _second_daemon(self) -> None:
        self.oracle.answer = steady_answer("long", 0.9)
        for symbol in SYMBOLS:
            await self._wait_position(symbol)
        same_db = await self._another_daemon("same-db", self.db)
        other_db = await self._another_daemon("other-db", self.workdir / "second.sqlite")
        self.report.phases["second daemon"] = {"same database": same_db, "other database": other_db}

    async def _another_daemon(self, name: str, db: Path) -> dict[str, Any]:
        port = free_port()
        config = write_daemon_config(
            self.workdir / f"{name}.toml",
            sim_url=self.sim.url,
            oracle_url=self.oracle.url,
            db=db,
            ops_port=port,
            speed=self.o.speed,
            symbols=SYMBOLS,
            instance=INSTANCE,
        )
        log = self.workdir / f"{name}.log"
        second = DaemonProcess(config, daemon_env(TOKEN), port, log)
        self.others.append(second)
        before = len((await self.sim.state())["orders"])
        second.start()
        if db == self.db:  # refused at once, naming the daemon that holds the database
            process = second.process
            code = await asyncio.to_thread(process.wait, 60) if process else None
            return {"exit_code": code, "says": log.read_text().strip().splitlines()[-1:]}
        await second.wait_ready(60)
        await self._candles(6)
        after = len((await self.sim.state())["orders"])
        code = await second.terminate()
        alerts = read_query(
            db, "SELECT COUNT(*) FROM events WHERE message LIKE ?", ("%another trader%",)
        )
        return {"exit_code": code, "orders_sent": after - before, "suspension_alerts": alerts[0][0]}

    async def _full_disk(self, daemon: DaemonProcess) -> None:
        if not self.mounted:
            self.report.phases["disk"] = {"skipped": "no permission to mount a tmpfs"}
            return
        entries = self._entries_on_venue
        ballast = self.disk / "ballast"
        truncate_wal(self.db)  # else the WAL's spare room would absorb writes for a long time
        run_command(["dd", "if=/dev/zero", f"of={ballast}", "bs=4k"])  # stops at "No space left"
        before = await entries()
        refused = await wait_for(
            lambda: not_ready_because_of_disk(daemon), 10 * self.candle_s + 10, "readyz says disk"
        )
        await self._hands().cancel_stops(SYMBOLS[0])
        back = await self._protected_again("a stop cancelled on a full disk")
        self._down = True
        await daemon.kill()
        await self._hands().cancel_stops(SYMBOLS[1])
        daemon.start()
        after_restart = await self._protected_again("a restart on a full disk")
        self._down = False
        await self._candles(3)
        new_entries = await entries() - before
        ballast.unlink()
        ready = await daemon.wait_ready(60)
        self.report.phases["disk"] = {
            "not_ready_after_s": round(refused, 3),
            "stop_back_s": round(back, 3),
            "protected_after_restart_s": round(after_restart, 3),
            "entries_while_full": new_entries,
            "ready_after_freeing_s": round(ready, 3),
        }

    async def _entries_on_venue(self) -> int:
        state = await self.sim.state()
        return sum(1 for o in state["orders"] if o["client_id"].startswith("tbE"))

    async def _finish(self, daemon: DaemonProcess) -> None:
        await self.sim.clock(running=False)
        await asyncio.sleep(1.0)
        code = await daemon.terminate()
        state = await self.sim.state()
        (self.workdir / "sim-state.json").write_text(json.dumps(state))  # for a post-mortem
        db = read_db(self.db)
        findings = compare(state, db, INSTANCE, INITIAL, self._hands().placed)
        self.report.findings = {
            "duplicate_orders": len(findings.duplicates),
            "unknown_orders": len(findings.unknown),
            "mismatches": len(findings.mismatches),
            "bookkeeping_equal": db.booked_pnl == db.realized,
            "max_entries_per_hour": entries_per_hour(state),
            "stops_out_of_bounds": stops_out_of_bounds(self.db),
            "entries_on_absurd_prices": absurd_entries(state, db, INSTANCE),
            "final_exit_code": code,
            "details": {
                "duplicates": findings.duplicates[:20],
                "unknown": findings.unknown[:20],
                "mismatches": findings.mismatches[:20],
                "unprotected_at_end": findings.unprotected,
            },
        }


async def run_hostile(options: HostileOptions) -> HostileReport:
    """Run it in ``options.workdir`` (a temporary folder, kept, when None)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tbotd-hostile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return await Hostile(options, workdir).run()
