"""Portfolio backtest and risk guard benchmark.

    .venv/bin/python benchmarks/portfolio_bench.py [--json] [--data CSV]

1. Five symbols over one year of 5-minute bars (105,120 bars each): the real BTC/USDT candles of
   ``../shared/data`` (the newest year) for BTC, and the same candles scaled for four more
   bundled perpetuals (ETH, SOL, BNB, XRP: each its own price level, tick and step; a seeded
   random walk when the data is absent, said so). Sparse predictions: a seeded 0.2 % of bars
   confident (0.75), the rest 0.3–0.6 — the shape of a real model's output at its threshold.
   Times ``run_portfolio`` (simulation only, best of 5) with no guard and with every equity
   rule set loosely enough to watch all year (drawdown 60 %, daily loss 30 %, stop-loss streak
   with cooldown, exposure caps).
2. The guard's cost per daemon cycle with 5 symbols: the pure ``observe`` + five ``gate`` calls,
   and ``RiskKeeper.observe`` + gates on a real SQLite store in a quiet cycle (nothing to write:
   a query for the trades closed, a read of the operator's command). A trip, a new equity peak,
   a new day or a counted entry also writes the state — an entry's in the commit of its
   decision record, which the cycle makes anyway.
3. The acceptance check on real candles: predictions calling long on every bar of a falling
   stretch trip ``max_drawdown_pct`` at the first bar the equity curve says, no entry after.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tbotd.backtest import read_candles  # noqa: E402
from tbotd.backtest.portfolio_run import run_portfolio  # noqa: E402
from tbotd.backtest.predictions_csv import prediction_table  # noqa: E402
from tbotd.backtest.run import _text  # noqa: E402
from tbotd.config.settings import Settings  # noqa: E402
from tbotd.daemon.risk import RiskKeeper  # noqa: E402
from tbotd.domain.actions import ExitPlan, ExitSource, Hold, HoldKind, OpenPosition  # noqa: E402
from tbotd.domain.enums import Side  # noqa: E402
from tbotd.domain.markets import KNOWN_MARKETS  # noqa: E402
from tbotd.domain.values import datetime_to_ms  # noqa: E402
from tbotd.ml.data import validate_frame  # noqa: E402
from tbotd.risk import guard  # noqa: E402
from tbotd.risk.gate import Exposure, gate  # noqa: E402
from tbotd.store import Store  # noqa: E402

YEAR = 105_120
CANDLES = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"
SCALES = {"BTC": 1.0, "ETH": 0.06, "SOL": 0.002, "BNB": 0.008, "XRP": 0.00002}
LOOSE = {
    "max_drawdown_pct": "60",
    "daily_loss_pct": "30",
    "stop_loss_streak": 50,
    "cooldown_min": 60,
    "max_gross_exposure_pct": "100000",
    "max_symbol_exposure_pct": "100000",
    "max_entries_per_day": 10_000,
}


def year(explicit: str | None) -> tuple[pd.DataFrame, str]:
    for path in [Path(explicit)] if explicit else [REPO.parent / "shared/data" / CANDLES]:
        if path.exists():
            data, _ = read_candles(path, "5m")
            frame = data.frame.iloc[-YEAR:].reset_index(drop=True)
            return frame[["open_time", "open", "high", "low", "close", "volume"]], str(path)
    rng = np.random.default_rng(0)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 0.002, YEAR)))
    open_ = np.concatenate([[20_000.0], close[:-1]])
    frame = pd.DataFrame(
        {
            "open_time": 1_672_531_200_000 + 300_000 * np.arange(YEAR),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1.0,
        }
    )
    return frame, "seeded random walk (../shared/data absent)"


def scaled(frame: pd.DataFrame, base: str) -> pd.DataFrame:
    tick = KNOWN_MARKETS[f"{base}/USDT:USDT"].tick_size
    digits = max(0, -int(tick.as_tuple().exponent))
    out = frame.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = (frame[col] * SCALES[base]).round(digits)
    out["high"] = out[["open", "high", "close"]].max(axis=1)
    out["low"] = out[["open", "low", "close"]].min(axis=1)
    return out


def sparse(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(frame)
    confident = rng.random(n) < 0.002
    return pd.DataFrame(
        {
            "timestamp": frame["open_time"],
            "signal": rng.choice(["long", "short", "neutral"], n, p=[0.4, 0.4, 0.2]),
            "confidence": np.where(confident, 0.75, rng.uniform(0.3, 0.6, n)).round(3),
            "sd": "0.004",
        }
    )


def config(risk: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {
            "exchange": {
                "market_type": "linear",
                "symbols": [f"{b}/USDT:USDT" for b in SCALES],
            },
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.7,
            },
            "risk": risk,
        }
    )


def best(fn: Any, runs: int = 5) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def throughput(frame: pd.DataFrame) -> dict[str, Any]:
    """Simulation only: candles and predictions parsed beforehand (as the CSV readers do)."""
    frames = {f"{b}/USDT:USDT": scaled(frame, b) for b in SCALES}
    preds = {
        s: prediction_table(_text(sparse(f, k)), s, first_line=0)
        for k, (s, f) in enumerate(frames.items())
    }
    frames = {
        s: validate_frame(f.rename(columns={"open_time": "timestamp"}), s, first_line=0, unit="row")
        for s, f in frames.items()
    }
    out: dict[str, Any] = {}
    for name, risk in (("no guard", {}), ("guard, every rule loose", LOOSE)):
        cfg = config(risk)
        seconds, result = best(lambda cfg=cfg: run_portfolio(frames, preds, cfg))
        sim = seconds
        out[name] = {
            "seconds": round(sim, 4),
            "symbol_bars_per_second": round(YEAR * len(frames) / sim),
            "trades": len(result.trades),
            "risk_events": len(result.risk),
        }
    return out


def guard_cost() -> dict[str, Any]:
    limits = config(LOOSE).risk.limits()
    symbols = [f"{b}/USDT:USDT" for b in SCALES]
    plan = ExitPlan(ExitSource.FIXED, sl_distance=Decimal("0.01"), tp_distance=Decimal("0.02"))
    entries = [[OpenPosition(s, Side.LONG, Decimal("0.1"), plan, "x")] for s in symbols]
    state = guard.RiskState()
    n, t0 = 2000, 1_700_006_400_000
    start = time.perf_counter()
    for k in range(n):
        seen = guard.observe(state, limits, t0 + k * 300_000, Decimal(10_000 - k % 7))
        state, exposure = seen.state, Exposure(Decimal(10_000))
        for actions in entries:
            gated = gate(state, limits, actions, exposure, Decimal(100))
            state = gated.state
    pure = (time.perf_counter() - start) / n
    holds = [[Hold(s, "below threshold", HoldKind.BELOW_THRESHOLD)] for s in symbols]
    stored = {}
    for name, each in (("quiet", holds),):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "b.sqlite")
            keeper = RiskKeeper(store, limits)
            market = KNOWN_MARKETS[symbols[0]]
            m = 300
            start = time.perf_counter()
            for k in range(m):
                keeper.observe(t0 + k * 300_000, Decimal(10_000))
                for actions in each:
                    keeper.gate(actions, Exposure(Decimal(10_000)), market, Decimal(100))
            stored[name] = (time.perf_counter() - start) / m
            store.close()
    return {
        "pure_ms_per_cycle": round(pure * 1000, 4),
        "daemon_keeper_ms_per_quiet_cycle": round(stored["quiet"] * 1000, 3),
    }


def drawdown_check(frame: pd.DataFrame) -> dict[str, Any]:
    """Long on every bar of the year's worst 30 days; the trip must be where equity.csv says."""
    close = frame["close"].to_numpy()
    window = 8640
    change = close[window:] / close[:-window]
    start = int(np.argmin(change))
    part = frame.iloc[start : start + window].reset_index(drop=True)
    preds = pd.DataFrame(
        {"timestamp": part["open_time"], "signal": "long", "confidence": 0.9, "sd": "0.004"}
    )
    cfg = Settings.model_validate(
        {
            "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
            "strategy": {
                "mode": "ml_usdt_directional",
                "share_class": "USDT",
                "initial_capital": "10000",
                "threshold": 0.7,
            },
            "risk": {"max_drawdown_pct": "5"},
        }
    )
    result = run_portfolio({"BTC/USDT:USDT": part}, {"BTC/USDT:USDT": preds}, cfg)
    leg = result.legs[0]
    equity = leg.equity.equity
    peak = np.maximum.accumulate(np.concatenate([[10_000.0], equity]))[1:]
    beyond = int(np.argmax((peak - equity) / peak > 0.05))
    trip = result.risk[0].at_ms if result.risk else None
    entries = [datetime_to_ms(t.entry_time) for t in leg.trades]
    return {
        "span": f"{pd.Timestamp(int(part.open_time.iloc[0]), unit='ms')} + 30 days",
        "trip_at_bar_close_ms": trip,
        "equity_curve_first_bar_beyond_ms": int(leg.equity.open_ms[beyond]) + 300_000,
        "agrees": trip == int(leg.equity.open_ms[beyond]) + 300_000,
        "trades": len(leg.trades),
        "entries_after_trip": sum(1 for e in entries if trip is not None and e >= trip),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data")
    args = parser.parse_args()
    frame, source = year(args.data)
    results = {
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "data": source,
        "throughput_5_symbols_one_year": throughput(frame),
        "guard_per_cycle_5_symbols": guard_cost(),
        "drawdown_acceptance": drawdown_check(frame),
    }
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
