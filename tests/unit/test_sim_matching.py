"""Properties of the sim's matching and accounting, over random order sequences (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbotd.domain.values import datetime_to_ms, round_to_tick
from tbotd.sim import trading
from tbotd.sim.accounts import Account, MarginType
from tbotd.sim.auth import SimError
from tbotd.sim.clock import MarketClock
from tbotd.sim.instruments import ASSET_PRICE_TICKS, DEFAULT_INSTRUMENTS
from tbotd.sim.market import MarketData
from tbotd.sim.matching import Engine, EngineConfig
from tbotd.sim.records import SimFill, SimOrder
from tbotd.sim.sources import Bars, GeneratorSource
from tbotd.sim.triggers import advance_to

ORIGIN_MS = datetime_to_ms(datetime(2024, 1, 1, tzinfo=UTC))
START_MS = ORIGIN_MS + 30 * 86_400_000
INSTRUMENTS = {i.symbol: i for i in DEFAULT_INSTRUMENTS}


class JumpySource:
    """The generator's market with a 4 % price gap every 97 minutes (gaps test liquidation)."""

    def __init__(self, inner: GeneratorSource) -> None:
        self.inner = inner
        self.base_ms, self.first_ms, self.last_ms = inner.base_ms, inner.first_ms, inner.last_ms
        self.price_exp, self.volume_exp = inner.price_exp, inner.volume_exp

    def window(self, start_ms: int, end_ms: int) -> Bars:
        bars = self.inner.window(start_ms, end_ms)
        low = ((bars.times - self.first_ms) // (97 * 60_000)) % 2 == 1
        scale = lambda a: np.where(low, a * 96 // 100, a)  # noqa: E731 - a one-line helper
        return Bars(bars.times, *(scale(a) for a in bars.columns()[1:5]), bars.volume)


# One market for every example: read-only and a pure function of (seed, time).
MARKETS: dict[str, Any] = {
    asset: MarketData(GeneratorSource(11, asset, price, tick, ORIGIN_MS))
    for asset, (price, tick) in ASSET_PRICE_TICKS.items()
}
MARKETS["BTC"] = MarketData(JumpySource(MARKETS["BTC"].source))
SYMBOLS = ("BTCUSDT", "BTCUSD_PERP")


@dataclass
class Flip:
    """A reduce-only / close-position fill, with the position before and after it."""

    before: Decimal
    after: Decimal


class RecordingEngine(Engine):
    """The engine, noting the position around every reduce-only or close-position fill."""

    reducing: list[Flip]

    def execute(self, account: Account, order: SimOrder, *args: Any, **kwargs: Any) -> SimFill:
        before = account.position(order.symbol).qty
        fill = super().execute(account, order, *args, **kwargs)
        if order.reduce_only or order.close_position:
            self.reducing.append(Flip(before, account.position(order.symbol).qty))
        return fill


@dataclass
class World:
    """A fresh engine and account over the shared market."""

    engine: RecordingEngine
    account: Account
    initial: dict[str, Decimal] = field(default_factory=dict)


def new_world(usdt: int = 600, btc: str = "0.01") -> World:
    clock = MarketClock(START_MS, manual=True)
    account = Account("k", "s", wallets={"USDT": Decimal(usdt), "BTC": Decimal(btc)})
    engine = RecordingEngine(INSTRUMENTS, MARKETS, clock, {"k": account}, EngineConfig())
    engine.reducing = []
    return World(engine, account, dict(account.wallets))


side = st.sampled_from(["BUY", "SELL"])
symbol = st.sampled_from(SYMBOLS)
offset = st.decimals("0.985", "1.015", places=4)
action = st.one_of(
    st.tuples(st.just("market"), symbol, side, st.integers(1, 60), st.booleans()),
    st.tuples(st.just("limit"), symbol, side, st.integers(1, 60), offset),
    st.tuples(st.just("algo"), symbol, side, st.integers(0, 60), offset, st.booleans()),
    st.tuples(st.just("market"), symbol, side, st.integers(1, 60), st.booleans()),
    st.tuples(st.just("advance"), st.integers(60, 12 * 3600)),
    st.tuples(st.just("advance"), st.integers(60, 12 * 3600)),
    st.tuples(st.just("leverage"), symbol, st.integers(1, 125), st.booleans()),
    st.tuples(st.just("cancel"), symbol),
)


def _qty(sym: str, units: int) -> Decimal:
    return Decimal(units) if sym.endswith("_PERP") else Decimal(units) / 100


def apply(world: World, step: tuple[Any, ...]) -> None:
    engine, account = world.engine, world.account
    kind = step[0]
    try:
        if kind == "market":
            _, sym, sd, units, reduce = step
            req = trading.OrderRequest(sym, sd, "MARKET", _qty(sym, units), reduce_only=reduce)
            trading.place_order(engine, account, req)
        elif kind == "limit":
            _, sym, sd, units, off = step
            price = round_to_tick(engine.mark(sym) * off, INSTRUMENTS[sym].tick_size)
            trading.place_order(
                engine, account, trading.OrderRequest(sym, sd, "LIMIT", _qty(sym, units), price)
            )
        elif kind == "algo":
            _, sym, sd, units, off, stop = step
            trigger = round_to_tick(engine.mark(sym) * off, INSTRUMENTS[sym].tick_size)
            up = off > 1
            order_type = (
                ("STOP_MARKET" if up == (sd == "BUY") else "TAKE_PROFIT_MARKET")
                if stop
                else "STOP_MARKET"
            )
            close = units == 0
            req = trading.AlgoRequest(
                sym,
                sd,
                order_type,
                trigger,
                qty=None if close else _qty(sym, units),
                close_position=close,
                reduce_only=not close and units % 2 == 0,
            )
            trading.place_algo(engine, account, req)
        elif kind == "advance":
            advance_to(engine, engine.now_ms + step[1] * 1000)
        elif kind == "leverage":
            _, sym, lev, isolated = step
            if account.position(sym).qty == 0 and not engine.ledger.open_orders("k", sym):
                account.leverage[sym] = lev
                account.margin_type[sym] = MarginType.ISOLATED if isolated else MarginType.CROSSED
        else:
            trading.cancel_all(engine, account, step[1])
            trading.cancel_all_algos(engine, account, step[1])
    except SimError:
        pass  # a rejection is a legitimate answer; the properties must hold either way
    engine.drain()


leverage = st.tuples(st.just("leverage"), symbol, st.integers(1, 125), st.booleans())
sequences = st.builds(
    lambda first, rest: [*first, *rest],
    st.lists(leverage, max_size=2),
    st.lists(action, min_size=3, max_size=30),
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(sequences)
def test_no_order_sequence_makes_a_wallet_negative_without_liquidation(steps: list[Any]) -> None:
    """Whatever is ordered, wallets stay ≥ 0; a loss beyond a wallet only follows a liquidation."""
    world = new_world()
    for step in steps:
        apply(world, step)
        assert all(v >= 0 for v in world.account.wallets.values())
    if any(world.account.insurance_used.values()):
        assert any(f.liquidation for f in world.engine.ledger.fills)


@fast
@given(sequences)
def test_reduce_only_and_close_position_never_flip_or_grow(steps: list[Any]) -> None:
    """A reduce-only or close-position fill only shrinks the position, never flips it."""
    world = new_world()
    for step in steps:
        apply(world, step)
    for flip in world.engine.reducing:
        assert abs(flip.after) < abs(flip.before)
        assert flip.after == 0 or (flip.after > 0) == (flip.before > 0)


@fast
@given(sequences)
def test_every_fill_is_charged_exactly_one_fee(steps: list[Any]) -> None:
    """Each fill pays one maker or taker fee, and wallets reconcile to fills and funding exactly."""
    world = new_world()
    for step in steps:
        apply(world, step)
    engine, account = world.engine, world.account
    expected = dict(world.initial)
    for fill in engine.ledger.fills:
        inst = INSTRUMENTS[fill.symbol]
        rate = engine.config.maker_fee if fill.maker else engine.config.taker_fee
        assert fill.fee == (inst.notional(fill.qty, fill.price) * rate).quantize(Decimal("1e-8"))
        assert fill.fee > 0
        expected[fill.fee_asset] = (
            expected.get(fill.fee_asset, Decimal(0)) + fill.realized_pnl - fill.fee
        )
    for payment in engine.ledger.funding:
        expected[payment.asset] += payment.amount
    for asset, absorbed in account.insurance_used.items():
        expected[asset] += absorbed
    assert {a: v for a, v in expected.items() if v or a in account.wallets} == account.wallets
    assert len({f.trade_id for f in engine.ledger.fills}) == len(engine.ledger.fills)


def _random_step(rng: random.Random) -> tuple[Any, ...]:
    sym, sd = rng.choice(SYMBOLS), rng.choice(["BUY", "SELL"])
    off = Decimal(rng.randint(9850, 10150)) / 10000
    roll = rng.random()
    if roll < 0.35:
        return ("market", sym, sd, rng.randint(1, 60), rng.random() < 0.3)
    if roll < 0.5:
        return ("limit", sym, sd, rng.randint(1, 60), off)
    if roll < 0.7:
        return ("algo", sym, sd, rng.randint(0, 60), off, rng.random() < 0.5)
    if roll < 0.9:
        return ("advance", rng.randint(60, 6 * 3600))
    if roll < 0.97:
        return ("leverage", sym, rng.choice([1, 5, 20, 50, 125]), rng.random() < 0.5)
    return ("cancel", sym)


def test_long_random_session_keeps_every_invariant() -> None:
    """A 600-step seeded session (fills, triggers, gaps, liquidations) keeps the properties."""
    rng = random.Random(20240301)
    world = new_world(usdt=20000, btc="0.5")
    for _ in range(600):
        apply(world, _random_step(rng))
        assert all(v >= 0 for v in world.account.wallets.values())
    fills = world.engine.ledger.fills
    assert len(fills) > 100
    assert any(f.liquidation for f in fills)
    assert any(world.engine.ledger.orders[f.order_id].algo_id for f in fills)
    assert any(f.maker for f in fills)
    for flip in world.engine.reducing:
        assert abs(flip.after) < abs(flip.before)
        assert flip.after == 0 or (flip.after > 0) == (flip.before > 0)
