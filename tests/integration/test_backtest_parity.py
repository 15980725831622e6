"""The backtest and the daemon make the same trades: same candles, same predictions, paper mode,
for every strategy kind.

The daemon side is the real thing — `tbotd sim` replaying a candle CSV, ccxt, the candle feed,
the prediction chain asking a remote service (which serves the predictions CSV), the cycle with
its strategy (indicators streamed candle by candle) and the paper broker — driven candle by
candle (the same ``Cycle.run`` the scheduler calls). The backtest side is ``run_backtest`` over
the same CSVs. Every trade must match field by field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from tbotd.backtest import run_backtest
from tbotd.config import Settings, load_settings
from tbotd.daemon.app import build
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.sim import SimConfig, SimExchange
from tests.conftest import CONFIGS
from tests.e2e_support import free_port
from tests.synthetic import START_MS, STEP_MS, random_walk
from tests.unit.backtest_support import KINDS

HISTORY = 648  # the first decided candle opens at 2023-01-03 06:00 UTC
PLAYED = 40  # ... and the last at 09:15, across the 08:00 funding
TOKEN = "parity-oracle-token"
FUNDING_RATE = Decimal("0.0001")


def market_data(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Seeded candles (history + played + some after) and confident seeded predictions."""
    frame = random_walk(HISTORY + PLAYED + 30, seed=11, vol=0.004)
    for name in ("open", "close"):  # prices on BTCUSDT's 0.1 tick, as the exchange prints them
        frame[name] = frame[name].round(1)
    frame["high"] = np.maximum(
        np.ceil(frame["high"] * 10) / 10, frame[["open", "close"]].max(axis=1)
    )
    frame["low"] = np.minimum(
        np.floor(frame["low"] * 10) / 10, frame[["open", "close"]].min(axis=1)
    )
    csv = tmp_path / "candles.csv"
    frame.rename(columns={"open_time": "timestamp"}).to_csv(csv, index=False)
    played = frame["open_time"].to_numpy()[HISTORY : HISTORY + PLAYED]
    rng = np.random.default_rng(5)
    predictions = pd.DataFrame(
        {
            "timestamp": played,
            "signal": rng.choice(
                ["long", "short", "neutral", "hold"], len(played), p=[0.35, 0.35, 0.15, 0.15]
            ),
            "confidence": rng.uniform(0.55, 0.99, len(played)).round(3),
            "sd": rng.uniform(0.002, 0.008, len(played)).round(4),
        }
    )
    return frame, predictions, csv


