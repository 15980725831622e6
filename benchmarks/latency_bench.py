"""Decision latency of the daemon against the local exchange, the venue in its own process.

    python benchmarks/latency_bench.py [--symbols 1,20,50] [--cycles 40] [--json]
                                       [--in-process] [--rss-cycles 0] [--models DIR]

Latency: from the moment the venue *publishes* a candle's close (its websocket tick that
crosses the boundary) to the moment the venue *receives* each entry order the cycle for that
candle sends — feed, store, local CPU models (the real FallbackPredictor chain with models this
benchmark trains on the sim's history), strategy, live broker, ccxt, HTTP. By default the venue
(`tbotd sim`'s :class:`SimExchange`, with a stopwatch in front of its routes) runs in a child
process, as a real exchange is another machine; ``--in-process`` runs it on the daemon's event
loop as the benchmark used to (its figures then include the sim's own work, and say so). Both
processes stamp ``time.monotonic()`` (one system-wide clock on Linux), so a cycle's steps are put
on the venue's timeline: fire (the scheduler's job starts), resync (the clock request, when it is
on the cycle's path), cycle start, candles, predictions, risk, decisions (the last one recorded),
first and last entry order received by the venue, cycle end.

To have an entry to time in every other cycle, the predictions of the real models are turned
into "long" on even candles and "neutral" on odd ones (on_neutral=close), confidence 1: the
inference cost is real, only the signal is scripted. The market replays at 60×, a 5-minute
candle takes 5 s of wall time; the venue streams every ``--tick-s`` (0.01 s: a close reaches the
daemon within 10 ms of the boundary).

``--json``: the last line of stdout is one JSON object, per symbol count
``{"p50_ms", "p99_ms", "max_ms", "samples", "cpu_ms_per_cycle"}`` — ``cpu_ms_per_cycle`` is the
daemon process's CPU time (``time.process_time``) from a cycle's fire to its end, averaged over
the timed cycles. The lines before it are the detail (steps, whole-run CPU, memory).

Memory (``--rss-cycles N``): the daemon (paper mode, the same models) runs N cycles at 3000×
against an in-process sim and its RSS is sampled after every cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.latency_steps import Steps, summary  # noqa: E402 - after the path set-up
from tbotd.config import Settings  # noqa: E402
from tbotd.daemon.cycle import CycleReport  # noqa: E402
from tbotd.daemon.demo import DemoOptions, train_models  # noqa: E402
from tbotd.daemon.lifecycle import Daemon  # noqa: E402
from tbotd.domain import Candle, MarketType, Signal  # noqa: E402
from tbotd.domain.values import datetime_to_ms  # noqa: E402
from tbotd.ops.logs import configure_logging  # noqa: E402
from tbotd.predictor.fallback import FallbackPredictor  # noqa: E402
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimExchange  # noqa: E402
from tbotd.sim.instruments import Instrument  # noqa: E402

STEP_MS = 300_000
SPEED = 60.0


def instruments(n: int) -> tuple[Instrument, ...]:
    """``n`` linear contracts on independent generated price series."""
    return tuple(
        Instrument(
            f"S{i:02d}USDT",
            MarketType.LINEAR,
            f"S{i:02d}",
            "USDT",
            "USDT",
            f"S{i:02d}",
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("0.001"),
            Decimal(100000),
            Decimal(5),
            Decimal(1),
        )
        for i in range(n)
    )


def venue_config(symbols: int, tick_s: float) -> SimConfig:
    config = SimConfig(
        seed=5,
        speed=SPEED,
        tick_s=tick_s,
        instruments=instruments(symbols),
        balances={"USDT": Decimal(10**7)},
        slippage_bps=Decimal(0),
    )
    return replace(config, start=config.origin + timedelta(days=40))


class Stopwatch:
    """Monotonic times of closes published and of entry orders received, inside the venue."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.published: dict[int, float] = {}
        self.entries: dict[tuple[str, int], float] = {}
        original = sim.hub.publish_klines

        def publish() -> None:
            boundary = sim.engine.now_ms - sim.engine.now_ms % STEP_MS
            self.published.setdefault(boundary, time.monotonic())
            original()

        sim.hub.publish_klines = publish  # type: ignore[method-assign]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        placed = request.method == "POST" and request.path.endswith("/fapi/v1/order")
        if placed and response.status == 200 and isinstance(response, web.Response):
            order = json.loads(response.body or b"{}")  # type: ignore[arg-type]
            if not order.get("reduceOnly"):
                now = self.sim.engine.now_ms
                self.entries.setdefault((str(order.get("symbol")), now - now % STEP_MS), arrived)
        return response

    def as_json(self) -> dict[str, Any]:
        return {
            "published": {str(k): v for k, v in self.published.items()},
            "entries": [[s, b, t] for (s, b), t in self.entries.items()],
            "cpu_s": time.process_time(),
        }

    async def serve(self, _request: web.Request) -> web.Response:
        return web.json_response(self.as_json())


