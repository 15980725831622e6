"""Calibration of the direction model's confidence, walk-forward out of sample, on two assets.

    .venv/bin/python benchmarks/calibration_bench.py [--rows N] [--days N] [--json]

Runs `tbotd train` (a fresh process each) on the newest ``--rows`` real Binance BTC/USDT 5-minute
candles of ``../shared/data`` and on ``--days`` of generated assets — the `tbotd sim` generator's
seeded "ETH" (one-minute bars aggregated to five; no predictable structure), a GARCH asset with a
weak AR(1), and three seeds of an asset that overreacts and comes back about as much as BTC does
— then prints each run's reliability table: per confidence bin, calls, mean predicted confidence,
observed frequency and the gap, for the calibrated probabilities and the same models' raw
softmax. Target (issue: calibrated confidence): every bin with ≥ 300 calls within 5 points.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tbotd.sim.sources import GeneratorSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_threads_bench import REPO, find_csv

DAY_MS = 86_400_000
ORIGIN_MS = 1_672_531_200_000  # 2023-01-01 UTC


def generated_csv(days: int, path: Path, seed: int = 7) -> Path:
    """``days`` of the generator's "ETH" market as 5-minute candles in a CSV."""
    source = GeneratorSource(seed, "ETH", Decimal(2000), Decimal("0.01"), ORIGIN_MS)
    bars = source.window(ORIGIN_MS, ORIGIN_MS + days * DAY_MS)
    n = len(bars) // 5 * 5
    scale = 10.0**source.price_exp
    t, o, h, lo, c, v = (np.asarray(col[:n]) for col in bars.columns())
    frame = pd.DataFrame(
        {
            "timestamp": t[::5],
            "open": o[::5] / scale,
            "high": h.reshape(-1, 5).max(axis=1) / scale,
            "low": lo.reshape(-1, 5).min(axis=1) / scale,
            "close": c[4::5] / scale,
            "volume": v.reshape(-1, 5).sum(axis=1) / 10.0**source.volume_exp,
        }
    )
    frame.to_csv(path, index=False)
    return path


def structured_csv(bars: int, path: Path, seed: int = 11) -> Path:
    """A generated asset with the structure real 5-minute returns have: GARCH(1,1) volatility,
    Student-t shocks and a little short-horizon mean reversion (AR(1) of -0.08)."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta, phi = 2e-8, 0.08, 0.9, -0.08
    var = omega / (1 - alpha - beta)
    shocks = rng.standard_t(5, bars) / np.sqrt(5 / 3)
    ret = np.empty(bars)
    prev = 0.0
    for i in range(bars):
        eps = np.sqrt(var) * shocks[i]
        ret[i] = phi * prev + eps
        var = omega + alpha * eps**2 + beta * var
        prev = ret[i]
    close = 2000 * np.exp(np.cumsum(ret))
    return _ohlcv_csv(close, np.sqrt(omega / (1 - alpha - beta)), rng, path)


def _ohlcv_csv(close: np.ndarray, typical_sd: float, rng: np.random.Generator, path: Path) -> Path:
    """5-minute candles around a close path from 2,000: open = previous close, wicks of about a
    typical bar's move, volume larger on larger moves."""
    bars = len(close)
    open_ = np.concatenate([[2000.0], close[:-1]])
    wick = np.abs(rng.standard_normal((2, bars))) * typical_sd * close
    frame = pd.DataFrame(
        {
            "timestamp": ORIGIN_MS + np.arange(bars, dtype=np.int64) * 300_000,
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": rng.lognormal(3.0, 0.5, bars) * (1 + np.abs(np.log(close / open_)) / 0.002),
        }
    )
    frame.to_csv(path, index=False)
    return path


