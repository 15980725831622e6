"""One module per `tbotd` subcommand: each defines ``register(subparsers)``.

A command module only builds its argparse parser at import time; the handler imports the heavy
machinery (torch, ccxt, aiohttp) lazily, so `tbotd --help` stays fast. Handlers return an exit code:
0 ok, 2 bad input or config, 1 runtime failure.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def threads_arg(value: str) -> int | None:
    """``--threads``: ``auto`` (None: the rule in :func:`tbotd.ml.device.training_threads`) or N."""
    import argparse

    if value == "auto":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