class TimedSim(SimExchange):
    """The sim with the stopwatch in front of every route, and its readings at /bench."""

    stopwatch: Stopwatch

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self.stopwatch.middleware)
        app.router.add_get("/bench/stopwatch", self.stopwatch.serve)
        return app


def timed_sim(symbols: int, tick_s: float) -> TimedSim:
    sim = TimedSim(venue_config(symbols, tick_s))
    sim.stopwatch = Stopwatch(sim)
    return sim


async def serve_venue(symbols: int, tick_s: float) -> None:
    """The child process: the venue, its URL on stdout, until SIGTERM."""
    configure_logging("error", "json", sys.stderr)
    sim = timed_sim(symbols, tick_s)
    url = await sim.start("127.0.0.1", 0)
    print(url, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await sim.stop()


class Venue:
    """The venue under test: a child process (default) or on this event loop."""

    def __init__(self, symbols: int, tick_s: float, in_process: bool) -> None:
        self.symbols, self.tick_s, self.in_process = symbols, tick_s, in_process
        self.sim: TimedSim | None = None
        self.child: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> str:
        if self.in_process:
            self.sim = timed_sim(self.symbols, self.tick_s)
            self.url = await self.sim.start("127.0.0.1", 0)
            return self.url
        command = [__file__, "--serve-venue", str(self.symbols), "--tick-s", str(self.tick_s)]
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdout=asyncio.subprocess.PIPE
        )
        line = (await self.child.stdout.readline()).decode() if self.child.stdout else ""
        if not line.startswith("http"):
            raise RuntimeError(f"the venue process did not start: {line!r}")
        self.url = line.strip()
        return self.url

    async def readings(self) -> dict[str, Any]:
        if self.sim is not None:
            return self.sim.stopwatch.as_json()
        async with ClientSession() as http, http.get(self.url + "/bench/stopwatch") as answer:
            readings: dict[str, Any] = await answer.json()
            return readings

    async def stop(self) -> None:
        if self.sim is not None:
            await self.sim.stop()
        if self.child is not None:
            self.child.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.child.wait(), 10)


@dataclass
class Scripted:
    """The real prediction chain, its signal scripted: long on even candles, else neutral."""

    inner: FallbackPredictor

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> dict[str, Any]:
        outcomes = await self.inner.predict(histories, candle_time)
        even = (datetime_to_ms(candle_time) // STEP_MS) % 2 == 0
        signal_ = Signal.LONG if even else Signal.NEUTRAL
        return {
            s: replace(
                o,
                prediction=o.prediction.model_copy(
                    update={
                        "signal": signal_,
                        "confidence": 1.0,
                        "sd": 0.01,
                        "take_profit": None,
                        "stop_loss": None,
                    }
                ),
            )
            for s, o in outcomes.items()
        }

    async def warm_up(self, histories: Mapping[str, Sequence[Candle]]) -> None:
        await self.inner.warm_up(histories)

    async def close(self) -> None:
        await self.inner.close()


def settings_for(
    url: str, symbols: list[str], models: Path, db: Path, speed: float, mode: str
) -> Settings:
    return Settings.model_validate(
        {
            "instance": "bench",
            "exchange": {
                "id": "binanceusdm",
                "market_type": "linear",
                "symbols": symbols,
                "base_url": url,
                "api_key": DEMO_API_KEY,
                "api_secret": DEMO_API_SECRET,
            },
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "1000000",
                "threshold": 0.0,
            },
            "ml": {"models_dir": str(models), "deadline_s": 2.0},
            "execution": {"mode": mode, "position_fraction": "0.5"},
            "store": {"path": str(db)},
            "ops": {"port": 0},
            "daemon": {"time_scale": speed, "candle_wait_s": 60},
        }
    )


