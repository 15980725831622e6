"""Decision latency and steady-state memory of the daemon, against the local exchange.

    /work/venv/bin/python benchmarks/latency_bench.py [--json] [--cycles 60] [--rss-cycles 1500]

Latency: from the moment the sim *publishes* a candle's close (its websocket tick that crosses
the boundary) to the moment the sim *receives* the entry order that the cycle for that candle
sends — feed, stores, local CPU models (the real FallbackPredictor chain with the models this
benchmark trains on the sim's history), manager, live broker, ccxt, HTTP. Measured for 1 and 20
symbols. The sim and the daemon share this process and its event loop (the sim's own work is
inside the figure), the market replays at 60× so a 5-minute candle takes 5 s of wall time.

To have an entry to time in every other cycle, the predictions of the real models are turned
into "long" on even candles and "neutral" on odd ones (on_neutral=close), confidence 1: the
inference cost is real, only the signal is scripted.

Memory: the daemon (paper mode, the same models) runs ``--rss-cycles`` cycles at 3000× and its
resident set size is sampled after every cycle; the report gives the start (after 100 cycles of
warm-up), the end, the maximum and the slope per 1,000 cycles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tbotd.config import Settings  # noqa: E402 - after the path set-up
from tbotd.daemon.cycle import CycleReport  # noqa: E402
from tbotd.daemon.demo import train_models  # noqa: E402
from tbotd.daemon.lifecycle import Daemon  # noqa: E402
from tbotd.domain import Candle, MarketType, Signal  # noqa: E402
from tbotd.domain.values import datetime_to_ms  # noqa: E402
from tbotd.ops.logs import configure_logging  # noqa: E402
from tbotd.predictor.fallback import FallbackPredictor  # noqa: E402
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimExchange  # noqa: E402
from tbotd.sim.instruments import Instrument  # noqa: E402

STEP_MS = 300_000


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


class Stopwatch:
    """Wall times of closes published and of entry orders received, inside the sim."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.published: dict[int, float] = {}
        self.entries: dict[tuple[str, int], float] = {}
        original = sim.hub.publish_klines

        def publish() -> None:
            boundary = sim.engine.now_ms - sim.engine.now_ms % STEP_MS
            self.published.setdefault(boundary, time.perf_counter())
            original()

        sim.hub.publish_klines = publish  # type: ignore[method-assign]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.perf_counter()
        response = await handler(request)
        placed = request.method == "POST" and request.path.endswith("/fapi/v1/order")
        if placed and response.status == 200 and isinstance(response, web.Response):
            order = json.loads(response.body or b"{}")  # type: ignore[arg-type]
            if not order.get("reduceOnly"):
                now = self.sim.engine.now_ms
                self.entries.setdefault((str(order.get("symbol")), now - now % STEP_MS), arrived)
        return response

    def latencies_ms(self) -> list[float]:
        return [
            (t - self.published[boundary]) * 1000
            for (_symbol, boundary), t in self.entries.items()
            if boundary in self.published
        ]


class TimedSim(SimExchange):
    """The sim with the stopwatch's middleware in front of every route."""

    stopwatch: Stopwatch

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self.stopwatch.middleware)
        return app


@dataclass
class Scripted:
    """The real prediction chain, its signal scripted: long on even candles, else neutral."""

    inner: FallbackPredictor

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> dict[str, Any]:
        outcomes = await self.inner.predict(histories, candle_time)
        even = (datetime_to_ms(candle_time) // STEP_MS) % 2 == 0
        signal = Signal.LONG if even else Signal.NEUTRAL
        return {
            s: replace(
                o,
                prediction=o.prediction.model_copy(
                    update={
                        "signal": signal,
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


async def run_daemon(settings: Settings, cycles: int, on_cycle: Any = None) -> Daemon:
    inner = FallbackPredictor.from_settings(settings)
    daemon: Daemon

    def counted(report: CycleReport) -> None:
        if on_cycle is not None:
            on_cycle(report)
        if daemon.cycles >= cycles:
            daemon.request_stop("benchmark done")

    daemon = Daemon(settings, predictor=Scripted(inner), on_cycle=counted)
    await daemon.run()
    return daemon


async def latency(symbols: int, cycles: int, models: Path, work: Path) -> dict[str, Any]:
    config = SimConfig(
        seed=5,
        speed=60.0,
        tick_s=0.005,
        instruments=instruments(symbols),
        balances={"USDT": Decimal(10**7)},
        slippage_bps=Decimal(0),
    )
    config = replace(config, start=config.origin + timedelta(days=40))
    sim = TimedSim(config)
    sim.stopwatch = Stopwatch(sim)
    url = await sim.start("127.0.0.1", 0)
    try:
        names = [f"S{i:02d}/USDT:USDT" for i in range(symbols)]
        db = work / f"latency-{symbols}.sqlite"
        await run_daemon(settings_for(url, names, models, db, 60.0, "live"), cycles)
    finally:
        await sim.stop()
    samples = sorted(sim.stopwatch.latencies_ms())
    return {
        "symbols": symbols,
        "entries_timed": len(samples),
        "p50_ms": round(statistics.median(samples), 2) if samples else None,
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2)
        if samples
        else None,
        "max_ms": round(samples[-1], 2) if samples else None,
    }


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


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging(os.environ.get("BENCH_LOG", "error"), "json", sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trainer = SimExchange(
            replace(
                SimConfig(seed=5, instruments=instruments(1)),
                start=SimConfig().origin + timedelta(days=40),
            )
        )
        models = train_models(trainer, work, None, asset="S00")
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
            f"python {platform.python_version()}",
            "latency": [await latency(n, args.cycles, models, work) for n in (1, 20)],
        }
        if args.rss_cycles:
            result["memory"] = await memory(args.rss_cycles, models, work)
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--rss-cycles", type=int, default=1500)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    out = asyncio.run(main(arguments))
    print(json.dumps(out) if arguments.json else json.dumps(out, indent=2))
