"""The sim's own records and controls over HTTP (``--admin``; off by default).

======  =====================  ==========================================================
GET     /sim/state             every record; ``?account=KEY`` for one account's
GET     /sim/time              market and wall time, speed, manual or replaying
GET     /sim/faults            the fault configuration
POST    /sim/faults            change faults: JSON ``{"http_5xx_rate": 1.0, ...}``
POST    /sim/drop-websockets   close every websocket now
POST    /sim/advance           ``{"seconds": 300}`` or ``{"to_ms": ...}`` (+ ``"step_s"``)
POST    /sim/clock             ``{"running": false}`` pause / ``{"running": true, "speed": 60}``
======  =====================  ==========================================================

A chaos harness that kills the daemon reads ``/sim/state`` to see what the exchange really did.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tbotd.sim.accounts import collateral_for, liquidation_price, unrealized

if TYPE_CHECKING:
    from tbotd.sim.server import SimExchange

AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _account_state(sim: SimExchange, api_key: str) -> dict[str, Any]:
    engine = sim.engine
    account = engine.accounts[api_key]
    assets = sorted(set(account.wallets) | {i.margin_asset for i in engine.instruments.values()})
    balances = {}
    for asset in assets:
        s = engine.summary(account, asset)
        balances[asset] = {
            "wallet": s.wallet,
            "available": s.available,
            "unrealized_pnl": s.unrealized,
            "margin_balance": s.margin_balance,
            "initial_margin": s.initial_margin,
            "maint_margin": s.maint_margin,
            "insurance_absorbed": account.insurance_used.get(asset, Decimal(0)),
        }
    positions = []
    exposure = engine.exposure(account)
    for symbol, pos in account.positions.items():
        if pos.qty == 0:
            continue
        inst = engine.instruments[symbol]
        summary = engine.summary(account, inst.margin_asset)
        positions.append(
            {
                "symbol": symbol,
                "qty": pos.qty,
                "entry_price": pos.entry,
                "mark_price": engine.mark(symbol),
                "unrealized_pnl": unrealized(inst, pos, engine.mark(symbol)),
                "margin_type": account.margin_type_of(symbol).value,
                "leverage": account.leverage_of(symbol),
                "isolated_wallet": pos.isolated_wallet,
                "liquidation_price": liquidation_price(
                    inst, pos, collateral_for(account, inst, exposure, summary)
                ),
            }
        )
    return {
        "api_key": api_key,
        "balances": balances,
        "positions": positions,
        "leverage": dict(account.leverage),
        "margin_type": {k: v.value for k, v in account.margin_type.items()},
        "dual_side_position": account.dual_side,
        "open_orders": [o.order_id for o in engine.ledger.open_orders(api_key)],
        "open_algo_orders": [a.algo_id for a in engine.ledger.open_algos(api_key)],
    }


def snapshot(sim: SimExchange, api_key: str | None = None) -> dict[str, Any]:
    """All records (or one account's) as JSON-ready data; money as decimal strings."""
    ledger = sim.engine.ledger
    keys = [api_key] if api_key is not None else list(sim.engine.accounts)

    def mine(record: Any) -> bool:
        return record.account in keys

    state = {
        "market_time_ms": sim.engine.now_ms,
        "wall_time_ms": sim.wall.now_ms(),
        "speed": sim.clock.speed,
        "running": sim.clock.running,
        "faults": sim.faults.config.as_dict(),
        "lost_replies": sim.faults.lost_replies,
        "accounts": [_account_state(sim, k) for k in keys],
        "orders": [_record(o) for o in ledger.orders.values() if mine(o)],
        "algo_orders": [_record(a) for a in ledger.algos.values() if mine(a)],
        "fills": [asdict(f) for f in ledger.fills if mine(f)],
        "funding": [asdict(f) for f in ledger.funding if mine(f)],
    }
    result: dict[str, Any] = _plain(state)
    return result


def _record(record: Any) -> dict[str, Any]:
    data = asdict(record)
    data["status"] = str(record.status)
    return data


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {e}"})) from e
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}))
    return data


class _Admin:
    """The admin handlers, bound to one sim."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim

    async def state(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("account")
        if key is not None and key not in self.sim.engine.accounts:
            return _json({"error": f"unknown account {key!r}"}, 404)
        return _json(self.sim.state(key))

    async def time(self, _request: web.Request) -> web.StreamResponse:
        sim = self.sim
        return _json(
            {
                "market_time_ms": sim.engine.now_ms,
                "wall_time_ms": sim.wall.now_ms(),
                "speed": sim.clock.speed,
                "running": sim.clock.running,
            }
        )

    async def get_faults(self, _request: web.Request) -> web.StreamResponse:
        return _json(self.sim.faults.config.as_dict())

    async def post_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            config = self.sim.set_faults(**await _body(request))
        except (TypeError, ValueError) as e:
            return _json({"error": str(e)}, 400)
        return _json(config.as_dict())

    async def drop(self, _request: web.Request) -> web.StreamResponse:
        return _json({"dropped": await self.sim.drop_websockets()})

    async def advance(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        try:
            step = float(body["step_s"]) if body.get("step_s") else None
            if "to_ms" in body:
                now = await self.sim.advance_to(int(body["to_ms"]), step)
            else:
                now = await self.sim.advance(float(body.get("seconds", 0)), step)
        except (TypeError, ValueError) as e:
            return _json({"error": str(e)}, 400)
        return _json({"market_time_ms": now})

    async def clock(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        clock = self.sim.clock
        try:
            self.sim.catch_up()
            if body.get("running", True):
                clock.resume(float(body["speed"]) if "speed" in body else None)
            else:
                clock.pause()
        except (TypeError, ValueError) as e:
            return _json({"error": str(e)}, 400)
        return _json({"speed": clock.speed, "running": clock.running})


def routes(sim: SimExchange) -> list[tuple[str, str, AdminHandler]]:
    """The admin routes bound to ``sim``."""
    admin = _Admin(sim)
    return [
        ("GET", "/sim/state", admin.state),
        ("GET", "/sim/time", admin.time),
        ("GET", "/sim/faults", admin.get_faults),
        ("POST", "/sim/faults", admin.post_faults),
        ("POST", "/sim/drop-websockets", admin.drop),
        ("POST", "/sim/advance", admin.advance),
        ("POST", "/sim/clock", admin.clock),
    ]