async def run_daemon(
    settings: Settings, cycles: int, on_cycle: Any = None, steps: Steps | None = None
) -> Daemon:
    inner = FallbackPredictor.from_settings(settings)
    daemon: Daemon

    def counted(report: CycleReport) -> None:
        if steps is not None:
            steps.ended(report)
        if on_cycle is not None:
            on_cycle(report)
        if daemon.cycles >= cycles:
            daemon.request_stop("benchmark done")

    daemon = Daemon(settings, predictor=Scripted(inner), on_cycle=counted)
    if steps is not None:
        steps.attach(daemon)
    await daemon.run()
    return daemon


async def latency(
    symbols: int, args: argparse.Namespace, models: Path, work: Path
) -> dict[str, Any]:
    venue = Venue(symbols, args.tick_s, args.in_process)
    url = await venue.start()
    steps = Steps(STEP_MS, skip=2)
    try:
        names = [f"S{i:02d}/USDT:USDT" for i in range(symbols)]
        db = work / f"latency-{symbols}-{os.getpid()}.sqlite"
        settings = settings_for(url, names, models, db, SPEED, "live")
        await run_daemon(settings, args.cycles, steps=steps)
        readings = await venue.readings()
    finally:
        await venue.stop()
    return summary(symbols, steps, readings)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory(cycles: int, models: Path, work: Path) -> dict[str, Any]:
    config = SimConfig(seed=6, speed=3000.0, tick_s=0.01, instruments=instruments(1))
    config = replace(config, start=config.origin + timedelta(days=40))
    sim = SimExchange(config)
    url = await sim.start("127.0.0.1", 0)
    samples: list[int] = []
    try:
        settings = settings_for(
            url, ["S00/USDT:USDT"], models, work / "rss.sqlite", 3000.0, "paper"
        )
        await run_daemon(settings, cycles, lambda _r: samples.append(rss_kib()))
    finally:
        await sim.stop()
    steady = samples[100:] or samples
    n = len(steady)
    mean_x, mean_y = (n - 1) / 2, sum(steady) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(steady)) / max(
        sum((i - mean_x) ** 2 for i in range(n)), 1
    )
    return {
        "cycles": len(samples),
        "rss_start_mib": round(steady[0] / 1024, 1),
        "rss_end_mib": round(steady[-1] / 1024, 1),
        "rss_max_mib": round(max(steady) / 1024, 1),
        "slope_mib_per_1000_cycles": round(slope * 1000 / 1024, 2),
    }


def trained_models(work: Path) -> Path:
    """Small local models on the sim's own history (model size does not depend on it)."""
    trainer = SimExchange(replace(SimConfig(seed=5), start=SimConfig().origin + timedelta(days=40)))
    options = DemoOptions(cycles=0, speed=SPEED, mode="paper", data=None, out=work)
    return train_models(trainer, options, "5m", None)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging(os.environ.get("BENCH_LOG", "error"), "json", sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = args.models or trained_models(work)
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
            f"python {platform.python_version()}, {os.cpu_count()} cpus",
            "venue": "in this process (the sim's work is inside every figure)"
            if args.in_process
            else "its own process",
            "tick_s": args.tick_s,
            "latency": [await latency(n, args, models, work) for n in args.symbols],
        }
        if args.rss_cycles:
            result["memory"] = await memory(args.rss_cycles, models, work)
        return result


def symbol_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1 or max(counts) > 99:
        raise argparse.ArgumentTypeError("symbol counts between 1 and 99, e.g. 1,20,50")
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=symbol_counts, default=[1, 20, 50])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--tick-s", type=float, default=0.01)
    parser.add_argument("--in-process", action="store_true", help="the venue on this loop")
    parser.add_argument("--rss-cycles", type=int, default=0)
    parser.add_argument("--models", type=Path, help="models directory to reuse (else trained)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-venue", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_venue:
        asyncio.run(serve_venue(arguments.serve_venue, arguments.tick_s))
        sys.exit(0)
    out = asyncio.run(main(arguments))
    print(json.dumps(out, indent=2))
    if arguments.json:
        print(json.dumps({str(r["symbols"]): r["figures"] for r in out["latency"]}))
