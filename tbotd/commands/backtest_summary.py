"""`tbotd backtest`'s terminal summary (the report's numbers as a table, rounded for reading;
report.json keeps them exact)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbotd.backtest import BacktestResult


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100 * float(value):.2f} %"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def print_summary(report: dict[str, Any], result: BacktestResult, out: Path | None) -> None:
    """The terminal table of one backtest: returns, risk, costs, counts, and its warnings."""
    from rich.console import Console
    from rich.table import Table

    cur = report["currency"]
    table = Table(title=f"tbotd backtest {report['symbol']} {report['start']} → {report['end']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("strategy", report["strategy"]),
        ("bars", f"{report['bars']:,}"),
        ("trades", f"{report['trades']:,}  {_counts(report['trades_by_exit_reason'])}"),
        ("initial → final equity", f"{report['initial_equity']} → {_money(result)} {cur}"),
        ("total return", _fmt(report["total_return"], pct=True)),
        ("buy and hold (unleveraged)", _fmt(report.get("buy_and_hold_return"), pct=True)),
        ("CAGR", _fmt(report["cagr"], pct=True)),
        ("Sharpe / Sortino (annualised)", f"{_fmt(report['sharpe'])} / {_fmt(report['sortino'])}"),
        ("max drawdown", _fmt(report["max_drawdown"], pct=True)),
        (
            "win rate / profit factor",
            f"{_fmt(report['win_rate'], pct=True)} / {_fmt(report['profit_factor'])}",
        ),
        ("exposure", _fmt(report["exposure"], pct=True)),
        ("fees / funding", f"{_round(report['fees'])} / {_round(report['funding'])} {cur}"),
        ("predictions", _counts(report["predictions"])),
        ("skipped orders", _counts(report["skipped_orders"]) or "none"),
        ("time", f"{report['seconds']:.2f} s ({report['bars_per_second']:,.0f} bars/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning: {warning}[/]")
    if out is not None:
        console.print(f"wrote {out}/report.json, trades.csv, decisions.csv, equity.csv, equity.png")


def _counts(counts: dict[str, Any]) -> str:
    """``take_profit 3 · stop_loss 2`` rather than a Python dict."""
    return " · ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items())


def _round(text: str) -> str:
    return f"{Decimal(text):.6f}".rstrip("0").rstrip(".")


def _money(result: BacktestResult) -> str:
    return _round(str(result.final_equity))
