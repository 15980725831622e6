"""The backtest's float check for "this entry cannot be sized" never contradicts exact sizing
(the fast path records such entries as refusals without stepping them)."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tbotd.strategy.sizing import may_size, position_size

money = st.decimals(min_value=Decimal(-50), max_value=Decimal(400), places=4)
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000_000), places=4)
fractions = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1), places=3)
costs = st.decimals(min_value=Decimal(0), max_value=Decimal("0.01"), places=5)


@given(
    equity=money,
    fraction=fractions,
    leverage=st.integers(1, 125).map(Decimal),
    cost=costs,
    price=prices,
    inverse=st.booleans(),
)
def test_an_entry_said_not_sizable_is_refused_by_sizing(
    equity: Decimal,
    fraction: Decimal,
    leverage: Decimal,
    cost: Decimal,
    price: Decimal,
    inverse: bool,
) -> None:
    """Where the backtest's float check says an entry cannot be sized, exact sizing refuses it."""
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    marks = np.array([float(price)])
    if not may_size(market, equity, fraction, leverage, cost, marks)[0]:
        assert not position_size(market, equity, fraction, leverage, price, cost).ok


@given(
    price=st.integers(10_000, 2_000_000).map(lambda p: Decimal(p) / 10),
    nudge=st.sampled_from([Decimal(-1), Decimal(0), Decimal(1)]),
)
def test_sizing_at_the_edge_of_the_minimum_order_is_never_missed(
    price: Decimal, nudge: Decimal
) -> None:
    """An equity worth exactly the fewest whole lots that reach the minimum order at the price
    (or a hair either side): the float check never says "refused" where exact sizing gives an
    order."""
    market = BTCUSDT_PERP
    lots = math.ceil(market.min_notional / (market.step_size * price))
    equity = lots * market.step_size * price + nudge * Decimal("1e-9")
    one, zero = Decimal(1), Decimal(0)
    if position_size(market, equity, one, one, price, zero).ok:
        assert may_size(market, equity, one, one, zero, np.array([float(price)]))[0]


def test_an_account_below_the_minimum_order_is_refused_at_every_price() -> None:
    """USDT-margined, 100 USDT minimum: 99 USDT at leverage 1 is refused at any price, 99 at 2× is
    tradable at some; an inverse account with no coin is refused everywhere."""
    one, zero = Decimal(1), Decimal(0)
    marks = np.geomspace(1.0, 1e7, 500)
    assert not may_size(BTCUSDT_PERP, Decimal(99), one, one, zero, marks).any()
    assert may_size(BTCUSDT_PERP, Decimal(99), one, Decimal(2), zero, marks).any()
    assert not may_size(BTCUSD_PERP, Decimal(0), one, one, zero, marks).any()
