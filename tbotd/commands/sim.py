"""`tbotd sim`: run the local Binance futures exchange standalone.

Prints one JSON line on stdout when it is ready (``{"event": "sim_ready", "url": ...}``); logs go
to stderr. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from tbotd.sim.config import SimConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the sim subcommand."""
    p = sub.add_parser(
        "sim",
        help="run the local Binance futures exchange (USDⓈ-M + COIN-M) for demos and tests",
        description="Serve a Binance USDⓈ-M (/fapi) and COIN-M (/dapi) futures venue that "
        "ccxt's binanceusdm/binancecoinm classes trade against with only `urls` overridden "
        "(see tbotd.sim.ccxt_urls). Prints one JSON line with its URL when ready.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8800, help="port; 0 picks a free one (8800)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        type=Path,
        help="BTC candles: CSV (optionally .gz) timestamp,open,high,low,close,volume",
    )
    source.add_argument("--seed", type=int, default=1, help="seed of the generated market (1)")
    p.add_argument("--funding-data", type=Path, help="funding rates CSV: timestamp,funding_rate")
    p.add_argument("--funding-rate", default="0.0001", help="fixed 8-hour funding rate (0.0001)")
    p.add_argument("--speed", type=float, default=1.0, help="market seconds per wall second (1)")
    p.add_argument(
        "--tick-s",
        type=float,
        default=0.25,
        help="wall seconds between market updates when replaying (0.25; lower for high --speed)",
    )
    p.add_argument(
        "--manual", action="store_true", help="manual clock: time moves only via POST /sim/advance"
    )
    p.add_argument("--start", help="market start time, ISO (UTC) or epoch ms")
    p.add_argument(
        "--account",
        action="append",
        metavar="KEY:SECRET",
        help="API key pair (repeatable; default: the demo pair)",
    )
    p.add_argument(
        "--balance", default="USDT=10000,BTC=1", help="starting balances of every account"
    )
    p.add_argument("--faults", default="", help="e.g. 5xx=0.05,429=0.01,hang=0.01,latency_ms=20")
    p.add_argument("--slippage-bps", default="1", help="market-order slippage in bps (1)")
    p.add_argument("--admin", action="store_true", help="enable the /sim/* admin routes")
    p.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> SimConfig:
    from tbotd.sim.config import SimConfig, parse_account, parse_balances, parse_start
    from tbotd.sim.faults import parse_faults

    extra: dict[str, Any] = {}
    if args.account:
        extra["accounts"] = tuple(parse_account(a) for a in args.account)
    return SimConfig(
        data=args.data,
        funding_data=args.funding_data,
        seed=args.seed,
        start=parse_start(args.start) if args.start else None,
        speed=args.speed,
        tick_s=args.tick_s,
        manual_clock=args.manual,
        balances=parse_balances(args.balance),
        funding_rate=Decimal(args.funding_rate),
        slippage_bps=Decimal(args.slippage_bps),
        faults=parse_faults(args.faults),
        admin=args.admin,
        **extra,
    )


def run(args: argparse.Namespace) -> int:
    """Start the sim and serve until interrupted."""
    from tbotd.domain.errors import InvalidDataError
    from tbotd.ops.logs import configure_logging

    configure_logging("info", "auto", stream=sys.stderr)
    try:
        config = _config(args)
    except (ValueError, InvalidOperation, InvalidDataError, OSError) as e:
        print(f"tbotd sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_serve(config, args.host, args.port))


async def _serve(config: SimConfig, host: str, port: int) -> int:
    from tbotd.sim import SimExchange
    from tbotd.sim.urls import ccxt_urls

    try:
        sim = SimExchange(config)
    except (ValueError, OSError) as e:
        print(f"tbotd sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    url = await sim.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "event": "sim_ready",
        "url": url,
        "market_time_ms": sim.engine.now_ms,
        "speed": config.speed,
        "manual_clock": config.manual_clock,
        "accounts": [key for key, _ in config.accounts],
        "symbols": sorted(sim.engine.instruments),
        "admin": config.admin,
        "ws": ccxt_urls(url)["api"]["ws"],
    }
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return EXIT_OK
