"""The pieces of the hostile run: a person's hands on the account, and the end-of-run checks
that read the exchange's and the daemon's own records."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt

from benchmarks.reliability.checks import BOUNDS, TICKS, client_order_id_for
from benchmarks.reliability.procs import DaemonProcess
from tbotd.config.strategy import MLDirectionalConfig
from tbotd.domain.enums import MarketType
from tbotd.execution.protection import StopBounds, verdict
from tbotd.execution.venue import CcxtVenue
from tbotd.sim.client import make_ccxt

HOUR_MS = 3_600_000
CANDLE_MS = 300_000


class Hands:
    """A person with the daemon's API key, through ccxt (whose client ids are ``x-…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._placed: set[str] = set()
        self._ex: Any = None

    @property
    def placed(self) -> frozenset[str]:
        """Client ids of the orders these hands placed."""
        return frozenset(self._placed)

    async def start(self) -> None:
        """Log in (the sim's demo account, the daemon's own)."""
        self._ex = make_ccxt("binanceusdm", self.url, pro=False)
        await self._ex.load_markets()

    async def market(self, symbol: str, side: str, qty: Decimal, reduce_only: bool = False) -> None:
        """A market order by hand."""
        params = {"reduceOnly": True} if reduce_only else {}
        order = await self._ex.create_order(symbol, "market", side, float(qty), None, params)
        self._placed.add(str(order["clientOrderId"]))

    async def cancel_stops(self, symbol: str) -> int:
        """Cancel every resting stop-loss on ``symbol`` (the daemon's too)."""
        orders = await self._ex.fetch_open_orders(symbol, None, None, {"trigger": True})
        stops = [o for o in orders if o["info"].get("orderType") == "STOP_MARKET"]
        for order in stops:
            params = {"clientOrderId": order["clientOrderId"], "trigger": True}
            with contextlib.suppress(ccxt.OrderNotFound):  # replaced or fired meanwhile
                await self._ex.cancel_order(None, symbol, params)
        return len(stops)

    async def leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage by hand."""
        await self._ex.set_leverage(leverage, symbol)

    async def close_all(self, symbol: str) -> None:
        """Close the whole position by hand (reduce-only market)."""
        for p in await self._ex.fetch_positions([symbol]):
            amount = Decimal(str(p["info"]["positionAmt"]))
            if amount:
                side = "sell" if amount > 0 else "buy"
                await self.market(symbol, side, abs(amount), reduce_only=True)

    async def unprotected(self, symbols: tuple[str, ...]) -> list[str]:
        """Positions the strict definition does not call protected, read as a client reads
        the venue (two requests; far lighter for the sim than its whole ``/sim/state``)."""
        venue = CcxtVenue(self._ex, MarketType.LINEAR)
        (positions, _), orders = await asyncio.gather(
            venue.account(symbols), venue.open_conditional(symbols)
        )
        low, high = BOUNDS
        found = []
        for symbol, position in positions.items():
            tick = TICKS.get(symbol.split(":")[0].replace("/", ""), Decimal("0.01"))
            if not verdict(position, orders, StopBounds(low, high, tick)).protected:
                found.append(symbol)
        return found

    async def close(self) -> None:
        """Log out."""
        if self._ex is not None:
            await self._ex.close()


def read_query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query on the daemon's database (never a write, never a checkpoint)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def entries_per_hour(state: dict[str, Any]) -> int:
    """The most entries the daemon sent for one symbol within any hour (12 consecutive
    candles) of market time, each counted at the candle it was sent in."""
    times: dict[str, list[int]] = {}
    for order in state["orders"]:
        if order["client_id"].startswith("tbE"):
            at = int(order["time_ms"])
            times.setdefault(order["symbol"], []).append(at - at % CANDLE_MS)
    most = 0
    for stamps in times.values():
        stamps.sort()
        for i, start in enumerate(stamps):
            most = max(most, sum(1 for t in stamps[i:] if t - start < HOUR_MS))
    return most


def stops_out_of_bounds(db: Path) -> list[str]:
    """Trades whose stop risked outside [min_stop_pct, max_stop_pct] of their entry."""
    fields = MLDirectionalConfig.model_fields
    low = Decimal(str(fields["min_stop_pct"].default)) / 100
    high = Decimal(str(fields["max_stop_pct"].default)) / 100
    found = []
    for symbol, side, entry, stop in read_query(
        db, "SELECT symbol, side, entry_price, stop_loss FROM trades WHERE stop_loss IS NOT NULL"
    ):
        sign = 1 if side == "long" else -1
        risk = sign * (Decimal(entry) - Decimal(stop)) / Decimal(entry)
        tick = Decimal("0.1") / Decimal(entry)  # one tick of rounding, generously
        if not low - tick <= risk <= high + tick:
            found.append(f"{symbol} {side} at {entry}: stop {stop} ({risk:.4%})")
    return found


KINDS = ("sd-percent", "sd-tiny", "absurd-prices", "flip")


def hostile_answer(request: dict[str, Any]) -> dict[str, Any]:
    """The hostile prediction for one candle: its kind by turns, its side flipping each candle."""
    symbol = str(request["symbol"])
    stamp = datetime.fromisoformat(str(request["timestamp"]))
    index = int(stamp.timestamp()) // 300
    kind = KINDS[index % len(KINDS)]
    signal = "long" if index % 2 else "short"
    body: dict[str, Any] = {
        "schema_version": 1,
        "symbol": symbol,
        "timestamp": stamp.isoformat(),
        "signal": signal,
        "confidence": 0.9,
        "model_version": "hostile-1",
    }
    if kind == "sd-percent":
        body["sd"] = 0.45
    elif kind == "sd-tiny":
        body["sd"] = 1e-5
    elif kind == "absurd-prices":
        low, high = "1", "100000000"
        body["stop_loss"], body["take_profit"] = (low, high) if signal == "long" else (high, low)
    else:
        body["sd"] = 0.003
    return body


def steady_answer(signal: str, confidence: float) -> Any:
    """A constant prediction (to hold positions still while hands and a second daemon act)."""

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        stamp = datetime.fromisoformat(str(request["timestamp"])).isoformat()
        return {
            "schema_version": 1,
            "symbol": str(request["symbol"]),
            "timestamp": stamp,
            "signal": signal,
            "confidence": confidence,
            "sd": 0.02,  # stops 3 % away: positions stay put while hands and daemons act
            "model_version": "steady-1",
        }

    return answer


def venue_id(symbol: str) -> str:
    """BTC/USDT:USDT → BTCUSDT (the sim's records use exchange ids)."""
    return symbol.split(":", maxsplit=1)[0].replace("/", "")


def absurd_entries(state: dict[str, Any], db: Any, instance: str) -> int:
    """Entries the daemon made on candles whose prediction had absurd absolute prices."""
    absurd = {
        client_order_id_for(instance, db.owner, symbol, ms)
        for symbol, ms, _ in db.decisions
        if KINDS[(ms // 1000 // 300) % len(KINDS)] == "absurd-prices"
    }
    return sum(1 for o in state["orders"] if o["client_id"] in absurd)


def flat_in_db(db: Path, symbol: str) -> Any:
    async def check() -> bool:
        rows = read_query(db, "SELECT COUNT(*) FROM positions WHERE symbol = ?", (symbol,))
        return rows[0][0] == 0

    return check


async def not_ready_because_of_disk(daemon: DaemonProcess) -> bool:
    body = await daemon.readiness()
    return "database cannot be written" in str(body.get("reason", ""))


def truncate_wal(db: Path) -> None:
    """Checkpoint the daemon's WAL into the database and truncate it to nothing (SQLite lets
    another process do this), so the next write must grow it — on a disk that is full."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def mount_tmpfs(path: Path) -> bool:
    """A 16 MiB tmpfs at ``path`` (a disk that can fill up); False when not permitted."""
    return (
        run_command(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(path)]) == 0
    )


def run_command(command: list[str]) -> int:
    """A short system command (mount, dd, umount); its exit code."""
    return subprocess.run(command, capture_output=True, check=False).returncode
