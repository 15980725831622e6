"""The invariants a crash must never break, checked against the exchange's own records.

:func:`read_db` opens the daemon's SQLite file read-only (never a write, never a checkpoint, so a
database just left by a SIGKILL is examined exactly as the crash left it); :func:`compare` sets it
beside ``GET /sim/state``:

* **duplicates** — a client id used twice on the exchange, or two entries for one decision
  (the entry id is derived from (instance, symbol, candle), so a second entry for a decision is
  either a repeated id or an entry that belongs to no decision);
* **unknown orders** — an order on the exchange whose client id is not in the daemon's orders;
* **unprotected** — an exchange position that is not protected by the strict definition the
  daemon itself uses (:func:`tbotd.execution.protection.verdict`): reduce-only stops on the
  closing side covering its whole quantity, between ``strategy.min_stop_pct`` and
  ``max_stop_pct`` of the entry and nearer than the exchange's liquidation price;
* **mismatches** — the database's positions (side, size, entry) differ from the exchange's; its
  open orders differ from the exchange's open orders (or are recorded in another state); its
  fills and funding rows differ from the exchange's, so its balance — initial capital + realised
  PnL − fees + funding — differs from the exchange's wallet; or its closed trades do not add up
  to the realised PnL of the fills (a round trip booked without its exit).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbotd.config.strategy import MLDirectionalConfig
from tbotd.domain.enums import OrderRole, OrderSide, OrderType, Side
from tbotd.domain.orders import client_order_id
from tbotd.domain.values import ms_to_datetime
from tbotd.execution.protection import StopBounds, VenueOrder, VenuePosition, verdict

LIVE_STATES = ("pending", "unknown", "open", "partially_filled")


@dataclass
class DbView:
    """What the daemon's database says, read in one read-only transaction."""

    orders: dict[str, dict[str, Any]]
    positions: dict[str, dict[str, Any]]
    fill_ids: set[str]
    realized: Decimal
    fees: Decimal
    funding: dict[tuple[str, int], Decimal]
    decisions: list[tuple[str, int, str]]
    booked_pnl: Decimal
    integrity: str
    owner: str


def read_db(path: Path) -> DbView:
    """Read the daemon's database without writing to it (``mode=ro``)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")
        orders = {r["client_id"]: dict(r) for r in conn.execute("SELECT * FROM orders")}
        positions = {r["symbol"]: dict(r) for r in conn.execute("SELECT * FROM positions")}
        fills = list(conn.execute("SELECT trade_id, realized_pnl, fee FROM fills"))
        funding = {
            (r["symbol"], r["time"]): Decimal(r["amount"])
            for r in conn.execute("SELECT symbol, time, amount FROM funding")
        }
        decisions = [
            (r["symbol"], r["candle_time"], r["actions"])
            for r in conn.execute("SELECT symbol, candle_time, actions FROM decisions")
        ]
        booked = [Decimal(r["pnl"]) for r in conn.execute("SELECT pnl FROM trades")]
        owner = conn.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
        conn.execute("COMMIT")
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
    return DbView(
        orders=orders,
        positions=positions,
        fill_ids={str(r["trade_id"]) for r in fills},
        realized=sum((Decimal(r["realized_pnl"]) for r in fills), Decimal(0)),
        fees=sum((Decimal(r["fee"]) for r in fills), Decimal(0)),
        funding=funding,
        decisions=decisions,
        booked_pnl=sum(booked, Decimal(0)),
        integrity=integrity,
        owner=str(owner[0]) if owner else "",
    )


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the file as it is now ("ok" when sound)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@dataclass
class Findings:
    """Everything :func:`compare` found wrong (empty lists: all invariants hold)."""

    duplicates: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No invariant broken."""
        return not (self.duplicates or self.unknown or self.unprotected or self.mismatches)


_STRATEGY = MLDirectionalConfig.model_fields
BOUNDS = (
    Decimal(str(_STRATEGY["min_stop_pct"].default)) / 100,
    Decimal(str(_STRATEGY["max_stop_pct"].default)) / 100,
)  # the daemon's defaults, which the harnesses' configs keep
TICKS = {"BTCUSDT": Decimal("0.1"), "ETHUSDT": Decimal("0.01")}


