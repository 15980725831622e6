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

from tbotd.config import Settings
from tbotd.daemon.cycle import CycleReport
from tbotd.daemon.lifecycle import Daemon
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.ops.logs import get_logger
from tbotd.sim import SimConfig, SimExchange
from tbotd.store import Store
from tbotd.strategy.build import build_strategy

log = get_logger(__name__)
TRAIN_BARS = 20_000
HISTORY_DAYS = 75  # the generator's "now" starts this long after its origin: history to train on


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
    keep_open: bool = False  # serve the dashboard after the last cycle until Ctrl-C


def demo_config_text() -> str:
    """The embedded demo config (``configs/demo.toml`` is the same file)."""
    return (resources.files("tbotd") / "data" / "demo.toml").read_text(encoding="utf-8")


def demo_settings(options: DemoOptions, sim_url: str, models_dir: Path | None) -> Settings:
    """The demo config with the sim's URL, the output folder and the acceleration filled in."""
    text = options.config.read_text() if options.config else demo_config_text()
    data: dict[str, Any] = tomllib.loads(text)
    data.setdefault("exchange", {})["base_url"] = sim_url
    data.setdefault("store", {})["path"] = str(options.out / "demo.sqlite")
    daemon = data.setdefault("daemon", {})
    daemon["time_scale"] = options.speed
    daemon.setdefault("candle_wait_s", 60.0)  # exchange seconds: a few sim ticks at any speed
    data.setdefault("ops", {})["port"] = 0
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


def train_models(
    sim: SimExchange,
    out: Path,
    progress: Callable[[str, int, int], None] | None,
    asset: str = "BTC",
) -> Path:
    """Small local models trained on the sim's history before "now" (never after it)."""
    from tbotd.ml.data import CandleData
    from tbotd.ml.device import resolve_device
    from tbotd.ml.output import write_model_dir
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig

    now_ms = sim.engine.now_ms
    bars = sim.markets[asset].bars(now_ms - TRAIN_BARS * 300_000, now_ms - now_ms % 300_000)
    frame = pd.DataFrame(
        {
            "open_time": [b.open_ms for b in bars],
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
        }
    )
    data = CandleData(frame, "tbotd sim history", "5m", 0)
    models = out / "models"
    shutil.rmtree(models, ignore_errors=True)
    write_model_dir(
        data,
        TrainConfig(fit=FitConfig(epochs=4, seed=0), folds=2),
        resolve_device("auto"),
        models,
        progress,
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
    url = await sim.start("127.0.0.1", 0)
    try:
        configured = demo_settings(options, url, None).ml.models_dir
        if configured is not None and not configured.is_dir():
            configured = None  # e.g. a shipped config's "models/usdt": train the demo's own
        models = configured or await asyncio.to_thread(
            train_models, sim, options.out, train_progress
        )
        settings = demo_settings(options, url, models)
        daemon: Daemon

        def counted(report: CycleReport) -> None:
            if daemon.cycles == 1 and on_url is not None and daemon.ops_url:
                on_url(daemon.ops_url)  # ready and cycling: the page has something to show
            if on_cycle is not None:
                on_cycle(report)
            if daemon.cycles >= options.cycles:
                daemon.request_stop("demo finished")

        daemon = Daemon(settings, on_cycle=counted)
        code = await daemon.run()
    finally:
        await sim.stop()
    summary = summarise(Path(settings.store.path), settings, daemon.cycles)
    summary["exit_code"] = code
    plot_equity(Path(settings.store.path), options.out / "equity.png")
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


def plot_equity(db: Path, path: Path) -> None:
    """Equity over the run with entries (▲ long, ▼ short) and exits (●) marked."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    store = Store.open(db)
    try:
        rows = store.query("SELECT time, equity FROM equity ORDER BY time")
        trades = store.trades()
        entries = [
            (o.created_at, o.side.value)
            for o in store.orders()
            if o.role.value == "entry" and o.state.value == "filled"
        ]
    finally:
        store.close()
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    times = [ms_to_datetime(r["time"]) for r in rows]
    values = [float(r["equity"]) for r in rows]
    ax.plot(times, values, color="tab:blue", label="equity")  # type: ignore[arg-type]
    for at, side in entries:
        y = _value_at(times, values, at)
        ax.scatter(
            [at],  # type: ignore[arg-type]  # matplotlib plots datetimes; its stubs say floats
            [y],
            marker="^" if side == "buy" else "v",
            color="tab:green" if side == "buy" else "tab:red",
            zorder=3,
        )
    for trade in trades:
        ax.scatter(
            [trade.exit_time],  # type: ignore[arg-type]
            [_value_at(times, values, trade.exit_time)],
            marker="o",
            color="black",
            s=12,
            zorder=3,
        )
    ax.set_title("tbotd demo: equity (▲ long entry, ▼ short entry, ● exit)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _value_at(times: list[Any], values: list[float], at: Any) -> float:
    if not values:
        return 0.0
    ms = datetime_to_ms(at)
    best = min(range(len(times)), key=lambda i: abs(datetime_to_ms(times[i]) - ms))
    return values[best]
