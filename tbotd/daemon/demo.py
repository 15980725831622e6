"""`tbotd demo`: the whole product in a minute, with no account and no internet.

It starts the local exchange in-process (the bundled generator, or a CSV of candles) running
accelerated, trains small local models on the history before "now" unless the config names a
model directory that exists, runs the real daemon against it (paper broker, or the live broker
through ccxt → sim) for N cycles, and writes a summary, an equity-curve PNG and the database under
``--out``. Nothing here is a second implementation: the daemon is :class:`Daemon` itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from tbotd.config import Settings, load_settings
from tbotd.config.loader import read_toml
from tbotd.daemon.cycle import CycleReport
from tbotd.daemon.lifecycle import Daemon
from tbotd.domain.values import timeframe_delta
from tbotd.ops.logs import get_logger
from tbotd.ops.signals import check_stop
from tbotd.sim import SimConfig, SimExchange
from tbotd.store import Store
from tbotd.strategy.build import build_strategy

log = get_logger(__name__)
TRAIN_BARS = 20_000
HISTORY_DAYS = 75  # the generator's "now" starts this long after its origin: history to train on
_AFTER_CLOSE_MS = 1_000  # each lockstep step stops this far into the next candle


@dataclass(frozen=True)
class DemoOptions:
    """What the user asked for on the command line."""

    cycles: int
    speed: float
    mode: str  # "paper" | "live-sim"
    data: Path | None
    out: Path
    config: Path | None = None
    seed: int = 7
    threads: int | None = None  # None: auto, 1 for these small MLPs (also the reproducible one)
    keep_open: bool = False  # serve the dashboard after the last cycle until Ctrl-C


def demo_config_text() -> str:
    """The embedded demo config (``configs/demo.toml`` is the same file)."""
    return (resources.files("tbotd") / "data" / "demo.toml").read_text(encoding="utf-8")


def demo_settings(options: DemoOptions, sim_url: str, models_dir: Path | None) -> Settings:
    """The demo config with the sim's URL, the output folder and the acceleration filled in.

    A user's ``--config`` is first checked as `tbotd run` would check it, so a mistake in it is
    the loader's one line per problem (exit 2), never a traceback.
    """
    if options.config is not None:
        load_settings(options.config)
        data = read_toml(options.config)
    else:
        data = tomllib.loads(demo_config_text())
    data.setdefault("exchange", {})["base_url"] = sim_url
    data.setdefault("store", {})["path"] = str(options.out / "demo.sqlite")
    daemon = data.setdefault("daemon", {})
    daemon["time_scale"] = 1.0  # re-anchored on the sim's paused clock at every lockstep cycle
    data.setdefault("ops", {})["port"] = 0
    # in lockstep the market waits for the daemon: a wall-clock deadline would only turn a slow
    # local prediction on a loaded machine into a neutral one, and the run into another run
    data.setdefault("ml", {})["deadline_s"] = 120.0
    data.setdefault("execution", {})["mode"] = "live" if options.mode == "live-sim" else "paper"
    if models_dir is not None:
        data.setdefault("ml", {})["models_dir"] = str(models_dir)
    if options.mode == "live-sim":
        from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET

        data["exchange"]["api_key"] = DEMO_API_KEY
        data["exchange"]["api_secret"] = DEMO_API_SECRET
    return Settings.model_validate(data)


def start_sim(options: DemoOptions) -> SimExchange:
    """The local exchange, replaying accelerated from a point with history behind it."""
    config = SimConfig(data=options.data, seed=options.seed, speed=options.speed, tick_s=0.05)
    if options.data is None:
        config = replace(config, start=config.origin + timedelta(days=HISTORY_DAYS))
    return SimExchange(config)


def training_frame(sim: SimExchange, timeframe: str, asset: str = "BTC") -> pd.DataFrame:
    """The last ``TRAIN_BARS`` closed candles of the daemon's own timeframe before "now".

    The same candles the daemon will be fed (the sim's base bars are one minute: training on
    those would teach a 12-minute horizon to a model then asked about 5-minute candles).
    """
    step = int(timeframe_delta(timeframe).total_seconds() * 1000)
    now_ms = sim.engine.now_ms
    last_open = now_ms - now_ms % step - step
    rows = sim.markets[asset].klines(
        step, now_ms, last_open - (TRAIN_BARS - 1) * step, last_open, limit=TRAIN_BARS
    )
    return pd.DataFrame(
        {
            "open_time": [k.open_ms for k in rows],
            "open": [float(k.open) for k in rows],
            "high": [float(k.high) for k in rows],
            "low": [float(k.low) for k in rows],
            "close": [float(k.close) for k in rows],
            "volume": [float(k.volume) for k in rows],
        }
    )


def train_models(
    sim: SimExchange,
    options: DemoOptions,
    timeframe: str,
    progress: Callable[[str, int, int], None] | None,
) -> Path:
    """Small local models trained on the sim's history before "now" (never after it).

    The sim's clock is paused meanwhile, so trading starts at the first candle after the
    training data however long training takes; seeded and single-threaded by default, so the
    same command trains the same weights.
    """
    from tbotd.ml.data import CandleData
    from tbotd.ml.device import auto_threads, resolve_device, set_threads
    from tbotd.ml.output import write_model_dir
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig

    fit = FitConfig(epochs=4, seed=options.seed)
    set_threads(options.threads or auto_threads(fit.hidden, fit.batch_size))
    data = CandleData(training_frame(sim, timeframe), "tbotd sim history", timeframe, 0)

    def reported(what: str, done: int, total: int) -> None:
        check_stop()  # SIGTERM while training: stop between epochs, not after the last one
        if progress is not None:
            progress(what, done, total)

    models = options.out / "models"
    shutil.rmtree(models, ignore_errors=True)
    write_model_dir(
        data,
        TrainConfig(fit=fit, folds=2),
        resolve_device("auto"),
        models,
        reported,
    )
    return models


async def run_demo(
    options: DemoOptions,
    train_progress: Callable[[str, int, int], None] | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
    on_url: Callable[[str], None] | None = None,
    on_summary: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Sim + models + daemon for ``options.cycles`` cycles; returns the summary.

    ``on_url`` hears the dashboard's URL after the first cycle; with ``keep_open`` the
    summary goes to ``on_summary`` and the dashboard stays up (read from the database) until
    SIGINT or SIGTERM."""
    options.out.mkdir(parents=True, exist_ok=True)
    for stale in options.out.glob("demo.sqlite*"):
        stale.unlink()
    sim = start_sim(options)
    sim.clock.pause()  # market time moves only in lockstep with the daemon (see below)
    url = await sim.start("127.0.0.1", 0)
    try:
        configured = demo_settings(options, url, None)
        models = configured.ml.models_dir if options.config is not None else None
        if models is not None and not models.is_dir():
            models = None  # e.g. a shipped config's "models/usdt": train the demo's own
        models = models or await asyncio.to_thread(
            train_models, sim, options, configured.exchange.timeframe, train_progress
        )
        settings = demo_settings(options, url, models)
        daemon: Daemon

        def counted(report: CycleReport) -> None:
            if daemon.cycles == 1 and on_url is not None and daemon.ops_url:
                on_url(daemon.ops_url)  # ready and cycling: the page has something to show
            if on_cycle is not None:
                on_cycle(report)

        daemon = Daemon(settings, on_cycle=counted, scheduled=False)
        code = await _run_in_lockstep(daemon, sim, options)
    finally:
        await sim.stop()
    summary = summarise(Path(settings.store.path), settings, daemon.cycles)
    summary["models"] = (
        f"trained here on the {TRAIN_BARS:,} {settings.exchange.timeframe} candles before the "
        "first traded one (small, seconds of training on a synthetic market: the machinery, "
        "not an edge)"
        if models == options.out / "models"
        else f"from {models}"
    )
    summary["exit_code"] = code
    plot_equity(Path(settings.store.path), options.out / "equity.png", settings)
    summary["files"] = {
        "database": str(settings.store.path),
        "plot": str(options.out / "equity.png"),
        "summary": str(options.out / "summary.json"),
    }
    (options.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if options.keep_open and daemon.ops_url:
        summary["dashboard"] = daemon.ops_url
        await keep_dashboard_open(daemon, lambda: on_summary and on_summary(summary))
    return summary


async def _run_in_lockstep(daemon: Daemon, sim: SimExchange, options: DemoOptions) -> int:
    """Run the daemon with the market moving one candle per cycle, in step with it.

    The sim's clock stays paused; once the daemon is ready, each step streams the market up to
    just after the next candle close and runs the daemon's cycle for it. The decisions, fills and
    trades are therefore the same on a fast machine and a loaded one; ``speed`` only paces the
    steps for a watcher (a candle takes at least ``300 / speed`` wall seconds).
    """
    running = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    step_ms = int(timeframe_delta(daemon.settings.exchange.timeframe).total_seconds() * 1000)
    pace_s = step_ms / 1000 / options.speed
    loop = asyncio.get_running_loop()
    for _ in range(options.cycles):
        if running.done() or daemon.stop_requested.is_set():
            break
        started = loop.time()
        now_ms = sim.engine.now_ms
        await sim.advance_to(now_ms - now_ms % step_ms + step_ms + _AFTER_CLOSE_MS, step_s=60)
        await daemon.tick()
        await asyncio.sleep(max(0.0, pace_s - (loop.time() - started)))
    if not daemon.stop_requested.is_set():  # a second request would mean "exit at once"
        daemon.request_stop("demo finished")
    return await running


async def keep_dashboard_open(daemon: Daemon, listening: Callable[[], object]) -> None:
    """Serve the stopped demo's dashboard at the same URL until SIGINT or SIGTERM;
    ``listening`` is called once it answers."""
    import signal

    from tbotd.daemon.dashboard import DaemonDashboard
    from tbotd.ops.http import OpsServer
    from tbotd.ops.metrics import REGISTRY

    dashboard = DaemonDashboard(daemon)
    dashboard.stopped = f"the demo stopped after {daemon.cycles} cycles (shown from its database)"
    ops = daemon.settings.ops
    port = int(daemon.ops_url.rsplit(":", 1)[1])
    token = ops.token.get_secret_value() if ops.token else None

    async def stopped() -> dict[str, Any]:
        return {"instance": daemon.settings.instance, "stopped": dashboard.stopped}

    server = OpsServer(
        ops.host, port, token, REGISTRY, stopped, lambda: (False, "stopped"), dashboard
    )
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # replaces the stopped daemon's handlers
        loop.add_signal_handler(sig, done.set)
    await server.start()
    listening()
    try:
        await done.wait()
    finally:
        await server.stop()
        dashboard.close()


def summarise(db: Path, settings: Settings, cycles: int) -> dict[str, Any]:
    """cycles, predictions by source, trades, PnL, fees, equity — from the database."""
    store = Store.open(db)
    try:
        sources = {
            r["source"]: r["n"]
            for r in store.query(
                "SELECT source, COUNT(*) AS n FROM predictions GROUP BY source ORDER BY source"
            )
        }
        trades = store.trades()
        fees = sum((t.fees for t in trades), Decimal(0))
        pnl = sum((t.net for t in trades), Decimal(0))
        provenance = {
            r["p"]: r["n"]
            for r in store.query(
                "SELECT COALESCE(provenance, 'none') AS p, COUNT(*) AS n FROM decisions "
                "GROUP BY p ORDER BY p"
            )
        }
        rows = store.query("SELECT * FROM equity ORDER BY time DESC LIMIT 1")
        equity = rows[0]["equity"] if rows else str(settings.strategy.initial_capital)
        positions = len(store.positions())
    finally:
        store.close()
    return {
        "cycles": cycles,
        "strategy": build_strategy(settings).name,
        "decisions_by_provenance": provenance,
        "predictions_by_source": sources,
        "trades": len(trades),
        "open_positions": positions,
        "pnl": str(pnl),
        "fees": str(fees),
        "equity": equity,
        "currency": settings.strategy.share_class,
        "initial_capital": str(settings.strategy.initial_capital),
        "mode": str(settings.execution.mode),
    }


def plot_equity(db: Path, path: Path, settings: Settings) -> None:
    """Price with the trades and their stop/target levels, confidence against the threshold, and
    equity with entries (▲ long, ▼ short) and exits (●) marked."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tbotd.backtest.plot_market import MarketTrack, draw_confidence, draw_price

    symbol, timeframe = settings.exchange.symbols[0], settings.exchange.timeframe
    store = Store.open(db)
    try:
        rows = store.query("SELECT time, equity FROM equity ORDER BY time")
        trades = store.trades(symbol)
        first = rows[0]["time"] - 3_600_000 if rows else 0  # an hour of price before the first
        candles = store.query(
            "SELECT open_time, close FROM candles WHERE symbol = ? AND timeframe = ? "
            "AND open_time >= ? ORDER BY open_time",
            (symbol, timeframe, first),
        )
        predictions = store.query(
            "SELECT candle_time, confidence FROM predictions WHERE symbol = ? ORDER BY candle_time",
            (symbol,),
        )
    finally:
        store.close()
    track = MarketTrack(
        np.array([c["open_time"] for c in candles], dtype=np.int64),
        np.array([float(c["close"]) for c in candles]),
        np.array([p["candle_time"] for p in predictions], dtype=np.int64),
        np.array([float(p["confidence"]) for p in predictions]),
        settings.strategy.threshold,
    )
    fig, (price, confidence, equity) = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1, 2]}, dpi=100
    )
    draw_price(price, track, trades)
    draw_confidence(confidence, track)
    times = np.array([r["time"] for r in rows], dtype=np.int64).astype("datetime64[ms]")
    equity.plot(times, [float(r["equity"]) for r in rows], color="tab:blue", label="equity")
    equity.set_ylabel(f"equity ({settings.strategy.share_class})")
    price.set_title(
        f"tbotd demo {symbol}: {len(trades)} closed trades (toy models on a synthetic market)"
    )
    for ax in (price, confidence, equity):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
