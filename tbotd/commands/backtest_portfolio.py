"""`tbotd backtest` over several symbols: ``--data SYMBOL=FILE`` repeated (or a directory), one
wallet, the daemon's equity split and order, the config's risk guard across them.

A directory is matched to the config's symbols by file name: ``BTC/USDT:USDT`` takes the one
file whose name contains ``BTCUSDT`` (case-insensitive). ``--predictions`` and ``--funding``
take the same forms. Every configured symbol needs candles (the daemon splits the equity over
all of them); each needs market rules (``--markets FILE`` from ``tbotd markets --refresh``, else
the bundled table; a symbol in neither is an error naming it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbotd.commands import EXIT_FAILURE, EXIT_OK
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import MarketSpec

MARKET_FLAGS = ("tick_size", "step_size", "min_qty", "min_notional", "contract_size")


def add_portfolio_arguments(p: argparse.ArgumentParser) -> None:
    """The options only several symbols need (--data/--predictions/--funding take SYMBOL=FILE)."""
    p.add_argument(
        "--align", action="store_true", help="several symbols: use the span all files cover"
    )
    p.add_argument(
        "--markets", type=Path, metavar="FILE", help="market rules from `tbotd markets --refresh`"
    )


def is_portfolio(args: argparse.Namespace) -> bool:
    """Several --data, a SYMBOL=FILE one, or a directory."""
    data: list[str] = args.data
    return len(data) > 1 or "=" in data[0] or Path(data[0]).is_dir()


def single(args: argparse.Namespace) -> None:
    """The one-symbol form: each of --data, --predictions, --funding at most once, a file."""
    for name in ("data", "predictions", "funding"):
        given: list[str] | None = getattr(args, name)
        if given and len(given) > 1:
            raise InvalidDataError(f"--{name} given {len(given)} times for one symbol")
        setattr(args, name, Path(given[0]) if given else None)


def _compact(symbol: str) -> str:
    """``BTC/USDT:USDT`` → ``BTCUSDT``: how candle files are usually named."""
    return symbol.split(":", maxsplit=1)[0].replace("/", "").upper()


def assign(given: Sequence[str] | None, symbols: Sequence[str], flag: str) -> dict[str, Path]:
    """Files per symbol from ``SYMBOL=FILE`` entries and directories."""
    out: dict[str, Path] = {}
    for entry in given or ():
        if "=" in entry:
            symbol, _, file = entry.partition("=")
            if symbol not in symbols:
                raise InvalidDataError(f"--{flag} {entry}: {symbol} is not a configured symbol")
            out[symbol] = Path(file)
            continue
        folder = Path(entry)
        if not folder.is_dir():
            raise InvalidDataError(f"--{flag} {entry}: give SYMBOL=FILE or a directory")
        for symbol in symbols:
            found = [p for p in sorted(folder.iterdir()) if _compact(symbol) in p.name.upper()]
            if len(found) > 1:
                names = ", ".join(p.name for p in found)
                raise InvalidDataError(f"--{flag} {entry}: several files for {symbol}: {names}")
            if found:
                out.setdefault(symbol, found[0])
    return out


def run_portfolio_command(args: argparse.Namespace) -> int:
    """Load, run, write, summarise (exit codes as `tbotd backtest`)."""
    from tbotd.backtest import read_candles, read_funding, read_predictions_csv
    from tbotd.backtest.portfolio_report import build_portfolio_report, write_portfolio_outputs
    from tbotd.backtest.portfolio_run import run_portfolio
    from tbotd.backtest.report import clean
    from tbotd.config.loader import load_settings

    clock = time.perf_counter()
    if args.compare or args.models:
        raise InvalidDataError("--compare and --models take one symbol's --data for now")
    if any(getattr(args, f) is not None for f in MARKET_FLAGS):
        raise InvalidDataError("--tick-size and the like are for one symbol; use --markets FILE")
    settings = load_settings(args.config)
    symbols = settings.exchange.symbols
    data = assign(args.data, symbols, "data")
    missing = [s for s in symbols if s not in data]
    if missing:
        raise InvalidDataError(
            f"no candles for {', '.join(missing)}: the daemon splits the equity over every "
            f"symbol in {args.config}, so the backtest needs each"
        )
    preds = assign(args.predictions, symbols, "predictions")
    if settings.strategy.kind != "classic" and len(preds) < len(symbols):
        lacking = ", ".join(s for s in symbols if s not in preds)
        raise InvalidDataError(
            f"strategy.kind {settings.strategy.kind} needs predictions for {lacking}"
        )
    rates = assign(args.funding, symbols, "funding")
    for symbol in symbols:
        if symbol not in rates:
            print(f"tbotd backtest: warning: no funding for {symbol}: not charged", file=sys.stderr)
    markets = _markets(args, settings)
    tf = settings.exchange.timeframe
    candles = {s: read_candles(p, tf, args.allow_gaps)[0] for s, p in data.items()}
    tables = {s: read_predictions_csv(p) for s, p in preds.items()}
    funding = {s: read_funding(p) for s, p in rates.items()}
    load_s = time.perf_counter() - clock
    result = run_portfolio(
        candles,
        tables,
        settings,
        funding,
        markets,
        max_prediction_age=args.max_prediction_age,
        warmup_bars=args.warmup_bars,
        align_spans=args.align,
    )
    about: dict[str, Any] = {
        "data": {s: str(p) for s, p in data.items()},
        "predictions": {s: str(p) for s, p in preds.items()},
        "funding": {s: str(p) for s, p in rates.items()},
        "markets": str(args.markets) if args.markets else "bundled",
        "aligned": args.align,
        "warmup_bars": args.warmup_bars,
    }
    report = build_portfolio_report(result, about, {"load_s": load_s, "simulate_s": result.seconds})
    if args.out is not None:
        try:
            write_portfolio_outputs(args.out, result, report)
        except OSError as e:
            print(f"tbotd backtest: cannot write {args.out}: {e}", file=sys.stderr)
            return EXIT_FAILURE
    if args.json:
        print(json.dumps(clean(report)))
    else:
        _summary(report, args.out)
    return EXIT_OK


def _markets(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """Each symbol's rules: the --markets table, then the bundled one; none is an error."""
    from tbotd.domain.markets import market_spec

    table = None if args.markets is None else read_markets(args.markets)
    kind = settings.exchange.market_type
    return {s: market_spec(s, kind, table=table) for s in settings.exchange.symbols}


