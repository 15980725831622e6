"""An entry the wallet cannot margin, in the backtest's exact step: refused as the paper broker
refuses it, before its exits are priced."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np

from tbotd.backtest.engine import Simulator
from tbotd.backtest.state import Candles
from tbotd.domain.actions import OpenPosition
from tbotd.domain.enums import Side
from tbotd.domain.markets import KNOWN_MARKETS
from tbotd.strategy.build import build_strategy
from tbotd.strategy.exits import fixed_exits

from .backtest_support import settings


def test_an_entry_without_margin_is_refused_before_its_exits_are_priced() -> None:
    """No margin: counted as refused, wallet untouched, even where its exits would be unusable."""
    config = settings(strategy={"initial_capital": "1"})
    market = replace(
        KNOWN_MARKETS["BTC/USDT:USDT"],
        tick_size=Decimal(1),  # at a price of 5 no whole tick fits the fixed stop band
        min_notional=Decimal(0),
    )
    prices = np.array([5.0, 5.0])
    candles = Candles(np.array([0, 300_000], np.int64), *(prices,) * 5, "5m")
    strategy = build_strategy(config)
    sim = Simulator(candles, None, strategy, config, market, {})  # type: ignore[arg-type]
    wallet = sim.wallet
    entry = OpenPosition(
        market.symbol, Side.LONG, Decimal(10), fixed_exits(strategy.rules.exits), "t"
    )

    sim.open(entry, Decimal(5), 300_000)

    assert dict(sim.skipped) == {"insufficient_margin": 1}
    assert sim.exits_fallback == 0
    assert sim.wallet is wallet
    assert sim.position() is None
