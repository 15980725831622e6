"""The `tbotd` command line: every subcommand, registered from ``tbotd/commands``.

Exit codes are stable: 0 ok, 2 bad input or config, 1 runtime failure (130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from tbotd import __version__
from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE
from tbotd.domain.errors import ConfigError, InvalidDataError, TbotdError
from tbotd.ops.signals import Terminated, install_early, restore, stopped_by_signal

# One module per subcommand, in the order `tbotd --help` lists them.
COMMAND_MODULES = (
    "tbotd.commands.demo",
    "tbotd.commands.run",
    "tbotd.commands.status",
    "tbotd.commands.halt",
    "tbotd.commands.trades",
    "tbotd.commands.check_config",
    "tbotd.commands.notify",
    "tbotd.commands.sim",
    "tbotd.commands.train",
    "tbotd.commands.backtest",
    "tbotd.commands.markets",
    "tbotd.commands.serve",
    "tbotd.commands.models",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="tbotd",
        description="Trade perpetual futures with an ML directional strategy.",
        epilog="Exit codes: 0 ok, 2 bad input or config, 1 runtime failure.",
    )
    parser.add_argument("--version", action="version", version=f"tbotd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    previous = install_early()  # first: the commands' imports and their work take a while
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args)
    except Terminated:
        return 0
    except KeyboardInterrupt:
        return 130
    except (ConfigError, InvalidDataError) as e:
        print(f"tbotd {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TbotdError as e:
        print(f"tbotd {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as e:
        if stopped_by_signal(e):  # SIGTERM landed in code that re-raised it as another error
            return 0
        raise
    finally:
        restore(previous)  # a program that called main() (a test) gets its own handlers back
