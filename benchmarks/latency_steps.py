"""Where a cycle's time goes, on the venue's timeline (used by ``latency_bench.py``).

The daemon side stamps ``time.monotonic()`` by wrapping what every version of the daemon has
(the scheduler's job ``Daemon._tick``, ``App.resync_clock``, ``Cycle.run``, ``Cycle._decide``)
and reads the cycle's own lap timings (``CycleReport.timings_ms``); the venue stamps the close's
publication and each entry order's arrival with the same system-wide monotonic clock. So the
same benchmark measures the code before and after a change.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tbotd.domain.values import datetime_to_ms


@dataclass
class CycleStamps:
    """One cycle's monotonic stamps (seconds) and CPU time."""

    fire: float
    cpu_fire: float
    resync_s: float = 0.0
    run_start: float | None = None
    decided: float | None = None
    end: float | None = None
    cpu_end: float | None = None
    laps_ms: dict[str, float] = field(default_factory=dict)


class Steps:
    """Stamps every cycle of one daemon; ``skip`` first cycles are warm-up."""

    def __init__(self, step_ms: int, skip: int) -> None:
        self.step_ms, self.skip = step_ms, skip
        self.cycles: dict[int, CycleStamps] = {}  # close boundary (ms) → stamps
        self.order: list[int] = []
        self._current: CycleStamps | None = None
        self._patched = False

    def attach(self, daemon: Any) -> None:
        """Wrap the daemon's scheduled job; the app's parts are wrapped at the first fire."""
        tick = daemon._tick

        async def timed_tick() -> None:
            self._current = CycleStamps(time.monotonic(), time.process_time())
            if not self._patched and daemon.app is not None:
                self._patch(daemon.app)
            await tick()

        daemon._tick = timed_tick

    def _patch(self, app: Any) -> None:
        self._patched = True
        resync, run, decide = app.resync_clock, app.cycle.run, app.cycle._decide

        async def timed_resync() -> None:
            start = time.monotonic()
            await resync()
            current = self._current
            if current is not None and current.run_start is None and start >= current.fire:
                current.resync_s += time.monotonic() - start  # on the cycle's path

        async def timed_run(candle_time: datetime) -> Any:
            current = self._current
            if current is not None:
                current.run_start = time.monotonic()
            return await run(candle_time)

        def timed_decide(*args: Any, **kwargs: Any) -> Any:
            out = decide(*args, **kwargs)
            if self._current is not None:
                self._current.decided = time.monotonic()
            return out

        app.resync_clock, app.cycle.run, app.cycle._decide = timed_resync, timed_run, timed_decide

    def ended(self, report: Any) -> None:
        """The cycle's report (the daemon's on_cycle)."""
        current, self._current = self._current, None
        if current is None or current.run_start is None:
            return
        current.end = time.monotonic()
        current.cpu_end = time.process_time()
        current.laps_ms = dict(report.timings_ms)
        boundary = datetime_to_ms(report.candle_time) + self.step_ms
        self.cycles[boundary] = current
        self.order.append(boundary)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(statistics.median(values), 2), "p99": round(_p99(values), 2)}


def _lap_ends(start: float, laps_ms: dict[str, float]) -> dict[str, float]:
    """When each lap ended: the laps are consecutive durations in the order they were taken
    (``total`` and ``monitor`` are not laps)."""
    ends, t = {}, start
    for name, ms in laps_ms.items():
        if name in ("total", "monitor"):
            continue
        t += ms / 1000
        ends[name] = t
    return ends


def summary(symbols: int, steps: Steps, readings: dict[str, Any]) -> dict[str, Any]:
    """The figures of one symbol count: entry latencies, CPU, and the per-step timeline (ms
    after the close was published; ``resync`` is a duration)."""
    published = {int(k): v for k, v in readings["published"].items()}
    timed = [b for b in steps.order[steps.skip :] if b in published]
    arrivals: dict[int, list[float]] = {}
    for _symbol, boundary, at in readings["entries"]:
        if boundary in timed:
            arrivals.setdefault(boundary, []).append(at)
    samples = sorted((t - published[b]) * 1000 for b, ts in arrivals.items() for t in ts)
    cpu = [
        (c.cpu_end - c.cpu_fire) * 1000
        for c in (steps.cycles[b] for b in timed)
        if c.cpu_end is not None
    ]
    line: dict[str, list[float]] = {}
    for boundary, ts in arrivals.items():
        c, pub = steps.cycles[boundary], published[boundary]
        start = c.run_start or c.fire

        def at(moment: float | None, pub: float = pub) -> float | None:
            return None if moment is None else (moment - pub) * 1000

        done = _lap_ends(start, c.laps_ms)
        points = {
            "fire": at(c.fire),
            "resync (duration)": c.resync_s * 1000,
            "cycle start": at(start),
            "candles": at(done.get("candles")),
            "predictions": at(done.get("predict")),
            "risk": at(done.get("risk")),
            "decisions": at(c.decided),
            "first order": at(min(ts)),
            "last order": at(max(ts)),
            "orders done": at(done.get("decide+execute", done.get("execute"))),
        }
        for name, value in points.items():
            if value is not None:
                line.setdefault(name, []).append(value)
    whole = None
    if len(timed) >= 2:
        first, last = steps.cycles[timed[0]], steps.cycles[timed[-1]]
        if first.cpu_end is not None and last.cpu_end is not None:
            whole = round((last.cpu_end - first.cpu_end) * 1000 / (len(timed) - 1), 1)
    return {
        "symbols": symbols,
        "figures": {
            "p50_ms": round(statistics.median(samples), 2) if samples else None,
            "p99_ms": round(_p99(samples), 2) if samples else None,
            "max_ms": round(samples[-1], 2) if samples else None,
            "samples": len(samples),
            "cpu_ms_per_cycle": round(statistics.mean(cpu), 2) if cpu else None,
        },
        "cycles_timed": len(timed),
        "entry_cycles": len(arrivals),
        "cpu_ms_per_cycle_whole_run": whole,
        "venue_cpu_s": round(readings.get("cpu_s", 0.0), 2),
        "steps_ms_after_publish": {k: _spread(v) for k, v in line.items()},
    }
