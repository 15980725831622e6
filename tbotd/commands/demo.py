"""`tbotd demo`: the daemon against the built-in exchange, accelerated, in about a minute."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tbotd.commands import EXIT_FAILURE, EXIT_OK, threads_arg


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _speed(value: str) -> float:
    number = float(value)
    if not 1 <= number <= 3000:
        raise argparse.ArgumentTypeError("must be within [1, 3000]")
    return number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the demo subcommand."""
    demo = sub.add_parser(
        "demo",
        help="run the daemon against the built-in exchange, accelerated (no account needed)",
        description="Starts `tbotd sim` in-process, trains small local models on its history "
        "(unless the config names models), runs the daemon for N cycles, and writes a summary, "
        "an equity PNG and the database under --out.",
    )
    demo.add_argument(
        "--cycles", type=_positive_int, default=100, help="cycles (5-minute candles) to run (100)"
    )
    demo.add_argument(
        "--speed",
        type=_speed,
        default=1200.0,
        help="market seconds per wall second (1200: a 5-minute candle in 0.25 s)",
    )
    demo.add_argument(
        "--mode",
        choices=["paper", "live-sim"],
        default="paper",
        help="paper broker, or the live broker through ccxt against the sim",
    )
    demo.add_argument(
        "--data",
        type=Path,
        metavar="CSV",
        help="candles to replay (timestamp,open,high,low,close,volume; .gz ok)",
    )
    demo.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a config to run instead of the built-in configs/demo.toml",
    )
    demo.add_argument(
        "--threads",
        type=threads_arg,
        default=None,
        metavar="auto|N",
        help="torch CPU threads for training (auto: 1 for the demo's small models, which "
        "barely parallelise; one thread gives the same weights on every run)",
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of the generated market and of training"
    )
    demo.add_argument("--out", type=Path, default=Path("tbotd-demo"), help="output folder")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON, last")
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="after the last cycle, keep the dashboard up (from the database) until Ctrl-C",
    )
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo with progress on a terminal, then print the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tbotd.daemon.demo import DemoOptions, run_demo
    from tbotd.ops.logs import configure_logging

    configure_logging("warning", "auto", sys.stderr)
    options = DemoOptions(
        args.cycles,
        args.speed,
        args.mode,
        args.data,
        args.out,
        args.config,
        seed=args.seed,
        threads=args.threads,
        keep_open=args.keep_open,
    )
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        training = progress.add_task("training local models", total=None)
        cycles = progress.add_task("cycles", total=args.cycles, visible=False)

        def trained(_what: str, done: int, total: int) -> None:
            progress.update(training, completed=done, total=total)

        def cycled(_report: Any) -> None:
            progress.update(training, visible=False)
            progress.update(cycles, advance=1, visible=True)

        def opened(url: str) -> None:
            console.print(f"dashboard: {url}/  (open it in a browser; it updates live)")

        def finished(summary: dict[str, Any]) -> None:
            progress.stop()
            _report(summary, args)
            console.print(f"the dashboard stays up at {summary['dashboard']}/ — Ctrl-C to stop")

        summary = asyncio.run(run_demo(options, trained, cycled, opened, finished))
    if "dashboard" not in summary:  # with --keep-open, reported before the dashboard's wait
        _report(summary, args)
    return EXIT_FAILURE if summary.get("exit_code") else EXIT_OK


def _report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    if summary.get("exit_code"):
        print(f"tbotd demo: the daemon stopped with a failure: see {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        _table(summary)


def _table(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("", "", title=f"tbotd demo ({summary['mode']})", show_header=False)
    table.add_row("cycles", str(summary["cycles"]))
    table.add_row("strategy", str(summary["strategy"]))
    table.add_row(
        "decisions by provenance",
        ", ".join(f"{k}: {v}" for k, v in summary["decisions_by_provenance"].items()),
    )
    table.add_row(
        "predictions by source",
        ", ".join(f"{k}: {v}" for k, v in summary["predictions_by_source"].items()),
    )
    table.add_row("models", str(summary["models"]))
    table.add_row("trades (closed)", f"{summary['trades']} (+{summary['open_positions']} open)")
    table.add_row("PnL after fees and funding", f"{summary['pnl']} {summary['currency']}")
    table.add_row("fees", f"{summary['fees']} {summary['currency']}")
    table.add_row(
        "equity", f"{summary['equity']} {summary['currency']} (from {summary['initial_capital']})"
    )
    for name, path in summary["files"].items():
        table.add_row(name, path)
    from rich.console import Console

    Console().print(table)
