"""The kill switch on a live daemon against `tbotd sim`: `tbotd halt` stops new entries at the
next close, `--flatten` closes every position with its protective orders cancelled on the venue,
a restart keeps the halt, and `tbotd resume` lifts it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tbotd.config import Settings
from tbotd.daemon.app import App, build
from tbotd.domain.values import ms_to_datetime
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET, SimConfig, SimExchange
from tests.conftest import tbotd_env
from tests.integration.test_backtest_parity import (
    HISTORY,
    market_data,
    prediction_service,
    settings,
)
from tests.synthetic import STEP_MS

SYMBOL = "BTC/USDT:USDT"


def live_config(tmp_path: Path, sim_url: str, ml_url: str) -> Settings:
    data: dict[str, Any] = settings(tmp_path, sim_url, ml_url).model_dump()
    data["execution"] |= {"mode": "live"}
    data["exchange"] |= {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
    for name in ("api_key", "api_secret", "token"):
        section = "ml" if name == "token" else "exchange"
        value = data[section][name]
        data[section][name] = getattr(value, "get_secret_value", lambda v=value: v)()
    return Settings.model_validate(data)


def tbotd(*args: str, config: Path) -> str:
    """Run the real command line (as an operator would) and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "tbotd", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=tbotd_env(),
        check=True,
        timeout=60,
    )
    return done.stdout


async def entries(app: App) -> int:
    rows = app.store.query("SELECT COALESCE(SUM(entries), 0) AS n FROM decisions")
    return int(rows[0]["n"])


async def test_halt_flattens_stops_entries_survives_a_restart_and_resume_lifts_it(
    tmp_path: Path,
) -> None:
    """Always-long predictions: a position opens; `tbotd halt --flatten` closes it at the next
    close and leaves no order resting; no entry follows, also after a restart; after `tbotd
    resume` the next close enters again."""
    frame, predictions, csv = market_data(tmp_path)
    predictions["signal"] = "long"
    predictions["confidence"] = 0.9
    first = ms_to_datetime(int(frame["open_time"].iloc[HISTORY]))
    step = timedelta(milliseconds=STEP_MS)
    sim = SimExchange(SimConfig(data=csv, start=first, manual_clock=True))
    url = await sim.start("127.0.0.1", 0)
    try:
        async with prediction_service(predictions) as ml_url:
            config = live_config(tmp_path, url, ml_url)
            path = tmp_path / "halt.toml"
            path.write_text(_toml(config))
            k = 0

            async def cycle(app: App) -> None:
                nonlocal k
                await sim.advance_to(first + (k + 1) * step, step_s=60)
                await app.resync_clock()
                await app.cycle.run(first + k * step)
                k += 1

            running = await _start(config)
            app = running.app
            await cycle(app)
            venue = app.broker._venue  # type: ignore[attr-defined]
            assert await venue.positions([SYMBOL]), "the first close enters"
            assert len(await venue.open_conditional([SYMBOL])) == 2
            out = tbotd("halt", "--flatten", config=path)
            assert "halt with flatten #1" in out
            await cycle(app)
            assert not await venue.positions([SYMBOL])
            assert await venue.open_conditional([SYMBOL]) == []
            before = await entries(app)
            await cycle(app)
            assert await entries(app) == before, "no entry while halted"
            status = app.cycle.risk.status()
            assert status["halted"]
            await running.stop()

            running = await _start(config)  # a restart keeps the halt
            app = running.app
            await cycle(app)
            assert await entries(app) == before
            assert not await venue_positions(app)
            tbotd("resume", config=path)
            await cycle(app)
            assert await entries(app) == before + 1
            kinds = [r["kind"] for r in app.store.query("SELECT kind FROM events ORDER BY id")]
            assert kinds.count("risk-trip") == 1
            assert kinds.count("risk-reset") == 1
            await running.stop()
    finally:
        await sim.stop()


async def venue_positions(app: App) -> Any:
    return await app.broker._venue.positions([SYMBOL])  # type: ignore[attr-defined]


class Running:
    """The daemon's app with its candle feed running (what `tbotd run` starts)."""

    def __init__(self, app: App, feed: asyncio.Task[None]) -> None:
        self.app, self.feed = app, feed

    async def stop(self) -> None:
        self.feed.cancel()
        await asyncio.gather(self.feed, return_exceptions=True)
        await self.app.close()


async def _start(config: Settings) -> Running:
    app = await build(config)
    await app.recover()
    feed = asyncio.create_task(app.feed.run())
    await asyncio.wait_for(app.feed.live.wait(), 30)
    return Running(app, feed)


def _toml(config: Settings) -> str:
    """Just enough of ``config`` as TOML for the command line to find its database."""
    return (
        f'[exchange]\nmarket_type = "linear"\nsymbols = ["{SYMBOL}"]\n'
        f'[strategy]\nmode = "ml_usdt_directional"\nshare_class = "USDT"\n'
        f'initial_capital = "10000"\nthreshold = 0.6\n'
        f'[store]\npath = "{config.store.path}"\n'
    )
