"""Two symbols from one wallet: the daemon against `tbotd sim` (BTC replaying a CSV, ETH from
the sim's seeded generator; ccxt, the candle feed, a remote prediction service, the cycle with
its risk guard, the paper broker) and ``run_portfolio`` over the candles the daemon stored and
the same predictions make the same trades — including a risk-guard trip at the same close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web

from tbotd.backtest.portfolio_run import run_portfolio
from tbotd.config import Settings
from tbotd.daemon.app import build
from tbotd.domain.values import datetime_to_ms, ms_to_datetime
from tbotd.sim import SimConfig, SimExchange
from tests.e2e_support import free_port
from tests.integration.test_backtest_parity import (
    FUNDING_RATE,
    HISTORY,
    PLAYED,
    TOKEN,
    market_data,
    settings,
)
from tests.synthetic import STEP_MS

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


@asynccontextmanager
async def service(tables: Mapping[str, pd.DataFrame]) -> AsyncIterator[str]:
    """A remote ML service answering each symbol's candle from that symbol's table."""
    rows = {s: {int(r.timestamp): r for r in t.itertuples()} for s, t in tables.items()}

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        stamp = body["timestamp"]
        key = datetime_to_ms(pd.Timestamp(stamp).to_pydatetime())
        row = rows.get(body["symbol"], {}).get(key)
        if row is None or row.signal == "hold":
            return {"symbol": body["symbol"], "error": "no prediction for this candle"}
        return {
            "symbol": body["symbol"],
            "timestamp": stamp,
            "signal": row.signal,
            "confidence": float(row.confidence),
            "sd": float(row.sd),
            "model_version": "csv",
            "source": "remote",
        }

    async def batch(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        return web.json_response({"predictions": [answer(r) for r in body["requests"]]})

    app = web.Application()
    app.router.add_post("/v1/predictions:batch", batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def portfolio_config(tmp_path: Path, risk: dict[str, Any]) -> Settings:
    data: dict[str, Any] = settings(
        tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:1"
    ).model_dump()
    data["exchange"]["symbols"] = [BTC, ETH]
    data["ml"]["token"] = TOKEN
    data["execution"] |= {"position_fraction": "0.9", "leverage": 3}
    data["risk"] = risk
    return Settings.model_validate(data)


async def daemon(
    tmp_path: Path, csv: Path, first_ms: int, tables: Mapping[str, pd.DataFrame], config: Settings
) -> tuple[Any, ...]:
    """The daemon over the played candles: trades, risk events, stored candles, market rules."""
    first = ms_to_datetime(first_ms)
    sim = SimExchange(
        SimConfig(data=csv, start=first, manual_clock=True, funding_rate=FUNDING_RATE)
    )
    url = await sim.start("127.0.0.1", 0)
    try:
        async with service(tables) as ml_url:
            data = config.model_dump()
            data["exchange"]["base_url"] = url
            data["ml"] |= {"remote_url": ml_url, "token": TOKEN}
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
                    for symbol in (BTC, ETH):
                        await app.broker.on_closed_candle(closed[symbol])
            trades = app.store.trades()
            events = [
                (r["kind"], int(r["time"]))
                for r in app.store.query("SELECT * FROM events WHERE kind LIKE 'risk-%'")
            ]
            stored = {s: app.store.candles(s, "5m") for s in (BTC, ETH)}
            markets = {s: app.broker.market(s) for s in (BTC, ETH)}
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await app.close()
    finally:
        await sim.stop()
    return trades, events, stored, markets


def frame_of(candles: list[Any], last_ms: int) -> pd.DataFrame:
    rows = [c for c in candles if datetime_to_ms(c.open_time) <= last_ms]
    return pd.DataFrame(
        {
            "open_time": [datetime_to_ms(c.open_time) for c in rows],
            **{
                name: [float(getattr(c, name)) for c in rows]
                for name in ("open", "high", "low", "close", "volume")
            },
        }
    )


async def test_two_symbols_with_a_risk_trip_trade_alike_in_the_daemon_and_the_backtest(
    tmp_path: Path,
) -> None:
    """BTC and ETH from one paper wallet, a 0.5 % drawdown limit that flattens: the daemon's
    trades (both symbols), its risk events and the portfolio backtest's are the same."""
    frame, btc, csv = market_data(tmp_path)
    rng = np.random.default_rng(8)
    eth = btc.copy()
    eth["signal"] = rng.choice(
        ["long", "short", "neutral", "hold"], len(eth), p=[0.4, 0.3, 0.15, 0.15]
    )
    tables = {BTC: btc, ETH: eth}
    config = portfolio_config(tmp_path, {"max_drawdown_pct": "0.5", "on_trip": "flatten"})
    first_ms = int(frame["open_time"].iloc[HISTORY])
    trades, events, stored, markets = await daemon(tmp_path, csv, first_ms, tables, config)
    last_ms = first_ms + PLAYED * STEP_MS
    frames = {s: frame_of(stored[s], last_ms) for s in (BTC, ETH)}
    warmup = {s: int((f["open_time"] < first_ms).sum()) for s, f in frames.items()}
    common = min(warmup.values())
    frames = {s: f.iloc[warmup[s] - common :].reset_index(drop=True) for s, f in frames.items()}
    times = range(
        int(frames[BTC]["open_time"].iloc[0]) // 28_800_000 * 28_800_000, last_ms + 1, 28_800_000
    )
    funding = {s: dict.fromkeys(times, FUNDING_RATE) for s in (BTC, ETH)}
    result = run_portfolio(frames, tables, config, funding, markets, warmup_bars=common)
    expected = [t for t in result.trades if t.exit_reason != "end_of_data"]
    assert {t.symbol for t in expected} == {BTC, ETH}, "both symbols trade"
    assert ("risk-trip", result.risk[0].at_ms) in events, "the guard trips"
    assert events == [(c.kind, c.at_ms) for c in result.risk]
    assert len(expected) >= 2
    assert sorted(trades, key=lambda t: (t.exit_time, t.symbol)) == expected
