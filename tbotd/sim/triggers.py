"""Moving market time: walking the price path, triggering orders, funding and liquidation.

Between two market times each traded symbol's price follows its path (see
:mod:`tbotd.sim.market`). Along each piece of the path the engine finds the first level the
price crosses — a conditional order's trigger, a resting limit order's price or a position's
liquidation price — executes it at that level (or at the price after a gap), and carries on from
there, so several orders hit inside one candle execute in the order the price reaches them.
Funding settles at 00:00, 08:00 and 16:00 UTC market time.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tbotd.domain.positions import funding_amount
from tbotd.sim import render
from tbotd.sim.accounts import MarginType, collateral_for, liquidation_price, summarize
from tbotd.sim.market import Waypoint
from tbotd.sim.matching import Engine
from tbotd.sim.records import OrderStatus, SimFunding, SimOrder
from tbotd.sim.trading import trigger_algo

FUNDING_INTERVAL_MS = 8 * 3_600_000
_MAX_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class Level:
    """A price at which something happens when the path crosses it in ``direction``."""

    price: Decimal
    direction: str  # "up" | "down"
    priority: int  # 0 liquidation, 1 conditional order, 2 resting limit
    key: tuple[object, ...]


def next_funding_ms(t_ms: int) -> int:
    """The first funding time strictly after ``t_ms``."""
    return (t_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def funding_rate_at(engine: Engine, t_ms: int) -> Decimal:
    """The funding rate settled at ``t_ms`` (from the funding CSV, else the fixed rate)."""
    return engine.config.funding_rates.get(t_ms, engine.config.funding_rate)


def advance_to(engine: Engine, target_ms: int) -> None:
    """Process the market from the engine's time up to ``target_ms``."""
    while engine.now_ms < target_ms:
        funding_ms = next_funding_ms(engine.now_ms)
        stop = min(target_ms, funding_ms)
        _walk(engine, engine.now_ms, stop)
        engine.clock.now_ms = stop
        if stop == funding_ms:
            settle_funding(engine, funding_ms)


def _busy_symbols(engine: Engine) -> list[str]:
    ledger = engine.ledger
    busy = {o.symbol for o in ledger.open_orders()} | {a.symbol for a in ledger.open_algos()}
    for account in engine.accounts.values():
        busy.update(s for s, p in account.positions.items() if p.qty != 0)
    return sorted(busy)


def _walk(engine: Engine, t0: int, t1: int) -> None:
    symbols = _busy_symbols(engine)
    if not symbols:
        return
    paths: dict[str, list[Waypoint]] = {}
    points: list[tuple[int, int, str, Waypoint]] = []
    for rank, symbol in enumerate(symbols):
        asset = engine.instruments[symbol].asset
        if asset not in paths:
            paths[asset] = engine.markets[asset].path(t0, t1)
        points.extend((wp.time_ms, rank, symbol, wp) for wp in paths[asset])
    points.sort(key=lambda p: (p[0], p[1]))
    prices = {s: engine.mark(s) for s in symbols}
    times = dict.fromkeys(symbols, t0)
    engine.marks_override = dict(prices)
    try:
        for time_ms, _, symbol, wp in points:
            _move(engine, symbol, (times[symbol], prices[symbol]), wp)
            prices[symbol] = wp.price
            times[symbol] = time_ms
            engine.marks_override[symbol] = wp.price
            engine.clock.now_ms = max(engine.clock.now_ms, time_ms)
    finally:
        engine.marks_override = {}


def _levels(engine: Engine, symbol: str) -> list[Level]:
    out = [
        Level(a.trigger_price, a.direction, 1, ("algo", a.algo_id))
        for a in engine.ledger.open_algos(symbol=symbol)
    ]
    out += [
        Level(o.price, "down" if o.side == "BUY" else "up", 2, ("order", o.order_id))
        for o in engine.ledger.open_orders(symbol=symbol)
        if o.type == "LIMIT"
    ]
    inst = engine.instruments[symbol]
    for account in engine.accounts.values():
        pos = account.positions.get(symbol)
        if pos is None or pos.qty == 0:
            continue
        exposure = engine.exposure(account)
        summary = summarize(account, inst.margin_asset, exposure)
        price = liquidation_price(inst, pos, collateral_for(account, inst, exposure, summary))
        if price > 0:
            direction = "down" if pos.qty > 0 else "up"
            key = ("liq", account.api_key, symbol, pos.update_ms)
            out.append(Level(price, direction, 0, key))
    return out


