"""The web dashboard: first paint and payloads on a year of data, and its load on the cycle.

``paint``: a database holding a year of 5-minute candles, predictions, decisions, trades and
equity for 5 symbols; the dashboard (the daemon's own ``DaemonDashboard``, over a stand-in for
the running daemon's memory) served by ``OpsServer``; the system's Chromium (Playwright) opens
it, and the page's own ``tbotd-painted`` mark (ML cards, chart, equity, trades and events drawn)
is read from the Performance API. Each load follows a data-version change, so the server reads
the database again (no cached answer).

``load``: `tbotd run` (live broker) against `tbotd sim` and the scripted oracle, a cycle every
5 s; the cycle's own decision time (``ms.total`` of its log line) with no page open, with one
real browser page, and with 20 pages (HTTP clients polling exactly as the page does).

    python benchmarks/dashboard_bench.py paint [--json]
    python benchmarks/dashboard_bench.py load [--cycles 12] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from tbotd.config import load_settings  # noqa: E402
from tbotd.daemon.dashboard import DaemonDashboard  # noqa: E402
from tbotd.ops.http import OpsServer  # noqa: E402
from tbotd.store import Store  # noqa: E402
from tests.integration.test_dashboard_browser import system_chromium  # noqa: E402

YEAR = 105_120
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT")
T0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
STEP = 300_000


def build_year(path: Path, trades_per_symbol: int = 2_000) -> None:
    """A year of candles, predictions and decisions per symbol, trades and equity."""
    Store.open(path).close()
    conn = sqlite3.connect(path)
    rng = np.random.default_rng(7)
    times = T0 + STEP * np.arange(YEAR)
    for n, symbol in enumerate(SYMBOLS):
        close = 100.0 * (n + 1) * np.exp(np.cumsum(rng.normal(0, 0.002, YEAR)))
        opens = np.concatenate([[close[0]], close[:-1]])
        high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.002, YEAR))
        low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.002, YEAR))
        conn.executemany(
            "INSERT INTO candles VALUES (?,?,?,?,?,?,?,?)",
            (
                (symbol, "5m", int(t), f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", "1")
                for t, o, h, lo, c in zip(times, opens, high, low, close, strict=True)
            ),
        )
        signals = rng.choice(["long", "short", "neutral"], YEAR)
        conn.executemany(
            "INSERT INTO predictions (symbol, candle_time, signal, confidence, sd, regime, "
            "model_version, source, latency_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                (symbol, int(t), str(s), 0.6, 0.004, None, "bench-1", "local-cpu", 2.0, int(t))
                for t, s in zip(times, signals, strict=True)
            ),
        )
        conn.executemany(
            "INSERT INTO decisions (symbol, candle_time, actions, created_at, strategy, "
            "provenance) VALUES (?,?,?,?,?,?)",
            ((symbol, int(t), "[]", int(t), "ml_directional", None) for t in times),
        )
        at = np.sort(rng.choice(YEAR - 20, trades_per_symbol, replace=False))
        for i, k in enumerate(at):
            entry, exit_ = int(times[k]), int(times[k + 12])
            conn.execute(
                "INSERT INTO orders (client_id, symbol, side, type, role, qty, state, "
                "reduce_only, close_position, filled_qty, avg_fill_price, created_at, reason) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    f"{n}-{i}",
                    symbol,
                    "buy",
                    "market",
                    "entry",
                    "1",
                    "filled",
                    0,
                    0,
                    "1",
                    f"{close[k]:.2f}",
                    entry,
                    "decision",
                ),
            )
            conn.execute(
                "INSERT INTO trades (symbol, side, qty, entry_time, exit_time, entry_price, "
                "exit_price, exit_reason, pnl, fees, funding, currency) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    symbol,
                    "long",
                    "1",
                    entry,
                    exit_,
                    f"{close[k]:.2f}",
                    f"{close[k + 12]:.2f}",
                    "take_profit",
                    f"{close[k + 12] - close[k]:.2f}",
                    "0.1",
                    "0",
                    "USDT",
                ),
            )
    equity = 10_000 * np.exp(np.cumsum(rng.normal(0, 0.0005, YEAR)))
    conn.executemany(
        "INSERT INTO equity VALUES (?,?,?,?,?)",
        ((int(t), "USDT", f"{e:.2f}", "0", f"{e:.2f}") for t, e in zip(times, equity, strict=True)),
    )
    conn.executemany(
        "INSERT INTO events (time, kind, symbol, message) VALUES (?,?,?,?)",
        ((int(t), "gap", SYMBOLS[0], "a gap") for t in times[::20]),
    )
    conn.commit()
    conn.close()


def stand_in(db: Path) -> Any:
    """The running daemon's memory, as the dashboard reads it (the database is the real one)."""
    settings = load_settings(REPO / "configs" / "ml_usdt_directional.toml", {})
    settings = settings.model_copy(
        update={
            "exchange": settings.exchange.model_copy(update={"symbols": SYMBOLS}),
            "store": settings.store.model_copy(update={"path": db}),
        }
    )
    last = datetime.fromtimestamp((T0 + STEP * (YEAR - 1)) / 1000, UTC)
    live = asyncio.Event()
    live.set()
    app = SimpleNamespace(
        store=SimpleNamespace(unwritable=None),
        clock=SimpleNamespace(now=lambda: last + timedelta(minutes=5, seconds=1)),
        feed=SimpleNamespace(live=live, last_closed=lambda _s: last),
        predictor=SimpleNamespace(local=(), status=lambda: {"remote": None, "local": ["cpu"]}),
        broker=SimpleNamespace(protection_status=dict),
        cycle=SimpleNamespace(last=None),
    )
    return SimpleNamespace(
        settings=settings,
        app=app,
        cycles=0,
        ready=live,
        notifications=SimpleNamespace(enabled=False),
    )


