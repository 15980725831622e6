"""Strategies benchmark (issue 16): busy backtests, ``--compare``, and the daemon's per-cycle cost.

    /work/venv/bin/python benchmarks/strategies_bench.py [--json] [--data CSV] [--funding CSV]
    (also run by benchmarks/backtest_bench.py)

Needs the real Binance BTC/USDT candles and funding of ``../shared/data``. On the newest
105,120 bars (one year) it measures, best of 5 in-process unless said otherwise:

1. **Busy backtests, reading the files included**: read the candle CSV (gzip), the funding CSV
   and (for ML kinds) a predictions CSV, then ``run_backtest``; for the classic configs
   (``classic_mean_reversion.toml``, ``classic_momentum.toml``: a candidate event every bar)
   and for the "50 %-confident predictions" case (``ml_usdt_directional.toml`` with a seeded CSV
   where half the bars are confident, the issue's busy ML case).
2. **``--compare``**: the real command (a subprocess) with ``ml_enhanced_mean_reversion.toml``
   against the same command without ``--compare`` (one arm), wall time of each, best of 3; and
   in-process, ``run_compare`` against one ``run_backtest`` of the enhanced config. Once with the
   out-of-sample predictions of models trained (``tbotd train``, seed 0) on the bars before the
   year — realistic: the model is rarely confident — and once with the seeded 5 % CSV, where
   the ``ml_directional`` arm at the config's threshold 0.55 is a busy backtest of its own.
3. **Per-cycle cost in the daemon**: ``Session.decide`` (indicator streams fed the new candle,
   the rule and the enhancement layer on the newest bar, the position rules) per symbol, over
   2,000 cycles after a 1,000-candle history, for a classic and an enhanced config.
4. **``ml_directional`` unchanged**: ``trades.csv`` of the seeded 5 % and 50 % predictions CSVs
   (both shipped ML configs) against the sha256 the code at the branch point produced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tbotd.backtest import read_candles, read_funding, read_predictions_csv, run_backtest  # noqa: E402
from tbotd.backtest.compare import run_compare  # noqa: E402
from tbotd.backtest.report import write_trades  # noqa: E402
from tbotd.backtest.run import Inputs, candle_arrays, prediction_rows  # noqa: E402
from tbotd.config.loader import load_settings  # noqa: E402
from tbotd.domain.market import Candle  # noqa: E402
from tbotd.domain.markets import BTCUSDT_PERP, market_spec  # noqa: E402
from tbotd.strategy.build import build_strategy  # noqa: E402
from tbotd.strategy.rules import DecisionInput  # noqa: E402

YEAR = 105_120
CANDLES = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"
FUNDING = "binance_BTCUSDT_funding8h_2023-01-01_2025-11-17.csv.gz"
CONFIGS = REPO / "configs"
# trades.csv sha256 from the code at the branch point (f25a774), same files, same configs
BRANCH_POINT = {
    ("ml_usdt_directional", 5): "8a68eaaf77cca5eb2bf72820b7f8e3876124d3dac3fa8879b66c5ae4f7c0416d",
    ("ml_btc_directional", 5): "177565d096a88a7dfd7bbab405b96c51036316ccaf4f157f814243960ac18863",
    ("ml_usdt_directional", 50): "fdb1d7d00d806ff73fb6f81a69cbbc98553af73db29be09a0a34d2f4aae9291e",
    ("ml_btc_directional", 50): "d102ffd9d2c916606fc39136bbf8ed0e536b56b4cca14555299d73be05860add",
}


def find(name: str, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        path = base / "shared" / "data" / name
        if path.is_file():
            return path
    raise SystemExit(f"{name} not found: pass --data/--funding (see ../shared/data/README.md)")


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def seeded_predictions(frame: pd.DataFrame, folder: Path) -> dict[int, Path]:
    """5 % and 50 % of bars confident (0.70-0.95), the rest 0.34-0.70; one generator, in that
    order (the files the branch-point hashes were made from)."""
    rng = np.random.default_rng(0)
    n = len(frame)
    out = {}
    for share in (5, 50):
        sure = rng.random(n) < share / 100
        path = folder / f"pred{share}.csv"
        pd.DataFrame(
            {
                "timestamp": frame["timestamp"],
                "signal": rng.choice(["long", "short", "neutral"], n),
                "confidence": np.where(
                    sure, rng.uniform(0.70, 0.95, n), rng.uniform(0.34, 0.70, n)
                ).round(4),
                "sd": rng.uniform(0.002, 0.01, n).round(5),
            }
        ).to_csv(path, index=False)
        out[share] = path
    return out


def busy(year: Path, funding: Path, config: str, predictions: Path | None) -> dict[str, Any]:
    """Read everything and run, best of 5; and the simulation alone."""
    settings = load_settings(CONFIGS / config)

    def load() -> tuple[Any, Any, Any]:
        data, _ = read_candles(year, "5m")
        table = read_predictions_csv(predictions) if predictions else None
        return data, read_funding(funding), table

    def whole() -> Any:
        data, rates, table = load()
        return run_backtest(data, table, settings, rates)

    total, result = best_of(5, whole)
    data, rates, table = load()
    sim, _ = best_of(5, lambda: run_backtest(data, table, settings, rates))
    return {
        "bars": result.bars,
        "trades": len(result.trades),
        "exact_steps": result.exact_steps,
        "refused": result.skipped.get("manager_refused", 0),
        "read_and_simulate_s": total,
        "bars_per_s_with_reading": result.bars / total,
        "simulate_s": sim,
        "bars_per_s_simulate": result.bars / sim,
    }


def tbotd(*args: str) -> float:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TBOTD_")}
    environ["PYTHONPATH"] = str(REPO)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tbotd", *args], capture_output=True, env=environ, check=True
    )
    return time.perf_counter() - started


def compare(year: Path, funding: Path, predictions: Path, tmp: Path) -> dict[str, Any]:
    """``--compare`` against one arm: the command's wall time, and in-process."""
    config = CONFIGS / "ml_enhanced_mean_reversion.toml"
    common = ["--config", str(config), "--data", str(year), "--funding", str(funding)]
    common += ["--predictions", str(predictions), "--json"]
    one = min(tbotd("backtest", *common, "--out", str(tmp / "one")) for _ in range(3))
    every = min(
        tbotd("backtest", "--compare", *common, "--out", str(tmp / "all")) for _ in range(3)
    )
    report = json.loads((tmp / "all" / "compare.json").read_text())
    settings = load_settings(config)
    data, _ = read_candles(year, "5m")
    rates = read_funding(funding)
    table = read_predictions_csv(predictions)
    single, _ = best_of(3, lambda: run_backtest(data, table, settings, rates))
    bars = candle_arrays(data, "5m")
    inputs = Inputs(bars, table, prediction_rows(table, bars, 0), BTCUSDT_PERP, rates)
    arms, _ = best_of(3, lambda: run_compare(inputs, settings))
    return {
        "command_one_arm_s": one,
        "command_compare_s": every,
        "command_ratio": every / one,
        "in_process_one_arm_s": single,
        "in_process_compare_s": arms,
        "in_process_ratio": arms / single,
        "arms": {
            name: {
                k: arm[k]
                for k in ("total_return", "sharpe", "max_drawdown", "trades", "fees", "funding")
            }
            | {"adds_up": arm["accounts"]["adds_up"]}
            for name, arm in report["arms"].items()
        },
        "differences": report["differences"],
    }