def _crossed(level: Level, low_bound: Decimal, end: Decimal, inclusive: bool) -> bool:
    if end > low_bound:
        return level.direction == "up" and (
            low_bound <= level.price <= end if inclusive else low_bound < level.price <= end
        )
    if end < low_bound:
        return level.direction == "down" and (
            end <= level.price <= low_bound if inclusive else end <= level.price < low_bound
        )
    return False


def _move(engine: Engine, symbol: str, start: tuple[int, Decimal], wp: Waypoint) -> None:
    """Execute everything the price crosses going from ``start`` to the waypoint."""
    t_a, current = start
    done: set[tuple[object, ...]] = set()
    inclusive = False
    for _ in range(_MAX_STEPS):
        hits = [
            lv
            for lv in _levels(engine, symbol)
            if lv.key not in done and _crossed(lv, current, wp.price, inclusive)
        ]
        if not hits:
            return
        hit = min(hits, key=lambda lv: (abs(lv.price - current), lv.priority, lv.key))
        done.add(hit.key)
        if wp.jump:
            price, at = wp.price, wp.time_ms
        else:
            price = hit.price
            span = wp.price - current
            fraction = (hit.price - current) / span if span else Decimal(1)
            at = t_a + int((wp.time_ms - t_a) * fraction)
            current, t_a, inclusive = hit.price, at, True
        engine.clock.now_ms = max(engine.clock.now_ms, at)
        engine.marks_override[symbol] = price
        _execute_level(engine, hit, price)


def _execute_level(engine: Engine, level: Level, price: Decimal) -> None:
    kind = level.key[0]
    if kind == "algo":
        algo = engine.ledger.algos[level.key[1]]  # type: ignore[index]
        trigger_algo(engine, algo, price)
    elif kind == "order":
        _fill_resting(engine, engine.ledger.orders[level.key[1]])  # type: ignore[index]
    else:
        _liquidate(engine, str(level.key[1]), str(level.key[2]), price)


def _fill_resting(engine: Engine, order: SimOrder) -> None:
    """A resting limit order the price reached: fills in full at its price, as maker."""
    account = engine.accounts[order.account]
    qty = order.remaining
    if order.reduce_only:
        qty = min(qty, engine.reducible(account, order.symbol, order.sign))
    if qty > 0:
        engine.execute(account, order, qty, order.price, maker=True)
    if order.status.is_open:
        engine.finish(order, OrderStatus.EXPIRED, "EXPIRED")


def _liquidate(engine: Engine, api_key: str, symbol: str, price: Decimal) -> None:
    """Close a position at its liquidation price; a loss beyond its margin goes to insurance."""
    account = engine.accounts[api_key]
    pos = account.position(symbol)
    if pos.qty == 0:
        return
    order = engine.new_order(
        account,
        engine.instruments[symbol],
        client_id=f"autoclose-{engine.ledger.next_order_id}",
        side="SELL" if pos.qty > 0 else "BUY",
        type="MARKET",
        qty=abs(pos.qty),
        price=Decimal(0),
        reduce_only=True,
        orig_type="LIQUIDATION",
    )
    engine.execute(account, order, abs(pos.qty), price, maker=False, liquidation=True)


def settle_funding(engine: Engine, t_ms: int) -> None:
    """Pay or charge funding on every open position at ``t_ms``."""
    rate = funding_rate_at(engine, t_ms)
    for account in engine.accounts.values():
        for symbol, pos in account.positions.items():
            if pos.side is None:
                continue
            inst = engine.instruments[symbol]
            mark = engine.mark(symbol)
            amount = render.money(
                funding_amount(
                    inst.market_type, pos.side, abs(pos.qty), inst.contract_size, mark, rate
                )
            )
            account.credit(inst.margin_asset, amount)
            if account.margin_type_of(symbol) is MarginType.ISOLATED:
                pos.isolated_wallet = max(Decimal(0), pos.isolated_wallet + amount)
            engine.ledger.funding.append(
                SimFunding(
                    account=account.api_key,
                    symbol=symbol,
                    time_ms=t_ms,
                    rate=rate,
                    position_qty=pos.qty,
                    mark_price=mark,
                    amount=amount,
                    asset=inst.margin_asset,
                )
            )
            engine.emit_account(account, inst, "FUNDING_FEE")