@asynccontextmanager
async def prediction_service(predictions: pd.DataFrame) -> AsyncIterator[str]:
    """A remote ML service answering with the predictions CSV's row for the asked candle."""
    rows = {int(r.timestamp): r for r in predictions.itertuples()}

    async def single(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        stamp = body["timestamp"]
        row = rows.get(datetime_to_ms(pd.Timestamp(stamp).to_pydatetime()))
        if row is None or row.signal == "hold":
            return web.json_response({"error": "no prediction for this candle"}, status=404)
        return web.json_response(
            {
                "symbol": body["symbol"],
                "timestamp": stamp,
                "signal": row.signal,
                "confidence": float(row.confidence),
                "sd": float(row.sd),
                "model_version": "csv",
                "source": "remote",
            }
        )

    app = web.Application()
    app.router.add_post("/v1/predictions", single)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def settings(
    tmp_path: Path, sim_url: str, ml_url: str, strategy: dict[str, Any] | None = None
) -> Settings:
    base = load_settings(CONFIGS / "ml_usdt_directional.toml", {"BASIS_ML_API_TOKEN": TOKEN})
    data: dict[str, Any] = base.model_dump()
    data["exchange"] |= {"base_url": sim_url}
    data["strategy"] |= {"threshold": 0.6} | (strategy or {})
    data["ml"] |= {
        "remote_url": ml_url,
        "remote_candles": 0,
        "token": TOKEN,
        "models_dir": str(tmp_path / "no-models"),
    }
    data["store"] = {"path": str(tmp_path / "daemon.sqlite")}
    data["ops"] = {"port": 0}
    return Settings.model_validate(data)


async def daemon_run(
    tmp_path: Path, frame: pd.DataFrame, predictions: pd.DataFrame, csv: Path, config: Settings
) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The daemon over the played candles: its trades, its decisions, its market rules."""
    first = ms_to_datetime(int(frame["open_time"].iloc[HISTORY]))
    sim = SimExchange(
        SimConfig(data=csv, start=first, manual_clock=True, funding_rate=FUNDING_RATE)
    )
    url = await sim.start("127.0.0.1", 0)
    try:
        async with prediction_service(predictions) as ml_url:
            data = config.model_dump()
            data["exchange"]["base_url"] = url
            data["ml"]["remote_url"] = ml_url
            app = await build(Settings.model_validate(data))
            await app.recover()
            feed = asyncio.create_task(app.feed.run())
            await asyncio.wait_for(app.feed.live.wait(), 30)
            step = timedelta(milliseconds=STEP_MS)
            for k in range(PLAYED + 1):
                candle_time = first + k * step
                await sim.advance_to(candle_time + step, step_s=60)
                await app.resync_clock()
                if k < PLAYED:
                    await app.cycle.run(candle_time)
                else:  # the candle after the last decision: only its exits settle
                    closed = await app.feed.wait_closed(candle_time, 20)
                    await app.broker.on_closed_candle(closed[config.exchange.symbols[0]])
            trades = app.store.trades()
            decisions = app.store.query("SELECT * FROM decisions ORDER BY candle_time")
            market = app.broker.market(config.exchange.symbols[0])
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await app.close()
    finally:
        await sim.stop()
    return trades, decisions, market


def backtest(frame: pd.DataFrame, predictions: pd.DataFrame, config: Settings, market: Any) -> Any:
    candles = frame.iloc[: HISTORY + PLAYED + 1].reset_index(drop=True)
    times = range(START_MS, int(candles["open_time"].iloc[-1]) + 1, 8 * 3_600_000)
    funding = dict.fromkeys(times, FUNDING_RATE)
    return run_backtest(candles, predictions, config, funding, market, warmup_bars=HISTORY)


async def test_daemon_paper_trades_equal_backtest_trades(tmp_path: Path) -> None:
    """Replaying the same candles and predictions through the daemon and the backtest."""
    frame, predictions, csv = market_data(tmp_path)
    config = settings(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:1")
    daemon_trades, _, market = await daemon_run(tmp_path, frame, predictions, csv, config)
    result = backtest(frame, predictions, config, market)
    backtest_trades = [t for t in result.trades if t.exit_reason != "end_of_data"]
    assert len(daemon_trades) >= 5, "the scenario must trade"
    assert {t.exit_reason for t in daemon_trades} == {"decision", "stop_loss", "take_profit"}
    assert any(t.funding for t in daemon_trades), "one trade is held through the 08:00 funding"
    assert daemon_trades == backtest_trades


@pytest.mark.parametrize(
    "kind",
    [
        "classic_mean_reversion",
        "classic_momentum",
        "boost",
        "filter_fail_open",
        "replace",
        "hybrid",
    ],
)
async def test_every_kind_trades_alike_in_the_daemon_and_the_backtest(
    tmp_path: Path, kind: str
) -> None:
    """The daemon (indicators streamed from the candles the feed stored, the enhancement layer
    over each served prediction) and the backtest (indicators in batch) on the same candles and
    predictions: the same trades, and the same provenance recorded for every decision."""
    frame, predictions, csv = market_data(tmp_path)
    config = settings(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:1", KINDS[kind])
    daemon_trades, decisions, market = await daemon_run(tmp_path, frame, predictions, csv, config)
    result = backtest(frame, predictions, config, market)
    assert len(result.trades) >= 2, "the scenario must trade"
    assert daemon_trades == [t for t in result.trades if t.exit_reason != "end_of_data"]
    recorded = {
        d["candle_time"]: (d["strategy"], d["provenance"])
        for d in decisions
        if d["entries"] or "ClosePosition" in d["actions"]
    }
    acted = {
        r.open_ms: (
            r.trace.strategy,
            None if r.trace.provenance is None else str(r.trace.provenance),
        )
        for r in result.decisions
        if any(type(a).__name__ != "Hold" for a in r.actions)
    }
    assert recorded == acted
    assert len({d["strategy"] for d in decisions}) == 1
