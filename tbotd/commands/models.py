"""`tbotd models --config FILE | --db FILE [--json]`: how each model's predictions turned out.

Read from the database (running daemon or not; SQLite's WAL lets a reader in beside the writer):
the outcomes the daemon graded after each close, as rolling metrics per model and source over
the last 50 / 200 / 1,000 scored predictions and since the model went live — hit rate ± its
standard error beside the always-long and contrarian baselines on the same bars, Brier score,
expected calibration error and ``sd`` band coverage. A number not yet known says "n too small".
"""

from __future__ import annotations

import argparse
import json

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK
from tbotd.commands.database import add_database_choice, database_path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the models subcommand."""
    p = sub.add_parser(
        "models",
        help="live accuracy and calibration of each model against baselines",
        description="Rolling metrics of every model's graded predictions (per model and "
        "source) from the database of --config's store.path, or of --db.",
    )
    add_database_choice(p)
    p.add_argument("--json", action="store_true", help='JSON: {"models": [...]}')
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print every model's metrics as a table or JSON."""
    db = database_path(args)
    if db is None:
        return EXIT_BAD_INPUT
    from tbotd.daemon.monitor import load_saved
    from tbotd.monitoring.report import models_json, table
    from tbotd.store import Store

    store = Store.open(db)
    try:
        models = load_saved(store).metrics()  # what /status shows, read the same bounded way
    finally:
        store.close()
    if args.json:
        print(json.dumps({"models": models_json(models)}, indent=2))
    else:
        print(table(models))
    return EXIT_OK