def unprotected(sim: dict[str, Any], bounds: tuple[Decimal, Decimal] = BOUNDS) -> list[str]:
    """Exchange positions that the strict definition does not call protected (and why)."""
    [account] = sim["accounts"]
    orders = [
        VenueOrder(
            symbol=a["symbol"],
            client_id=a["client_algo_id"],
            exchange_id=str(a["algo_id"]),
            conditional=True,
            reduce_only=bool(a["reduce_only"]),
            side=OrderSide(a["side"].lower()),
            type=_KINDS.get(a["order_type"]),
            qty=Decimal(a["qty"]),
            trigger_price=Decimal(a["trigger_price"]),
            close_position=bool(a["close_position"]),
        )
        for a in sim["algo_orders"]
        if a["status"] == "NEW"
    ]
    missing = []
    for p in account["positions"]:
        qty, liquidation = Decimal(p["qty"]), Decimal(p["liquidation_price"] or 0)
        position = VenuePosition(
            p["symbol"],
            Side.LONG if qty > 0 else Side.SHORT,
            abs(qty),
            Decimal(p["entry_price"]),
            liquidation if liquidation > 0 else None,
        )
        tick = TICKS.get(p["symbol"], Decimal("0.01"))
        judged = verdict(position, orders, StopBounds(*bounds, tick))
        if not judged.protected:
            problems = ", ".join(judged.problems)
            missing.append(f"{p['symbol']} {p['qty']} @ {p['entry_price']}: {problems}")
    return missing


