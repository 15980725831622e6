"""`tbotd markets [--refresh --config FILE] [--out FILE] [--json]`: the market rules the
backtest uses.

Without ``--refresh`` it lists the bundled table (Binance's filters as they were when tbotd was
released). With ``--refresh`` it asks the config's exchange (through ccxt, the daemon's own
venue adapter — ``exchange.base_url`` points it at `tbotd sim`) for the rules of every perpetual
of the config's market type and writes them as a table (``--out``, default ``markets.json``)
that ``tbotd backtest --markets FILE`` reads. Exit 0 ok, 2 bad config, 1 the exchange or the
file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the markets subcommand."""
    p = sub.add_parser(
        "markets",
        help="list the bundled market rules, or refresh them from the exchange",
        description="Tick, step, minimum quantity and notional, contract size per perpetual. "
        "--refresh asks the config's exchange through ccxt and writes --out (markets.json) "
        "for `tbotd backtest --markets`.",
    )
    p.add_argument("--refresh", action="store_true", help="ask the exchange (needs --config)")
    p.add_argument("--config", type=Path, metavar="FILE", help="whose exchange to ask")
    p.add_argument("--out", type=Path, default=Path("markets.json"), metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List or refresh."""
    from tbotd.domain.markets import KNOWN_MARKETS, markets_data

    if not args.refresh:
        data = markets_data(KNOWN_MARKETS, "bundled")
        _show(data, as_json=args.json)
        return EXIT_OK
    if args.config is None:
        print("tbotd markets: --refresh needs --config (whose exchange to ask)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from tbotd.config import ConfigInvalidError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigInvalidError as e:
        print("\n".join(str(p) for p in e.problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    import asyncio

    from tbotd.domain.errors import TbotdError

    try:
        specs = asyncio.run(_fetch(settings))
    except (TbotdError, OSError) as e:
        print(f"tbotd markets: {settings.exchange.id}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    data = markets_data(specs, settings.exchange.id)
    try:
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        print(f"tbotd markets: cannot write {args.out}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(data))
    else:
        print(f"wrote {len(specs)} markets of {settings.exchange.id} to {args.out}")
    return EXIT_OK


async def _fetch(settings: Any) -> dict[str, Any]:
    """Every perpetual of the config's market type, as the daemon's venue adapter reads it."""
    from tbotd.daemon.app import make_exchange
    from tbotd.domain.enums import MarketType
    from tbotd.execution.venue import CcxtVenue, call

    exchange = make_exchange(settings)
    venue = CcxtVenue(exchange, settings.exchange.market_type)
    try:
        loaded = await call(exchange.load_markets)
        linear = settings.exchange.market_type is MarketType.LINEAR
        symbols = [
            s
            for s, m in loaded.items()
            if m.get("swap") and bool(m.get("linear")) == linear and m.get("active", True)
        ]
        return await venue.markets(symbols)
    finally:
        await venue.close()


def _show(data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("symbol", "type", "tick", "step", "min qty", "min notional", "contract")
    for symbol, m in data["markets"].items():
        table.add_row(
            symbol,
            m["type"],
            m["tick_size"],
            m["step_size"],
            m["min_qty"],
            m["min_notional"],
            m["contract_size"],
        )
    Console().print(table)
