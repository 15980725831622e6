"""A whole `tbotd backtest` process on a sparse year, and where its time goes.

    .venv/bin/python benchmarks/backtest_report_bench.py [--runs N] [--json]

The newest 105,120 real Binance BTC/USDT 5-minute candles of ``../shared/data`` (one year) with
their funding, config ``configs/ml_usdt_directional.toml`` and sparse predictions as
benchmarks/portfolio_bench.py makes them (a seeded 0.2 % of bars confident at 0.75, the rest
0.3–0.6). Figures:

* ``wall``: the whole `python -m tbotd backtest ... --out DIR --json` process, best of ``--runs``.
* ``imports``: the top-level entries of ``python -X importtime`` for the same command (every
  module the run imports, lazily imported ones included; importtime's own overhead inflates it a
  little).
* ``load`` / ``simulate`` / ``report``: the command's own timings (``report.json``).
* ``write``: writing the files (``equity.csv``, ``equity.png``, the rest), timed by wrapping the
  writers in a fresh process that runs the real command (best of ``--runs``). That process
  imports matplotlib first (timed: ``matplotlib_import``), so ``write`` and ``equity.png``
  exclude the import, which the real command makes lazily inside the plotting.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
YEAR = 105_120
CANDLES = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"
FUNDING = "binance_BTCUSDT_funding8h_2023-01-01_2025-11-17.csv.gz"
CONFIG = REPO / "configs" / "ml_usdt_directional.toml"

# Runs the real command with the file writers wrapped in timers; prints the timers as JSON.
DRIVER = """
import json, sys, time
import tbotd.backtest.report as report, tbotd.backtest.plot as plot
spent = {}
clock = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
spent["matplotlib_import"] = time.perf_counter() - clock
def timed(module, name, key):
    name = name if hasattr(module, name) else "_" + name  # before: a private name
    inner = getattr(module, name)
    def wrapper(*args, **kwargs):
        clock = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - clock
    setattr(module, name, wrapper)
timed(report, "write_outputs", "write")
timed(report, "write_equity", "equity.csv")
timed(plot, "plot_equity", "equity.png")
from tbotd.cli import main
code = main(sys.argv[1:])
print(json.dumps(spent))
sys.exit(code)
"""


def find(name: str) -> Path:
    """A file of ../shared/data beside the repository (or /work/shared/data)."""
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        if (path := base / "shared" / "data" / name).is_file():
            return path
    sys.exit(f"{name} not found in ../shared/data")


def sparse(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """0.2 % of bars confident (0.75), the rest 0.3–0.6: a real model's shape at its threshold."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    confident = rng.random(n) < 0.002
    return pd.DataFrame(
        {
            "timestamp": frame["timestamp"],
            "signal": rng.choice(["long", "short", "neutral"], n, p=[0.4, 0.4, 0.2]),
            "confidence": np.where(confident, 0.75, rng.uniform(0.3, 0.6, n)).round(3),
            "sd": "0.004",
        }
    )


def run(prefix: list[str], args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """One process; its wall time and result."""
    clock = time.perf_counter()
    done = subprocess.run([*prefix, *args], cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - clock, done


def imports_s(args: list[str]) -> float:
    """Sum of the top-level (cumulative) entries of ``-X importtime``."""
    _, done = run([sys.executable, "-X", "importtime", "-m", "tbotd"], args)
    total = 0
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and cumulative.strip().isdigit():
                total += int(cumulative)
    return total / 1e6


def measure(tmp: Path, runs: int) -> dict[str, Any]:
    """Wall, imports and the phases of the command over the files in ``tmp``."""
    args = ["backtest", "--config", str(CONFIG), "--data", str(tmp / "year.csv")]
    args += ["--funding", str(find(FUNDING)), "--predictions", str(tmp / "predictions.csv")]
    args += ["--out", str(tmp / "out"), "--json"]
    walls, phases = [], []
    for _ in range(runs):
        walls.append(run([sys.executable, "-m", "tbotd"], args)[0])
        _, done = run([sys.executable, "-c", DRIVER], args)
        lines = done.stdout.strip().splitlines()
        phases.append(json.loads(lines[-1]) | json.loads(lines[-2])["timings"])
    best = {key: min(p.get(key, 0.0) for p in phases) for key in phases[0]}
    return {"wall_s": min(walls), "walls_s": walls, "imports_s": imports_s(args)} | best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frame = pd.read_csv(find(CANDLES)).tail(YEAR)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        frame.to_csv(tmp / "year.csv", index=False)
        sparse(frame).to_csv(tmp / "predictions.csv", index=False)
        result = measure(tmp, args.runs)
        result["trades"] = sum(1 for _ in (tmp / "out" / "trades.csv").open()) - 1
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        shown = ", ".join(f"{v:.2f}" for v in value) if isinstance(value, list) else value
        print(f"{key:>14}: {shown if not isinstance(value, float) else f'{value:.3f}'}")
    write, mpl = result.get("write", 0.0), result.get("matplotlib_import", 0.0)
    print(f"writing the files: {write / result['wall_s']:.0%} of the whole process's wall time")
    print(f"with matplotlib's import: {(write + mpl) / result['wall_s']:.0%}")


if __name__ == "__main__":
    main()