async def paint(loads: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = system_chromium()
    if chromium is None:
        raise SystemExit("no system Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="tbotd-dash-") as tmp:
        db = Path(tmp) / "year.sqlite"
        build_year(db)
        daemon = stand_in(db)
        dashboard = DaemonDashboard(daemon)
        server = OpsServer(
            "127.0.0.1", 0, None, CollectorRegistry(), dict_status, lambda: (True, "ok"), dashboard
        )
        url = await server.start()
        try:
            sizes = await payloads(url)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium)
                painted = []
                for _ in range(loads):
                    daemon.cycles += 1  # a new data version: the server reads the database again
                    page = await (await browser.new_context()).new_page()
                    await page.goto(url + "/")
                    await page.wait_for_selector("#chart[data-markers]", timeout=30_000)
                    await page.wait_for_selector("#equity-chart canvas")
                    marks = (
                        "['tbotd-meaningful', 'tbotd-painted'].map(n => performance"
                        ".getEntriesByName(n)[0].startTime)"
                    )
                    painted.append(await page.evaluate(marks))
                    await page.context.close()
                await browser.close()
        finally:
            await server.stop()
            dashboard.close()
    return {
        "database": f"{len(SYMBOLS)} symbols x {YEAR} candles, predictions, decisions; "
        "2000 trades per symbol; a year of equity",
        "meaningful_paint_ms": [round(m) for m, _ in painted],
        "everything_drawn_ms": [round(p) for _, p in painted],
        "payload_bytes": sizes,
    }


async def dict_status() -> dict[str, Any]:
    return {}


async def payloads(url: str) -> dict[str, int]:
    paths = ["/api/overview", "/api/equity", "/api/trades", "/api/events", "/api/config"]
    paths += [f"/api/chart?symbol={SYMBOLS[0]}&span={s}" for s in ("1d", "1w", "1m", "1y")]
    sizes = {}
    async with aiohttp.ClientSession(auto_decompress=True) as session:
        for path in paths:
            async with session.get(url + path) as r:
                sizes[path] = len(await r.read())
    return sizes


async def poll_like_a_page(url: str, headers: dict[str, str], stop: asyncio.Event) -> int:
    """What app.js does: /api/live every 2 s; everything again when the version moves."""
    version, reads = None, 0
    async with aiohttp.ClientSession(headers=headers) as s:
        while not stop.is_set():
            async with s.get(url + "/api/live") as r:
                live = await r.json()
            if live["version"] != version:
                version = live["version"]
                for path in (
                    "/api/overview",
                    "/api/equity",
                    "/api/trades",
                    "/api/events",
                    "/api/chart?symbol=BTC/USDT:USDT&span=1d",
                ):
                    async with s.get(url + path) as r:
                        await r.read()
                        reads += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    return reads


async def load(cycles: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
    from tests.e2e_support import ORACLE_TOKEN, free_port, oracle, sim_process, spawn

    token = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway token for a local daemon
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tbotd-dash-") as tmp:
        sim = sim_process("--speed", "60", "--seed", "3")
        async with sim as (_sim, sim_url), oracle() as ml_url, async_playwright() as pw:
            env = {
                "TBOTD_EXCHANGE__BASE_URL": sim_url,
                "TBOTD_EXCHANGE__API_KEY": DEMO_API_KEY,
                "TBOTD_EXCHANGE__API_SECRET": DEMO_API_SECRET,
                "TBOTD_EXECUTION__MODE": "live",
                "TBOTD_DAEMON__TIME_SCALE": "60",
                "TBOTD_DAEMON__CANDLE_WAIT_S": "60",
                "TBOTD_STORE__PATH": str(Path(tmp) / "tbotd.sqlite"),
                "TBOTD_OPS__PORT": str(free_port()),
                "TBOTD_OPS__TOKEN": token,
                "TBOTD_ML__REMOTE_URL": ml_url,
                "TBOTD_ML__REMOTE_CANDLES": "0",
                "BASIS_ML_API_TOKEN": ORACLE_TOKEN,
            }
            daemon = await spawn(
                "run", "--config", str(REPO / "configs/ml_usdt_directional.toml"), env=env
            )
            try:
                await daemon.wait_for(lambda ev: count(ev) >= 2, within_s=180)
                url = next(
                    e["url"] for e in daemon.events if e.get("event") == "ops endpoint listening"
                )
                out["no page"] = await phase(daemon, cycles)
                browser = await pw.chromium.launch(executable_path=system_chromium())
                page = await (await browser.new_context(extra_http_headers=headers)).new_page()
                await page.goto(url + "/")
                out["1 browser page"] = await phase(daemon, cycles)
                await browser.close()
                stop = asyncio.Event()
                pollers = [
                    asyncio.create_task(poll_like_a_page(url, headers, stop)) for _ in range(20)
                ]
                out["20 polling pages"] = await phase(daemon, cycles)
                stop.set()
                out["20 polling pages"]["api_reads"] = sum(await asyncio.gather(*pollers))
            finally:
                await daemon.stop(within_s=60)
    return out


def count(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e.get("event") == "cycle")


async def phase(daemon: Any, cycles: int) -> dict[str, Any]:
    start = count(daemon.events)
    await daemon.wait_for(lambda ev: count(ev) >= start + cycles, within_s=cycles * 30)
    totals = [e["ms"]["total"] for e in daemon.events if e.get("event") == "cycle"][start:]
    return {
        "cycles": len(totals),
        "decision_ms_median": round(statistics.median(totals), 1),
        "decision_ms_max": round(max(totals), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["paint", "load"])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(paint(args.loads) if args.what == "paint" else load(args.cycles))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
