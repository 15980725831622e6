"""`tbotd backtest` benchmark: throughput over one year of 5-minute bars, and an honest real run.

    /work/venv/bin/python benchmarks/backtest_bench.py [--json] [--data CSV] [--funding CSV]

Needs the real Binance BTC/USDT perp candles and funding rates (``../shared/data``; see its
README). What it does:

1. Splits the candles: the newest 105,120 bars (one year) are the backtest; the months before
   them (no overlap) train the local models with ``tbotd train`` (defaults, seed 0).
2. Writes the year's candles and, from ``predict_history`` of that model, a predictions CSV
   (``timestamp,signal,confidence,sd``; the first 575 bars have none: the models' warm-up).
3. Times (best of 5, in-process) (a) the predictions path: reading the candles, funding and
   predictions CSVs plus ``run_backtest``; and the same with a seeded random predictions CSV
   whose share of confident signals is higher (5 % of bars at confidence >= 0.70, a busier
   stress case); (b) the ``--models DIR`` path: ``predict_history`` plus ``run_backtest``.
4. Runs ``tbotd backtest`` (the real command, a subprocess) with configs/ml_usdt_directional.toml
   on the year with ``--models`` and with the predictions CSV, checks both give the same trades,
   and prints the headline report (also at threshold 0.55, via TBOTD_STRATEGY__THRESHOLD).
5. The strategies part (benchmarks/strategies_bench.py): busy classic and 50 %-confident
   backtests with reading, ``--compare`` against one arm, the daemon's per-cycle strategy cost,
   ``ml_directional`` trades against the branch point; and ``--compare`` with this run's model
   predictions (``--strategies-only`` runs just the strategies part, about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tbotd.backtest import (  # noqa: E402
    PredictionTable,
    read_candles,
    read_funding,
    read_predictions_csv,
    run_backtest,
)
from tbotd.config.loader import load_settings  # noqa: E402
from tbotd.predictor.local import LocalPredictor  # noqa: E402

YEAR = 105_120
CANDLES = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"
FUNDING = "binance_BTCUSDT_funding8h_2023-01-01_2025-11-17.csv.gz"
CONFIG = REPO / "configs" / "ml_usdt_directional.toml"
HEADLINE = (
    "trades",
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "exposure",
    "fees",
    "funding",
    "final_equity",
    "trades_by_exit_reason",
    "confident_predictions",
)


def find(name: str, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        path = base / "shared" / "data" / name
        if path.is_file():
            return path
    raise SystemExit(f"{name} not found: pass --data/--funding (see ../shared/data/README.md)")


def span(frame: pd.DataFrame) -> str:
    """First and last open time and the number of bars."""
    first, last = (pd.Timestamp(int(frame.timestamp.iloc[k]), unit="ms", tz="UTC") for k in (0, -1))
    return f"{first.isoformat()} .. {last.isoformat()} ({len(frame)} bars)"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def tbotd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TBOTD_")}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tbotd", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )


def best_of(runs: int, fn: Any) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def random_predictions(frame: pd.DataFrame, path: Path) -> None:
    """Seeded: 5 % of bars confident (0.70-0.95), the rest 0.34-0.70; sd 0.2-1 %."""
    rng = np.random.default_rng(0)
    n = len(frame)
    sure = rng.random(n) < 0.05
    pd.DataFrame(
        {
            "timestamp": frame["open_time"],
            "signal": rng.choice(["long", "short", "neutral"], n),
            "confidence": np.where(
                sure, rng.uniform(0.70, 0.95, n), rng.uniform(0.34, 0.70, n)
            ).round(4),
            "sd": rng.uniform(0.002, 0.01, n).round(5),
        }
    ).to_csv(path, index=False)


def bench_predictions(year: Path, funding: Path, predictions: Path) -> dict[str, Any]:
    settings = load_settings(CONFIG)

    def load() -> tuple[Any, Any, Any]:
        data, _ = read_candles(year, "5m")
        return data, read_funding(funding), read_predictions_csv(predictions)

    load_s, (data, rates, table) = best_of(5, load)
    sim_s, result = best_of(5, lambda: run_backtest(data, table, settings, rates))
    return {
        "bars": result.bars,
        "trades": len(result.trades),
        "exact_steps": result.exact_steps,
        "load_s": load_s,
        "simulate_s": sim_s,
        "bars_per_s_simulate": result.bars / sim_s,
        "bars_per_s_load_and_simulate": result.bars / (load_s + sim_s),
    }


def bench_models(year: Path, funding: Path, models: Path) -> dict[str, Any]:
    settings = load_settings(CONFIG)
    data, _ = read_candles(year, "5m")
    rates = read_funding(funding)
    with LocalPredictor.load(models, device="cpu", threads=os.cpu_count() or 1) as predictor:
        open_ms = data.frame["open_time"].to_numpy()

        def predict() -> PredictionTable:
            history = predictor.predict_history(data.frame)
            return PredictionTable.from_history(
                history, open_ms, predictor.source, predictor.model_version
            )

        predict_s, table = best_of(3, predict)
    sim_s, result = best_of(5, lambda: run_backtest(data, table, settings, rates))
    return {
        "bars": result.bars,
        "trades": len(result.trades),
        "predict_s": predict_s,
        "simulate_s": sim_s,
        "bars_per_s": result.bars / (predict_s + sim_s),
    }


def cli_report(
    year: Path, funding: Path, source: list[str], out: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], float, str]:
    args = ["backtest", "--config", str(CONFIG), "--data", str(year), "--funding", str(funding)]
    started = time.perf_counter()
    tbotd(*args, *source, "--out", str(out), "--json", env=env)
    wall = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text())
    return report, wall, (out / "trades.csv").read_text()


def compare_with_models(year: Path, funding: Path, csv: Path, tmp: Path) -> dict[str, Any]:
    """``tbotd backtest --compare`` with the out-of-sample model's predictions: each arm's
    headline numbers and the bootstrap differences to the classic arm."""
    results = {}
    for config in ("ml_enhanced_mean_reversion.toml", "ml_enhanced_momentum.toml"):
        out = tmp / f"compare_{config}"
        args = ["backtest", "--compare", "--config", str(REPO / "configs" / config)]
        args += ["--data", str(year), "--funding", str(funding), "--predictions", str(csv)]
        started = time.perf_counter()
        tbotd(*args, "--out", str(out), "--json")
        report = json.loads((out / "compare.json").read_text())
        keys = ("total_return", "sharpe", "max_drawdown", "trades", "fees", "funding")
        results[config] = {
            "wall_s": time.perf_counter() - started,
            "arms": {n: {k: a[k] for k in keys} for n, a in report["arms"].items()},
            "differences": report["differences"],
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data", help=f"candle CSV (default ../shared/data/{CANDLES})")
    parser.add_argument("--funding", help=f"funding CSV (default ../shared/data/{FUNDING})")
    parser.add_argument(
        "--strategies-only", action="store_true", help="only the strategies part (step 5)"
    )
    args = parser.parse_args()
    candles, funding = find(CANDLES, args.data), find(FUNDING, args.funding)
    import strategies_bench

    if args.strategies_only:
        out_only = {"machine": machine(), "strategies": strategies_bench.run(candles, funding)}
        print(json.dumps(out_only) if args.json else json.dumps(out_only, indent=2))
        return 0
    full = pd.read_csv(candles)
    year_frame, before = full.tail(YEAR), full.iloc[: len(full) - YEAR]
    out: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        year, train = tmp / "year.csv.gz", tmp / "before.csv.gz"
        year_frame.to_csv(year, index=False)
        before.to_csv(train, index=False)
        out["data"] = {
            "backtest": span(year_frame),
            "training": span(before),
            "buy_and_hold_return": float(year_frame.close.iloc[-1] / year_frame.open.iloc[0] - 1),
        }
        started = time.perf_counter()
        tbotd("train", "--data", str(train), "--out", str(tmp / "models"), "--json")
        out["train_s"] = time.perf_counter() - started
        data, _ = read_candles(year, "5m")
        with LocalPredictor.load(tmp / "models", device="cpu") as predictor:
            history = predictor.predict_history(data.frame)
            out["model_version"] = predictor.model_version
        ready = history["ready"].to_numpy(dtype=bool)
        model_csv = tmp / "model_predictions.csv"
        pd.DataFrame(
            {
                "timestamp": data.frame["open_time"][ready],
                "signal": history["signal"][ready],
                "confidence": [repr(float(x)) for x in history["confidence"][ready]],
                "sd": [repr(float(x)) for x in history["sd"][ready]],
            }
        ).to_csv(model_csv, index=False)
        random_csv = tmp / "random_predictions.csv"
        random_predictions(data.frame, random_csv)
        out["predictions_csv_model"] = bench_predictions(year, funding, model_csv)
        out["predictions_csv_random"] = bench_predictions(year, funding, random_csv)
        out["models"] = bench_models(year, funding, tmp / "models")
        by_models, wall_m, trades_m = cli_report(
            year, funding, ["--models", str(tmp / "models")], tmp / "out_models"
        )
        by_csv, wall_p, trades_p = cli_report(
            year, funding, ["--predictions", str(model_csv)], tmp / "out_csv"
        )
        out["cli_wall_s"] = {"models": wall_m, "predictions": wall_p}
        out["models_equal_csv"] = trades_m == trades_p
        out["report"] = {k: by_models[k] for k in HEADLINE}
        low, _, _ = cli_report(
            year,
            funding,
            ["--models", str(tmp / "models")],
            tmp / "out_low",
            env={"TBOTD_STRATEGY__THRESHOLD": "0.55"},
        )
        out["report_threshold_0_55"] = {k: low[k] for k in HEADLINE}
        out["cli_report_timings"] = {"models": by_models["timings"], "csv": by_csv["timings"]}
        out["compare_model_predictions"] = compare_with_models(year, funding, model_csv, tmp)
        out["strategies"] = strategies_bench.run(candles, funding, model_csv)
    if args.json:
        print(json.dumps(out))
        return 0
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
