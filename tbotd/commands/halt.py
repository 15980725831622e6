"""`tbotd halt [--flatten] --config FILE` and `tbotd resume --config FILE`: the kill switch.

Both write a numbered command into the daemon's own database (``store.path``), which the
daemon reads at every candle close: a halt stops new entries from its next close on (with
``--flatten`` it also closes every position, its protective orders cancelled with it) and
persists across restarts; a resume lifts the halt and resets every tripped risk rule (the
current equity becomes the new peak). The daemon need not be running: a halt written while it
is down holds from its first close. The database must exist: a command written into a new,
empty file (a relative ``store.path`` read from another directory than the daemon's, a unit
that sets ``TBOTD_STORE__PATH``) would reach no daemon, so it is refused, naming the path; or
name the database itself with ``--db``. Exit 0 ok, 2 bad config or no such database, 1 the
database cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from tbotd.commands.database import add_database_choice, database_path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the halt and resume subcommands."""
    halt = sub.add_parser(
        "halt",
        help="kill switch: stop new entries (and with --flatten close every position)",
        description="Stops the daemon's new entries from its next candle close, until "
        "`tbotd resume`; survives restarts. --flatten also closes every position.",
    )
    add_database_choice(halt)
    halt.add_argument("--flatten", action="store_true", help="also close every position")
    halt.add_argument("--json", action="store_true", help="print the command as JSON")
    halt.set_defaults(handler=run_halt)
    resume = sub.add_parser(
        "resume",
        help="lift a halt and reset every tripped risk rule",
        description="Lifts `tbotd halt` and resets the risk guard's tripped rules (the equity "
        "at the next close becomes the drawdown's new peak).",
    )
    add_database_choice(resume)
    resume.add_argument("--json", action="store_true", help="print the command as JSON")
    resume.set_defaults(handler=run_resume)


def run_halt(args: argparse.Namespace) -> int:
    """Record a halt."""
    return _write(args, halt=True, flatten=args.flatten)


def run_resume(args: argparse.Namespace) -> int:
    """Record a resume."""
    return _write(args, halt=False, flatten=False)


def _write(args: argparse.Namespace, *, halt: bool, flatten: bool) -> int:
    from tbotd.daemon.risk import write_command
    from tbotd.domain.errors import TbotdError
    from tbotd.store import Store

    path = database_path(
        args, "the daemon's database; a command written elsewhere reaches no daemon"
    )
    if path is None:
        return EXIT_BAD_INPUT
    try:
        store = Store.open(path)
        try:
            command = write_command(store, halt=halt, flatten=flatten, at=datetime.now(UTC))
        finally:
            store.close()
    except (TbotdError, OSError) as e:
        print(f"tbotd {'halt' if halt else 'resume'}: cannot write {path}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    flatten = command.halt is not None and command.halt.flatten  # kept from an unapplied one
    what = "halt" + (" with flatten" if flatten else "") if halt else "resume"
    if args.json:
        print(json.dumps({"command": what, "seq": command.seq, "database": str(path)}))
    elif halt:
        then = ", closes every position" if flatten else ""
        print(
            f"{what} #{command.seq} recorded in {path}: the daemon stops new entries at its "
            f"next close{then}, until `tbotd resume {_where(args)}`"
        )
    else:
        print(f"resume #{command.seq} recorded in {path}: applied at the daemon's next close")
    return EXIT_OK


def _where(args: argparse.Namespace) -> str:
    """The database option as the user gave it (for the resume hint)."""
    return f"--config {args.config}" if args.config is not None else f"--db {args.db}"
