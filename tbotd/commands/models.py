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
import sys
from pathlib import Path

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the models subcommand."""
    p = sub.add_parser(
        "models",
        help="live accuracy and calibration of each model against baselines",
        description="Rolling metrics of every model's graded predictions (per model and "
        "source) from the database of --config's store.path, or of --db.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="FILE", help="the daemon's config")
    where.add_argument("--db", type=Path, metavar="FILE", help="a database, e.g. the demo's")
    p.add_argument("--json", action="store_true", help='JSON: {"models": [...]}')
    p.set_defaults(handler=run)


def _database(args: argparse.Namespace) -> Path | None:
    """The database path, or None after saying why there is none."""
    db: Path = args.db
    if args.config is not None:
        from tbotd.config import ConfigInvalidError, load_settings

        try:
            db = Path(load_settings(args.config).store.path)
        except ConfigInvalidError as e:
            print("\n".join(str(p) for p in e.problems), file=sys.stderr)
            return None
    if not db.exists():
        print(f"tbotd models: no database at {db}", file=sys.stderr)
        return None
    return db


def run(args: argparse.Namespace) -> int:
    """Print every model's metrics as a table or JSON."""
    db = _database(args)
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