def read_markets(path: Path) -> dict[str, MarketSpec]:
    """The table ``tbotd markets --refresh`` wrote."""
    from tbotd.domain.markets import markets_from

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidDataError(f"--markets {path}: {e}") from e
    return markets_from(raw, str(path))


def _summary(report: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    cur = report["currency"]
    console = Console()
    title = f"tbotd backtest {', '.join(report['symbols'])} {report['start']} → {report['end']}"
    table = Table("symbol", "trades", "net PnL", "fees", "funding", "win rate", title=title)
    for symbol, leg in report["per_symbol"].items():
        rate = leg["win_rate"]
        table.add_row(
            symbol,
            str(leg["trades"]),
            leg["net_pnl"],
            leg["fees"],
            leg["funding"],
            "n/a" if rate is None else f"{100 * rate:.1f} %",
        )
    console.print(table)
    dd = report.get("max_drawdown")
    console.print(
        f"book: {report['initial_equity']} → {report['final_equity']} {cur}, "
        f"max drawdown {'n/a' if dd is None else f'{100 * dd:.2f} %'}, "
        f"{len(report['risk'])} risk event(s), "
        f"{report['symbol_bars_per_second'] or 0:,.0f} symbol-bars/s"
    )
    for event in report["risk"]:
        console.print(f"  {event['time']} {event['event']}: {event['detail']}")
    if out is not None:
        console.print(f"wrote {out}/report.json, trades.csv, equity.csv, risk.csv, equity.png")
