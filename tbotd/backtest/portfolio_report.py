"""The outputs of a portfolio backtest, written all or nothing like a single symbol's:
``report.json`` (the book's metrics, each symbol's part, the risk guard's trips and resets),
``trades.csv`` (a ``symbol`` column first), ``equity.csv`` (the book, plus each symbol's
contribution), ``risk.csv`` and ``equity.png`` (the book's equity, each symbol's contribution
below it, the drawdown)."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from tbotd.backtest.envelope import envelope
from tbotd.backtest.equity_csv import curve_columns, floats, write_columns
from tbotd.backtest.equity_csv import drawdown as drawdown_of
from tbotd.backtest.metrics import DEFINITIONS, REPORT_VERSION, curve_metrics, trade_metrics
from tbotd.backtest.portfolio_run import PortfolioResult
from tbotd.backtest.report import TRADE_COLUMNS, _iso, clean, risk_events, trade_row
from tbotd.backtest.run import BacktestResult
from tbotd.domain.values import timeframe_ms

OUTPUT_FILES = ("trades.csv", "equity.csv", "risk.csv", "equity.png", "report.json")


def book(result: PortfolioResult) -> BacktestResult:
    """The whole book as one result (for the metrics every report shares)."""
    first = result.legs[0]
    return replace(
        first,
        symbol=",".join(result.symbols),
        trades=result.trades,
        equity=result.equity,
        initial_equity=result.initial_equity,
        final_equity=result.final_equity,
        fees=result.fees,
        funding=result.funding,
        bars=result.bars,
        decided=(),
        traced=None,
    )


def _leg(leg: BacktestResult) -> dict[str, Any]:
    net = sum((t.net for t in leg.trades), Decimal(0))
    wins = sum(1 for t in leg.trades if t.net > 0)
    return {
        "trades": len(leg.trades),
        "trades_by_exit_reason": dict(Counter(t.exit_reason for t in leg.trades)),
        "net_pnl": str(net),
        "fees": str(leg.fees),
        "funding": str(leg.funding),
        "win_rate": wins / len(leg.trades) if leg.trades else None,
        "skipped_orders": leg.skipped,
        "market": {
            "tick_size": str(leg.market.tick_size),
            "step_size": str(leg.market.step_size),
            "min_notional": str(leg.market.min_notional),
            "contract_size": str(leg.market.contract_size),
        },
    }


def build_portfolio_report(
    result: PortfolioResult, inputs: Mapping[str, Any], timings: Mapping[str, float]
) -> dict[str, Any]:
    """The book's metrics, each symbol's part and the risk events."""
    whole = book(result)
    seconds = float(sum(timings.values()))
    first, last = int(result.equity.open_ms[0]), int(result.equity.open_ms[-1])
    symbol_bars = result.bars * len(result.symbols)
    return {
        "report_version": REPORT_VERSION,
        "complete": True,
        "symbols": list(result.symbols),
        "currency": result.currency,
        "timeframe": whole.timeframe,
        "start": _iso(first),
        "end": _iso(last + timeframe_ms(whole.timeframe)),
        "bars": result.bars,
        "trades": len(result.trades),
        "strategy": result.strategy,
        **curve_metrics(whole),
        **trade_metrics(whole),
        "initial_equity": str(result.initial_equity),
        "final_equity": str(result.final_equity),
        "fees": str(result.fees),
        "funding": str(result.funding),
        "per_symbol": {leg.symbol: _leg(leg) for leg in result.legs},
        "risk": risk_events(result.risk),
        "seconds": seconds,
        "timings": dict(timings),
        "symbol_bars_per_second": symbol_bars / result.seconds if result.seconds > 0 else None,
        "inputs": dict(inputs),
        "definitions": DEFINITIONS,
    }


def write_portfolio_outputs(
    out: Path, result: PortfolioResult, report: Mapping[str, Any]
) -> list[Path]:
    """Every output into ``out`` (created if needed), all or nothing; report.json last."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _trades(result, tmp / "trades.csv")
        _equity(result, tmp / "equity.csv")
        _risk(report["risk"], tmp / "risk.csv")
        plot_portfolio(result, tmp / "equity.png")
        text = json.dumps(clean(dict(report)), indent=2, sort_keys=False)
        (tmp / "report.json").write_text(text + "\n", encoding="utf-8")
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        out.mkdir(exist_ok=True)
        (out / "report.json").unlink(missing_ok=True)
        for name in OUTPUT_FILES:
            (tmp / name).replace(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in OUTPUT_FILES]


def _trades(result: PortfolioResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("symbol", *TRADE_COLUMNS))
        for t in result.trades:
            writer.writerow((t.symbol, *trade_row(t)))


def _equity(result: PortfolioResult, path: Path) -> None:
    """The book's curve (no ``position``: it is per symbol) and each symbol's contribution."""
    columns = curve_columns(result.equity, float(result.initial_equity))
    del columns["position"]
    for leg in result.legs:
        columns[f"pnl:{leg.symbol}"] = floats(leg.equity.equity)
    write_columns(path, columns)


def _risk(events: Sequence[Mapping[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["time", "event", "rule", "symbol", "detail"])
        writer.writeheader()
        writer.writerows(events)


def plot_portfolio(result: PortfolioResult, path: Path) -> None:
    """Three panels sharing time: the book's equity (risk trips marked), each symbol's
    contribution (PnL after fees and funding, unrealised included), the drawdown."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.equity
    times = curve.open_ms.astype("datetime64[ms]")
    equity = curve.equity
    drawdown = drawdown_of(equity, float(result.initial_equity))
    fig, (top, mid, bottom) = plt.subplots(
        3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    drawn = envelope(times, equity)  # the points the pixels can show (first, min, max, last)
    top.plot(times[drawn], equity[drawn], color="#1f4e79", linewidth=0.8, label="book equity")
    top.axhline(float(result.initial_equity), color="grey", linewidth=0.6, linestyle="--")
    for change in result.risk:
        if change.tripped:
            top.axvline(np.datetime64(change.at_ms, "ms"), color="#c62828", linewidth=0.8)
    top.set_ylabel(f"equity ({result.currency})")
    top.legend(loc="upper left", fontsize=8)
    growth = float(result.final_equity / result.initial_equity - 1)
    top.set_title(
        f"tbotd backtest {', '.join(result.symbols)}: {len(result.trades)} trades, "
        f"return {growth:+.2%}, max drawdown {drawdown.max():.2%}, "
        f"{sum(1 for c in result.risk if c.tripped)} risk trips"
    )
    for leg in result.legs:
        drawn = envelope(times, leg.equity.equity)
        mid.plot(times[drawn], leg.equity.equity[drawn], linewidth=0.8, label=leg.symbol)
    mid.axhline(0, color="grey", linewidth=0.6, linestyle="--")
    mid.set_ylabel(f"contribution ({result.currency})")
    mid.legend(loc="upper left", fontsize=8)
    drawn = envelope(times, drawdown)
    bottom.fill_between(
        times[drawn], -100 * drawdown[drawn], 0, color="#c62828", alpha=0.4, linewidth=0
    )
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.set_layout_engine(None)  # else savefig draws the whole figure twice (matplotlib 3.11)
    fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})  # zlib level 6: 0.1 s more
    plt.close(fig)