def overreacting_csv(bars: int, path: Path, seed: int = 13) -> Path:
    """A generated asset whose price overreacts and comes back: a GARCH(1,1) efficient price
    with Student-t shocks, seen through a deviation that decays with a half-life of an hour
    (AR(1) per bar). The structure behind real 5-minute crypto's short-horizon mean reversion
    (the contrarian baseline), at about BTC's strength: a model has an edge to calibrate."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 2e-8, 0.08, 0.9
    rho = 0.5 ** (1 / 12)
    var = omega / (1 - alpha - beta)
    shocks = rng.standard_t(5, (2, bars)) / np.sqrt(5 / 3)
    efficient = np.empty(bars)
    deviation = np.empty(bars)
    level = dev = 0.0
    for i in range(bars):
        sd = np.sqrt(var)
        eps = sd * shocks[0, i]
        level += eps
        # the deviation's stationary sd is 0.75 of an hour's efficient move
        dev = rho * dev + 0.75 * np.sqrt(12 * (1 - rho**2)) * sd * shocks[1, i]
        efficient[i], deviation[i] = level, dev
        var = omega + alpha * eps**2 + beta * var
    close = 2000 * np.exp(efficient + deviation)
    return _ohlcv_csv(close, np.sqrt(omega / (1 - alpha - beta)), rng, path)


def train_report(csv: Path, rows: int | None, out: Path) -> dict[str, Any]:
    """Run `tbotd train` on ``csv`` and return its report.json."""
    cmd = [sys.executable, "-m", "tbotd", "train", "--data", str(csv), "--out", str(out)]
    cmd += ["--json", "--force"] + (["--max-rows", str(rows)] if rows else [])
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def table(name: str, report: dict[str, Any]) -> list[str]:
    """The reliability table of one run, calibrated beside uncalibrated."""
    d = report["direction"]
    cal = d["calibration"]
    raw = {round(b["lo"], 2): b for b in cal["uncalibrated"]["reliability"]}
    head = f"{'calls':>7} {'pred':>6} {'obs':>6} {'gap':>6}"
    lines = [
        (
            f"{name}: {report['evaluation']['oos_bars']:,} out-of-sample bars, methods per fold "
            f"{cal['methods']} (final {cal['final_method']})"
        ),
        f"  {'bin':>9} {head} | raw: {head}",
    ]
    for b in d["reliability"]:
        r = raw.get(round(b["lo"], 2))
        gap = 100 * (b["mean_confidence"] - b["accuracy"])
        line = (
            f"  {b['lo']:.1f}-{b['hi']:.1f} {b['count']:>7} {b['mean_confidence']:6.3f} "
            f"{b['accuracy']:6.3f} {gap:+6.1f}"
        )
        if r:
            rg = 100 * (r["mean_confidence"] - r["accuracy"])
            line += f" |      {r['count']:>7} {r['mean_confidence']:6.3f} "
            line += f"{r['accuracy']:6.3f} {rg:+6.1f}"
        lines.append(line)
    c, u = cal["calibrated"], cal["uncalibrated"]
    lines.append(
        f"  worst bin with >= 300 calls: {c['max_gap_points']:.1f} pts calibrated, "
        f"{u['max_gap_points']:.1f} raw; target met: {c['target_met']}"
    )
    return lines


def main() -> int:
    """Train on every asset and print (or JSON-dump) its calibration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="newest BTC rows (all)")
    parser.add_argument("--days", type=int, default=365, help="days of the generated asset")
    parser.add_argument("--data", default=None, help="the BTC candles CSV")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        runs = {
            "generated ETH": generated_csv(args.days, base / "eth.csv"),
            "generated GARCH-AR": structured_csv(args.days * 288, base / "garch.csv"),
        } | {
            f"generated overreacting (seed {seed})": overreacting_csv(
                args.days * 288, base / f"over{seed}.csv", seed
            )
            for seed in (13, 14, 15)
        }
        btc = find_csv(args.data)
        if btc is not None:
            runs = {"BTC/USDT (Binance)": btc} | runs
        for name, csv in runs.items():
            out = base / "".join(c for c in name if c.isalnum())
            report = train_report(csv, args.rows if "BTC" in name else None, out)
            results[name] = report["direction"]["calibration"] | {
                "reliability": report["direction"]["reliability"]
            }
            print("\n".join(table(name, report)), flush=True)
    if args.json:
        print(json.dumps({k: {"calibrated": v["calibrated"]} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
