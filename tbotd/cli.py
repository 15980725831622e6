"""The `tbotd` command line. Every command, one place; the work itself lives in its package.

Exit codes are stable: 0 ok, 2 bad input or config, 1 runtime failure (130 on Ctrl-C).
Heavy imports (torch, ccxt) happen inside the handlers so `tbotd --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tbotd import __version__
from tbotd.domain.errors import ConfigError, InvalidDataError, TbotdError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

Handler = Callable[[argparse.Namespace], int]


def _check_config(args: argparse.Namespace) -> int:
    from tbotd.config import ConfigInvalidError, load_settings

    try:
        settings = load_settings(args.file)
    except ConfigInvalidError as e:
        if args.json:
            problems = [vars(p) for p in e.problems]
            print(json.dumps({"ok": False, "file": str(args.file), "problems": problems}))
        else:
            print(f"{args.file}: {len(e.problems)} problem(s):", file=sys.stderr)
            for problem in e.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    effective = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps({"ok": True, "file": str(args.file), "config": effective}))
    else:
        print(f"# {args.file}: ok (effective configuration, secrets masked)")
        print(_as_toml(effective))
    return EXIT_OK


def _as_toml(config: dict[str, Any]) -> str:
    """A readable TOML rendering of the effective config (values as JSON literals)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="tbotd",
        description="Trade perpetual futures with an ML directional strategy.",
        epilog="Exit codes: 0 ok, 2 bad input or config, 1 runtime failure.",
    )
    parser.add_argument("--version", action="version", version=f"tbotd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective configuration",
        description="Validate FILE with TBOTD_* environment overrides applied. Exit 0 and print "
        "the effective config (secrets masked), or exit 2 listing every problem.",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except (ConfigError, InvalidDataError) as e:
        print(f"tbotd {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TbotdError as e:
        print(f"tbotd {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILURE
