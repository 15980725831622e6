"""The outputs of ``tbotd backtest --compare``, written all or nothing.

``compare.json`` (``{"arms": {name: <the keys of report.json> + accounts}, "differences":
{mode: ...}}``), ``trades/<arm>.csv``, ``decisions/<arm>.csv`` and ``compare.png`` (every arm's
equity curve, drawdowns below). Like ``report.json`` for a single run, ``compare.json`` is moved
into place last, so a folder with it is complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tbotd.backtest.compare import Comparison, accounts
from tbotd.backtest.metrics import REPORT_VERSION
from tbotd.backtest.report import build_report, clean, write_decisions, write_trades
from tbotd.config.settings import Settings

COLOURS = {
    "classic": "#1f4e79",
    "boost": "#2e7d32",
    "filter": "#ef6c00",
    "replace": "#6a1b9a",
    "hybrid": "#00838f",
    "ml_directional": "#c62828",
    "ml_momentum": "#ad1457",
    "ml_mean_reversion": "#4e342e",
    "buy_and_hold": "#757575",
}


def compare_report(
    comparison: Comparison,
    settings: Settings,
    inputs: Mapping[str, Any],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """compare.json: every arm's report and ledger check, and the differences to classic."""
    arms = {}
    for name, result in comparison.arms.items():
        report = build_report(result, settings, inputs, {"simulate_s": result.seconds})
        report["accounts"] = accounts(result)
        for key in ("inputs", "definitions", "timings", "market", "config"):
            report.pop(key, None)  # said once, at the top
        arms[name] = report
    first = comparison.arms["classic"]
    return {
        "report_version": REPORT_VERSION,
        "complete": True,
        "symbol": first.symbol,
        "currency": first.currency,
        "bars": first.bars,
        "strategy": comparison.strategy,
        "arms": arms,
        "differences": {name: d.as_dict() for name, d in comparison.differences.items()},
        "bootstrap": {
            "method": "paired circular block bootstrap of per-bar equity returns",
            "block_bars": comparison.block_bars,
            "resamples": comparison.resamples,
            "seed": comparison.seed,
            "sharpe_when_flat": 0.0,
        },
        "config": build_report(first, settings, inputs, {})["config"],
        "inputs": dict(inputs),
        "timings": dict(timings),
    }


def write_compare(out: Path, comparison: Comparison, report: Mapping[str, Any]) -> list[Path]:
    """Write every output into ``out`` (created if needed), all or nothing; compare.json last."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    names = ["trades", "decisions", "compare.png", "compare.json"]
    try:
        for folder in ("trades", "decisions"):
            (tmp / folder).mkdir()
        for name, result in comparison.arms.items():
            write_trades(result.trades, tmp / "trades" / f"{name}.csv")
            write_decisions(result.decisions, tmp / "decisions" / f"{name}.csv")
        plot_compare(comparison, tmp / "compare.png")
        text = json.dumps(clean(dict(report)), indent=2)
        (tmp / "compare.json").write_text(text + "\n", encoding="utf-8")
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        out.mkdir(exist_ok=True)
        (out / "compare.json").unlink(missing_ok=True)  # no stale report beside new files
        for name in names:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            (tmp / name).replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in names]


def plot_compare(comparison: Comparison, path: Path) -> None:
    """Every arm's equity curve (top) and drawdown (below), on one time axis."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    first = comparison.arms["classic"]
    for name, result in comparison.arms.items():
        curve = result.equity
        times = curve.open_ms.astype("datetime64[ms]")
        equity = curve.equity
        peak = np.maximum.accumulate(np.concatenate([[float(result.initial_equity)], equity]))[1:]
        drawdown = np.where(peak > 0, 1.0 - equity / peak, 0.0)
        growth = float(result.final_equity / result.initial_equity - 1)
        width = 1.4 if name == "classic" else 0.8
        label = f"{name} ({growth:+.1%}, {len(result.trades)} trades)"
        top.plot(times, equity, color=COLOURS.get(name, "#000000"), linewidth=width, label=label)
        bottom.plot(times, -100 * drawdown, color=COLOURS.get(name, "#000000"), linewidth=0.7)
    top.axhline(float(first.initial_equity), color="grey", linewidth=0.6, linestyle="--")
    top.set_ylabel(f"equity ({first.currency})")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(
        f"tbotd backtest --compare {first.symbol} {first.timeframe}: "
        f"{comparison.strategy}, after fees and funding"
    )
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