def model_predictions(full: pd.DataFrame, year_frame: pd.DataFrame, tmp: Path) -> Path:
    """Out-of-sample predictions for the year, with regime probabilities, from models trained
    on the bars before it."""
    from tbotd.predictor.local import LocalPredictor

    before = tmp / "before.csv.gz"
    full.iloc[: len(full) - len(year_frame)].to_csv(before, index=False)
    models = tmp / "models"
    tbotd("train", "--data", str(before), "--out", str(models), "--json")
    data, _ = read_candles(tmp / "year.csv.gz", "5m")
    with LocalPredictor.load(models, device="cpu") as predictor:
        history = predictor.predict_history(data.frame)
    ready = history["ready"].to_numpy(dtype=bool)
    columns = ["confidence", "sd", "p_trend_down", "p_sideways", "p_trend_up"]
    frame = pd.DataFrame(
        {
            "timestamp": data.frame["open_time"][ready],
            "signal": history["signal"][ready],
            **{c: [repr(float(x)) for x in history[c][ready]] for c in columns},
        }
    )
    path = tmp / "model_predictions.csv"
    frame.to_csv(path, index=False)
    return path


def per_cycle(year: Path, config: str, history: int = 1000, cycles: int = 2000) -> dict[str, Any]:
    """``Session.decide`` per symbol and cycle, after ``history`` candles, in microseconds."""
    settings = load_settings(CONFIGS / config)
    data, _ = read_candles(year, "5m")
    frame = data.frame.iloc[: history + cycles]
    bars = [
        Candle(
            "BTC/USDT:USDT",
            "5m",
            datetime.fromtimestamp(int(r.open_time) / 1000, UTC),
            Decimal(repr(float(r.open))),
            Decimal(repr(float(r.high))),
            Decimal(repr(float(r.low))),
            Decimal(repr(float(r.close))),
            Decimal(repr(float(r.volume))),
        )
        for r in frame.itertuples()
    ]
    session = build_strategy(settings).session()
    times = []
    for i in range(history, history + cycles):
        window = bars[i - history + 1 : i + 1]  # what Histories.upto hands the cycle
        inp = DecisionInput(
            "BTC/USDT:USDT", None, None, Decimal(10_000), window[-1].close, BTCUSDT_PERP
        )
        started = time.perf_counter()
        session.decide(inp, window)
        times.append((time.perf_counter() - started) * 1e6)
    first = times[0]
    steady = sorted(times[1:])
    return {
        "first_cycle_us": first,
        "p50_us": statistics.median(steady),
        "p99_us": steady[int(0.99 * len(steady))],
        "max_us": steady[-1],
    }


