"""`tbotd status [--config FILE | --url URL | --db FILE] [--json]`: what a daemon says about itself.

A running daemon answers through its ops endpoint; when none answers at the config's address, the
same document (without the live parts: readiness, protection checks, last cycle) is read from its
database, so a stopped daemon's positions and orders are one command away.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tbotd.commands import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the status subcommand."""
    st = sub.add_parser(
        "status",
        help="show a daemon's positions, orders, predictions and equity",
        description="Reads the daemon's ops endpoint (/status); with --config and no daemon "
        "answering, or with --db, reads its database instead. The token comes from "
        "TBOTD_OPS__TOKEN when the endpoint needs one.",
    )
    where = st.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="FILE", help="the daemon's config")
    where.add_argument("--url", metavar="URL", help="e.g. http://127.0.0.1:8787")
    where.add_argument("--db", type=Path, metavar="FILE", help="a daemon's database (offline)")
    st.add_argument("--json", action="store_true", help="print the status document")
    st.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Fetch /status (or read the database) and print it."""
    import asyncio

    if args.db is not None:
        return _show(args, _offline(args.db, None))
    url = args.url
    token = os.environ.get("TBOTD_OPS__TOKEN")
    db = None
    if args.config is not None:
        from tbotd.config import ConfigInvalidError, load_settings

        try:
            settings = load_settings(args.config)
        except ConfigInvalidError as e:
            print("\n".join(str(p) for p in e.problems), file=sys.stderr)
            return EXIT_BAD_INPUT
        url = f"http://{settings.ops.host}:{settings.ops.port}"
        token = settings.ops.token.get_secret_value() if settings.ops.token else token
        db = (Path(settings.store.path), settings.instance, str(settings.execution.mode))
    body: dict[str, Any] | None
    try:
        body = asyncio.run(_fetch(url.rstrip("/") + "/status", token))
    except OSError as e:
        if db is None or not db[0].exists():
            print(f"tbotd status: cannot reach {url}: {e}", file=sys.stderr)
            return EXIT_FAILURE
        body = _offline(db[0], (db[1], db[2]), f"no daemon answers at {url}")
    return _show(args, body)


def _show(args: argparse.Namespace, body: dict[str, Any] | None) -> int:
    if body is None:
        print(f"tbotd status: no database at {args.db}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(body))
    else:
        _print(body)
    return EXIT_OK


def _offline(
    db: Path, who: tuple[str, str] | None, why: str = "read from the database"
) -> dict[str, Any] | None:
    """The status document from a database (None when there is none)."""
    if not db.exists():
        return None
    from tbotd.daemon.status import recorded
    from tbotd.store import Store

    store = Store.open(db)
    try:
        body: dict[str, Any] = {
            "instance": who[0] if who else db.name,
            "mode": who[1] if who else "mode unknown",
            "ready": False,
            "reason": f"not running: {why} ({db})",
        }
        return body | recorded(store)
    finally:
        store.close()


async def _fetch(url: str, token: str | None) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=10, connect=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        if response.status == 401:
            raise OSError("unauthorized (set TBOTD_OPS__TOKEN)")
        result: dict[str, Any] = await response.json()
        return result


def _print(body: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{body.get('instance')}[/] ({body.get('mode')}): "
        f"{'ready' if body.get('ready') else 'not ready'} — {body.get('reason')}"
        + (f"; {body['cycles']} cycles" if "cycles" in body else "")
    )
    equity = body.get("equity") or {}
    if equity:
        console.print(
            f"equity {equity.get('equity')} {equity.get('currency')} "
            f"(balance {equity.get('balance')}, unrealised {equity.get('unrealized_pnl')})"
        )
    _risk(console, body.get("risk") or {})
    protection = body.get("protection") or {}
    table = Table(
        "symbol", "side", "qty", "entry", "stop", "target", "protected", title="positions"
    )
    for p in body.get("positions", []):
        table.add_row(
            p["symbol"],
            p["side"],
            p["qty"],
            p["entry_price"],
            str(p["stop_loss"]),
            str(p["take_profit"]),
            _protected(protection.get(p["symbol"]) or {}),
        )
    console.print(table)
    for symbol, state in protection.items():
        if state.get("entries_refused"):
            console.print(f"[yellow]{symbol}: no new entries — {state['entries_refused']}[/]")
    preds = Table(
        "symbol", "candle", "signal", "confidence", "source", "models", title="last predictions"
    )
    for symbol, p in body.get("predictions", {}).items():
        answers = "\n".join(answer_text(a) for a in p.get("answers", [])) or "-"
        preds.add_row(
            symbol, p["candle_time"], p["signal"], f"{p['confidence']:.3f}", p["source"], answers
        )
    console.print(preds)


def answer_text(answer: dict[str, Any]) -> str:
    """One model's answer in a table cell: its outputs, or why it was refused."""
    name = answer["model"]
    if "refused" in answer:
        return f"{name}: refused ({answer['refused']})"
    if "probabilities" in answer:
        values = "/".join(f"{p:.2f}" for p in answer["probabilities"])
        return f"{name}: {values}"
    return f"{name}: ret {answer['expected_return']:+.4%} sd {answer['sd']:.4%}"


def _risk(console: Any, risk: dict[str, Any]) -> None:
    """The risk guard: what stops new entries now (nothing printed when nothing does)."""
    if risk.get("halted"):
        flatten = " (with flatten)" if (risk.get("halt") or {}).get("flatten") else ""
        console.print(f"[bold red]HALTED by the operator{flatten}: `tbotd resume` lifts it[/]")
    for trip in risk.get("trips", []):
        where = f" on {trip['symbol']}" if trip.get("symbol") else ""
        until = f" until {trip['until']}" if trip.get("until") else " until reset"
        console.print(f"[red]risk guard: {trip['rule']}{where} since {trip['since']}{until}[/]")
    if risk.get("flatten"):
        console.print(f"[bold red]{flatten_text(risk['flatten'])}[/]")
    pending = risk.get("pending")
    if pending:
        console.print(
            f"[yellow]{pending['command']} #{pending['seq']} written, not applied yet: the "
            "daemon applies it at its next candle close[/]"
        )


def flatten_text(flatten: dict[str, Any]) -> str:
    """A flatten the guard asks until the book is flat, and what is still open."""
    head = f"flatten pending (asked by {flatten['by']} since {flatten['since']})"
    if not flatten.get("tries"):
        return f"{head}: closing every position at the next candle close"
    held = flatten.get("open") or []
    return (
        f"{head}: {len(held)} position(s) open after {flatten['tries']} close(s) "
        f"({', '.join(held)}); asked again at every close"
    )


def _protected(state: dict[str, Any]) -> str:
    """Yes, NO and why (the strict definition, at the last check), or "?" before one."""
    if state.get("protected") is None:
        return "?"
    return "yes" if state["protected"] else "NO: " + ", ".join(state.get("problems", []))
