"""`tbotd trades --config FILE | --db FILE [--since ISO] [--symbol S] [--csv]`: closed trades.

Read from the database, so it works whether or not the daemon runs (SQLite's WAL lets a reader
in beside the writer). The CSV has the backtest's `trades.csv` columns with the symbol first, so
one spreadsheet reads both.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK
from tbotd.commands.database import add_database_choice, database_path

if TYPE_CHECKING:
    from tbotd.store.wallet import Trade


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the trades subcommand."""
    p = sub.add_parser(
        "trades",
        help="list closed trades from a daemon's database (running or not)",
        description="Every closed trade (entry, exit, reason, PnL, fees, funding, stop, target) "
        "from the database of --config's store.path, or of --db.",
    )
    add_database_choice(p)
    p.add_argument("--since", type=_utc, metavar="ISO", help="trades closed at or after (UTC)")
    p.add_argument("--symbol", help="one symbol only, e.g. BTC/USDT:USDT")
    p.add_argument("--csv", action="store_true", help="CSV on standard output")
    p.set_defaults(handler=run)


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    """Print the trades as a table (with totals) or CSV."""
    db = database_path(args)
    if db is None:
        return EXIT_BAD_INPUT
    from tbotd.store import Store

    store = Store.open(db)
    try:
        trades = [
            t for t in store.trades(args.symbol) if args.since is None or t.exit_time >= args.since
        ]
    finally:
        store.close()
    if args.csv:
        try:
            _csv(trades)
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stderr.close()
    else:
        _table(trades, db)
    return EXIT_OK


def _csv(trades: list[Trade]) -> None:
    from tbotd.backtest.report import TRADE_COLUMNS, trade_row

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("symbol", *TRADE_COLUMNS))
    writer.writerows((t.symbol, *trade_row(t)) for t in trades)


def _table(trades: list[Trade], db: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "symbol", "side", "qty", "entry (UTC)", "exit (UTC)", "entry", "exit", "reason",
        "net", "fees", title=f"closed trades in {db}",
    )  # fmt: skip
    for t in trades:
        table.add_row(
            t.symbol, str(t.side), str(t.qty), _when(t.entry_time), _when(t.exit_time),
            str(t.entry_price), str(t.exit_price), t.exit_reason, str(t.net), str(t.fees),
        )  # fmt: skip
    console = Console()
    console.print(table)
    net = sum((t.net for t in trades), Decimal(0))
    wins = sum(1 for t in trades if t.net > 0)
    currency = trades[0].currency if trades else ""
    console.print(f"{len(trades)} trades, {wins} winning, net {net} {currency}".rstrip())


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
