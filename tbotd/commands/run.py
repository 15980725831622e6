"""`tbotd run --config FILE`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the run subcommand."""
    run_ = sub.add_parser(
        "run",
        help="run the trading daemon",
        description="Recover (reconcile with the venue), then decide every candle close until "
        "SIGTERM. Exit 0 on a clean stop, 1 on a failure systemd should restart from.",
    )
    run_.add_argument("--config", type=Path, required=True, metavar="FILE")
    run_.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, configure logging, run the daemon."""
    from tbotd.config import ConfigInvalidError, load_settings
    from tbotd.domain.errors import ConfigError, FatalError
    from tbotd.ops.imports import hidden
    from tbotd.ops.logs import configure_for, get_logger

    try:
        settings = load_settings(args.config)
    except ConfigInvalidError as e:
        print(f"{args.config}: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_for(settings)
    log = get_logger("tbotd.run")
    # remote-only ML needs no pandas: its libraries' optional imports of it are skipped (~35 MB)
    with hidden("pandas") if settings.ml.models_dir is None else contextlib.nullcontext():
        from tbotd.daemon.lifecycle import Daemon

    try:
        return asyncio.run(Daemon(settings, args.config).run())
    except ConfigError as e:  # the operator's to fix (e.g. the database is in use): one line
        print(f"tbotd run: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FatalError as e:
        log.error("fatal", error=str(e), kind=type(e).__name__)  # noqa: TRY400 - named error
        return EXIT_FAILURE
