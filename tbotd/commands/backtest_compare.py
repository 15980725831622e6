"""`tbotd backtest --compare`: the arms, their files and the terminal table (see
:mod:`tbotd.backtest.compare`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from tbotd.commands.backtest import LoadedInputs


def run_compare_command(args: argparse.Namespace, inp: LoadedInputs) -> int:
    """Every arm on the loaded inputs; compare.json and friends under --out; the table."""
    from tbotd.backtest.compare import run_compare
    from tbotd.backtest.compare_report import compare_report, write_compare
    from tbotd.backtest.report import clean
    from tbotd.backtest.run import Inputs, candle_arrays, prediction_rows

    clock = time.perf_counter()
    bars = candle_arrays(inp.data, inp.settings.exchange.timeframe)
    rows = prediction_rows(inp.table, bars, args.max_prediction_age)
    inputs = Inputs(bars, inp.table, rows, inp.market, inp.funding)
    comparison = run_compare(
        inputs,
        inp.settings,
        block_bars=args.block_bars,
        resamples=args.resamples,
        seed=args.seed,
        warmup_bars=args.warmup_bars,
    )
    timings = inp.timings | {"compare_s": time.perf_counter() - clock}
    about = inp.about | {"compare": True}
    clock = time.perf_counter()
    report = compare_report(comparison, inp.settings, about, timings)
    if args.out is not None:
        try:
            write_compare(args.out, comparison, report)
        except OSError as e:
            print(f"tbotd backtest: cannot write {args.out}: {e}", file=sys.stderr)
            return EXIT_FAILURE
        report["timings"]["write_s"] = time.perf_counter() - clock
    else:
        print("tbotd backtest: no --out given: no files written", file=sys.stderr)
    if args.json:
        print(json.dumps(clean(report)))
    else:
        _table(report, args.out)
    return EXIT_OK


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):+.1f}%"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2f}"


def _ci(part: dict[str, Any], scale: float, fmt: str) -> str:
    low, high = part["ci95_low"], part["ci95_high"]
    if low is None or high is None:
        return "n/a"
    return f"{low * scale:{fmt}}..{high * scale:{fmt}}"


def _table(report: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    cur = report["currency"]
    table = Table(title=f"tbotd backtest --compare {report['symbol']}: {report['strategy']}")
    for name, justify in (
        ("arm", "left"),
        ("return", "right"),
        ("Sharpe", "right"),
        ("max DD", "right"),
        ("trades", "right"),
        (f"fees/funding {cur}", "right"),
        ("Δ bp/bar 95%", "right"),
        ("Δ Sharpe 95%", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, arm in report["arms"].items():
        diff = report["differences"].get(name)
        table.add_row(
            name,
            _pct(arm["total_return"]),
            _num(arm["sharpe"]),
            _pct(arm["max_drawdown"]).lstrip("+").replace(" ", ""),
            f"{arm['trades']:,}",
            f"{_round(arm['fees'])}/{_round(arm['funding'])}",
            "" if diff is None else _ci(diff["mean_bar_return"], 1e4, "+.3f"),
            "" if diff is None else _ci(diff["sharpe"], 1.0, "+.2f"),
        )
    console = Console(width=None if sys.stdout.isatty() else 130)  # the table is wide
    console.print(table)
    console.print(
        "Δ: the arm minus the classic arm (a pure ML arm: minus ml_directional; an arm "
        "<mode>_no_guard: minus <mode>, the same strategy under the risk guard), per-bar "
        "return (basis points) and annualised Sharpe, "
        "95 % interval of a paired block bootstrap "
        f"({report['bootstrap']['block_bars']}-bar blocks, {report['bootstrap']['resamples']} "
        "resamples); an interval containing 0 means this history cannot tell them apart."
    )
    if out is not None:
        console.print(
            f"wrote {out}/compare.json, compare.png, trades/<arm>.csv, decisions/<arm>.csv"
        )


def _round(text: str) -> str:
    return f"{Decimal(text):.0f}"