def unchanged(year: Path, funding: Path, csvs: dict[int, Path], tmp: Path) -> dict[str, Any]:
    """ml_directional trades.csv against the branch point's."""
    out = {}
    rates = read_funding(funding)
    data, _ = read_candles(year, "5m")
    for (config, share), digest in BRANCH_POINT.items():
        settings = load_settings(CONFIGS / f"{config}.toml")
        market = market_spec(settings.exchange.symbols[0], settings.exchange.market_type)
        result = run_backtest(data, read_predictions_csv(csvs[share]), settings, rates, market)
        path = tmp / f"{config}_{share}.csv"
        write_trades(result.trades, path)
        out[f"{config}, {share} % confident"] = {
            "trades": len(result.trades),
            "identical": hashlib.sha256(path.read_bytes()).hexdigest() == digest,
        }
    return out


def run(candles: Path, funding: Path, models_csv: Path | None = None) -> dict[str, Any]:
    """Every measurement above (``models_csv``: the year's model predictions, if made already)."""
    full = pd.read_csv(candles)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        year = tmp / "year.csv.gz"
        frame = full.tail(YEAR)
        frame.to_csv(year, index=False)
        csvs = seeded_predictions(frame, tmp)
        if models_csv is None:
            models_csv = model_predictions(full, frame, tmp)
        return {
            "busy": {
                "classic_mean_reversion": busy(year, funding, "classic_mean_reversion.toml", None),
                "classic_momentum": busy(year, funding, "classic_momentum.toml", None),
                "ml_50_percent_confident": busy(
                    year, funding, "ml_usdt_directional.toml", csvs[50]
                ),
                "ml_enhanced_boost_5_percent": busy(
                    year, funding, "ml_enhanced_mean_reversion.toml", csvs[5]
                ),
            },
            "compare_model_predictions": compare(year, funding, models_csv, tmp / "m"),
            "compare_random_5_percent": compare(year, funding, csvs[5], tmp / "r"),
            "per_cycle": {
                c: per_cycle(year, f"{c}.toml")
                for c in ("classic_mean_reversion", "classic_momentum", "ml_enhanced_hybrid")
            },
            "ml_directional_unchanged": unchanged(year, funding, csvs, tmp),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data", help=f"candle CSV (default ../shared/data/{CANDLES})")
    parser.add_argument("--funding", help=f"funding CSV (default ../shared/data/{FUNDING})")
    args = parser.parse_args()
    out = run(find(CANDLES, args.data), find(FUNDING, args.funding))
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
