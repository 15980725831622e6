"""One module per `tbotd` subcommand: each defines ``register(subparsers)``.

A command module only builds its argparse parser at import time; the handler imports the heavy
machinery (torch, ccxt, aiohttp) lazily, so `tbotd --help` stays fast. Handlers return an exit code:
0 ok, 2 bad input or config, 1 runtime failure.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
