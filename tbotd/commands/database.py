"""The offline commands' one way to name a daemon's database: ``--config FILE`` (its
``store.path``) or ``--db FILE``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_database_choice(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--config FILE | --db FILE``, one of them required (``required`` False: a parser whose
    subcommands take them; :func:`database_path` then refuses when neither is given)."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--config", type=Path, metavar="FILE", help="the daemon's config")
    where.add_argument("--db", type=Path, metavar="FILE", help="a database, e.g. the demo's")


def database_path(args: argparse.Namespace, why_it_must_exist: str = "") -> Path | None:
    """The database the arguments name, or None after saying on stderr why there is none
    (``why_it_must_exist``: said beside "no database at …")."""
    if args.config is None and args.db is None:
        print(
            f"tbotd {args.command}: one of --config FILE or --db FILE is required", file=sys.stderr
        )
        return None
    db: Path = args.db
    if args.config is not None:
        from tbotd.config import ConfigInvalidError, load_settings

        try:
            db = Path(load_settings(args.config).store.path)
        except ConfigInvalidError as e:
            print("\n".join(str(p) for p in e.problems), file=sys.stderr)
            return None
    try:
        exists = db.exists()
    except OSError as e:  # a directory this user may not read (systemd's DynamicUser=)
        print(f"tbotd {args.command}: cannot read {db}: {e} (run as its owner)", file=sys.stderr)
        return None
    if not exists:
        hint = f" ({why_it_must_exist})" if why_it_must_exist else ""
        if args.config is not None and not db.is_absolute():
            hint += (
                f"; store.path {db} is relative to the current directory: run from the "
                "daemon's working directory, or give --db the daemon's database (a systemd "
                "unit's TBOTD_STORE__PATH)"
            )
        print(f"tbotd {args.command}: no database at {db}{hint}", file=sys.stderr)
        return None
    return db