_KINDS = {"STOP_MARKET": OrderType.STOP_MARKET, "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET}


def client_order_id_for(instance: str, owner: str, symbol: str, candle_ms: int) -> str:
    """The entry client id the daemon derives for a decision (its key: name + database)."""
    key = f"{instance}|{owner}"  # as daemon/app.py's instance_key
    return client_order_id(key, symbol, ms_to_datetime(candle_ms), OrderRole.ENTRY)


def duplicates(sim: dict[str, Any], db: DbView, instance: str) -> list[str]:
    """Client ids used twice, and entries that belong to no decision or share one."""
    found = []
    regular = Counter(o["client_id"] for o in sim["orders"] if o["algo_id"] is None)
    algos = Counter(a["client_algo_id"] for a in sim["algo_orders"])
    found += [f"order {cid} sent {n} times" for cid, n in regular.items() if n > 1]
    found += [f"conditional order {cid} sent {n} times" for cid, n in algos.items() if n > 1]
    entry_of = {
        client_order_id_for(instance, db.owner, symbol, ms): (symbol, ms)
        for symbol, ms, _ in db.decisions
    }
    per_decision: Counter[tuple[str, int]] = Counter()
    for order in sim["orders"]:
        if order["algo_id"] is not None or order["reduce_only"]:
            continue
        decision = entry_of.get(order["client_id"])
        if decision is None:
            found.append(f"entry {order['client_id']} belongs to no decision")
        else:
            per_decision[decision] += 1
    found += [f"{n} entries for the decision {d}" for d, n in per_decision.items() if n > 1]
    return found


def unknown_orders(sim: dict[str, Any], db: DbView) -> list[str]:
    """Exchange orders whose client id the daemon never recorded."""
    algo_ids = {a["client_algo_id"] for a in sim["algo_orders"]}
    unknown = [
        f"order {o['client_id']} ({o['type']}, {o['status']})"
        for o in sim["orders"]
        if o["client_id"] not in db.orders
        and not (o["algo_id"] is not None and o["client_id"] in algo_ids)
    ]
    unknown += [
        f"conditional order {a['client_algo_id']} ({a['status']})"
        for a in sim["algo_orders"]
        if a["client_algo_id"] not in db.orders
    ]
    return unknown


def mismatches(sim: dict[str, Any], db: DbView, initial: Decimal, currency: str) -> list[str]:
    """Positions, open orders, fills, funding and balance: database vs exchange."""
    found = _position_mismatches(sim, db)
    venue_open = {
        o["client_id"] for o in sim["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")
    }
    venue_open |= {a["client_algo_id"] for a in sim["algo_orders"] if a["status"] == "NEW"}
    ours_live = {cid for cid, o in db.orders.items() if o["state"] in LIVE_STATES}
    found += [
        f"exchange has {cid} open; database: {_state(db, cid)}" for cid in venue_open - ours_live
    ]
    found += [
        f"database has {cid} {_state(db, cid)}; exchange: not open"
        for cid in ours_live - venue_open
    ]
    found += [
        f"exchange has {cid} open; database says {db.orders[cid]['state']}"
        for cid in venue_open & ours_live
        if db.orders[cid]["state"] != "open"
    ]
    venue_fills = {str(f["trade_id"]): f for f in sim["fills"]}
    found += [
        f"fill {t} of {f['client_id']} ({f['side']} {f['qty']}) is not in the database"
        for t, f in venue_fills.items()
        if t not in db.fill_ids
    ]
    found += [f"fill {t} is not on the exchange" for t in db.fill_ids - set(venue_fills)]
    venue_funding = {(f["symbol"], f["time_ms"]): Decimal(f["amount"]) for f in sim["funding"]}
    ours_funding = {(_unified(s), t): a for (s, t), a in db.funding.items()}
    if {(_unified(s), t): a for (s, t), a in venue_funding.items()} != ours_funding:
        found.append(f"funding: exchange {len(venue_funding)} rows, database {len(db.funding)}")
    [account] = sim["accounts"]
    wallet = Decimal(account["balances"][currency]["wallet"])
    ours = initial + db.realized - db.fees + sum(db.funding.values(), Decimal(0))
    if ours != wallet:
        found.append(f"balance: exchange wallet {wallet}, database ledger {ours}")
    if db.booked_pnl != db.realized:  # entries realise nothing: every closing fill is a trade's
        found.append(f"trades book {db.booked_pnl} realised PnL; the fills say {db.realized}")
    return found


def compare(
    sim: dict[str, Any],
    db: DbView,
    instance: str,
    initial: Decimal,
    by_hand: frozenset[str] = frozenset(),
) -> Findings:
    """Every invariant at once (the daemon idle, the market paused). ``by_hand``: client ids of
    orders a harness placed itself, as a person would (not the daemon's, never "unknown")."""
    if by_hand:
        sim = {**sim, "orders": [o for o in sim["orders"] if o["client_id"] not in by_hand]}
    return Findings(
        duplicates=duplicates(sim, db, instance),
        unknown=unknown_orders(sim, db),
        unprotected=unprotected(sim),
        mismatches=mismatches(sim, db, initial, "USDT")
        + ([] if db.integrity == "ok" else [f"integrity_check: {db.integrity}"]),
    )


def _position_mismatches(sim: dict[str, Any], db: DbView) -> list[str]:
    [account] = sim["accounts"]
    venue = {_unified(p["symbol"]): p for p in account["positions"]}
    found = []
    for symbol in sorted(set(venue) | set(db.positions)):
        theirs, ours = venue.get(symbol), db.positions.get(symbol)
        if theirs is None or ours is None:
            found.append(f"{symbol}: exchange {_pos(theirs)}, database {_dbpos(ours)}")
            continue
        qty = Decimal(theirs["qty"])
        side = "long" if qty > 0 else "short"
        same = (side, abs(qty), Decimal(theirs["entry_price"])) == (
            ours["side"],
            Decimal(ours["qty"]),
            Decimal(ours["entry_price"]),
        )
        if not same:
            found.append(f"{symbol}: exchange {_pos(theirs)}, database {_dbpos(ours)}")
    return found


def _unified(venue_symbol: str) -> str:
    """BTCUSDT → BTC/USDT:USDT (the sim speaks exchange ids; the daemon unified symbols)."""
    if "/" in venue_symbol:
        return venue_symbol
    base = venue_symbol.removesuffix("USDT")
    return f"{base}/USDT:USDT"


def _pos(p: dict[str, Any] | None) -> str:
    return "flat" if p is None else f"{p['qty']} @ {p['entry_price']}"


def _dbpos(p: dict[str, Any] | None) -> str:
    return "flat" if p is None else f"{p['side']} {p['qty']} @ {p['entry_price']}"


def _state(db: DbView, cid: str) -> str:
    order = db.orders.get(cid)
    return "unknown id" if order is None else str(order["state"])
