"""The event-driven fast path equals the per-bar loop over the same exact step, on random data,
for every strategy kind and enhancement mode."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbotd.backtest import BacktestResult, run_backtest
from tbotd.backtest.events import first_crossing, next_index
from tbotd.domain import Side
from tbotd.domain.actions import Hold, HoldKind
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tests.unit.backtest_support import KINDS, random_scenario
from tests.unit.backtest_support import settings as make_settings

CONFIGS: list[dict[str, Any]] = [
    {},
    {"execution": {"slippage_bps": "3", "leverage": 5}},
    {"execution": {"leverage": 40}, "strategy": {"on_neutral": "hold"}},
    {"strategy": {"refresh_exits_on_hold": True, "threshold": 0.8}},
    {"execution": {"size_buffer_bps": "0", "slippage_bps": "9", "position_fraction": "0.3"}},
    # USDT: one or two trades leave less than the 100 USDT minimum order (a blown account)
    {"strategy": {"initial_capital": "104"}, "execution": {"slippage_bps": "20"}},
]


def same(fast: BacktestResult, ref: BacktestResult) -> None:
    """Every observable of the two runs is identical (exact Decimals, float curves bit for bit)."""
    assert fast.trades == ref.trades
    assert (fast.final_equity, fast.fees, fast.funding) == (ref.final_equity, ref.fees, ref.funding)
    assert (fast.funding_payments, fast.funding_missing) == (
        ref.funding_payments,
        ref.funding_missing,
    )
    assert (fast.skipped, fast.exits_fallback) == (ref.skipped, ref.exits_fallback)
    assert np.array_equal(fast.equity.equity, ref.equity.equity)
    assert np.array_equal(fast.equity.balance, ref.equity.balance)
    assert np.array_equal(fast.equity.position, ref.equity.position)
    assert fast.decisions == ref.decisions
    assert ref.exact_steps == ref.bars


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    config=st.sampled_from(CONFIGS),
    inverse=st.booleans(),
    exits=st.sampled_from(["sd", "wide", "absolute", "fixed"]),
    sure=st.sampled_from([0.02, 0.1, 0.5]),
    grid=st.sampled_from([0.1, 10.0, 50.0]),
    max_age=st.sampled_from([0, 0, 3]),
)
def test_fast_path_equals_the_per_bar_reference_loop(
    seed: int,
    config: dict[str, Any],
    inverse: bool,
    exits: str,
    sure: float,
    grid: float,
    max_age: int,
) -> None:
    """Random candles (coarse grids touch TP/SL exactly), predictions, funding and configs:
    skipping the bars where nothing can happen never changes a trade, a balance or a curve."""
    frame, preds, funding = random_scenario(seed, 400, inverse, exits, sure, grid)
    config = make_settings(inverse, **config)
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    args = (frame, preds, config, funding, market)
    fast = run_backtest(*args, max_prediction_age=max_age)
    ref = run_backtest(*args, max_prediction_age=max_age, reference=True)
    same(fast, ref)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(sorted(KINDS)),
    config=st.sampled_from(CONFIGS),
    inverse=st.booleans(),
    exits=st.sampled_from(["sd", "absolute", "fixed"]),
    sure=st.sampled_from([0.1, 0.5]),
    grid=st.sampled_from([0.1, 10.0]),
)
def test_fast_path_equals_the_reference_loop_for_every_kind(
    seed: int,
    kind: str,
    config: dict[str, Any],
    inverse: bool,
    exits: str,
    sure: float,
    grid: float,
) -> None:
    """Classic and ML-enhanced signals (known for every bar before the run, like ML's) skip
    only bars where the rules hold: the same trades, balances, curves and decision records."""
    frame, preds, funding = random_scenario(seed, 400, inverse, exits, sure, grid)
    strategy = KINDS[kind] | config.get("strategy", {})
    config = make_settings(inverse, strategy=strategy, execution=config.get("execution", {}))
    market = BTCUSD_PERP if inverse else BTCUSDT_PERP
    fast = run_backtest(frame, preds, config, funding, market)
    same(fast, run_backtest(frame, preds, config, funding, market, reference=True))


def test_a_blown_account_is_not_stepped_yet_leaves_the_same_records() -> None:
    """A few trades leave 100.6 USDT, under the 100 USDT minimum order once rounded to the lot at
    most prices: the fast path records the refused entries without stepping them, and leaves the
    same trades, curves and every refusal the per-bar loop records."""
    frame, preds, funding = random_scenario(7, 400, False, "fixed", 0.5, 10.0)
    config = make_settings(
        False, strategy={"initial_capital": "104"}, execution={"slippage_bps": "20"}
    )
    args = (frame, preds, config, funding, BTCUSDT_PERP)
    fast, ref = run_backtest(*args), run_backtest(*args, reference=True)
    same(fast, ref)
    refused = [
        d
        for d in ref.decisions
        if isinstance(d.actions[0], Hold) and d.actions[0].kind is HoldKind.SIZE_REFUSED
    ]
    assert len(ref.trades) >= 3
    assert len(refused) > 100
    assert fast.exact_steps < len(refused) // 4


def test_the_fast_path_skips_most_bars() -> None:
    """With few confident predictions the exact step runs on a small share of the bars (the
    point of the fast path), and the result is still the reference's."""
    frame, preds, funding = random_scenario(7, 3000, sure=0.01)
    config = make_settings(execution={"leverage": 3})
    fast = run_backtest(frame, preds, config, funding)
    same(fast, run_backtest(frame, preds, config, funding, reference=True))
    assert len(fast.trades) > 5
    assert fast.exact_steps < fast.bars / 5


def test_next_index_finds_the_next_marked_bar() -> None:
    """next_index[i] is the first marked bar at or after i, or n."""
    mask = np.array([False, True, False, False, True, False])
    assert next_index(mask).tolist() == [1, 1, 4, 4, 4, 6, 6]


@settings(max_examples=200, deadline=None)
@given(
    lows=st.lists(st.integers(19_000_0, 21_000_0), min_size=1, max_size=300),
    spread=st.integers(0, 500_0),
    level=st.integers(19_500_0, 20_500_0),
    take=st.integers(19_500_0, 20_500_0),
    long=st.booleans(),
)
def test_float_crossing_search_never_misses_the_exact_first_crossing(
    lows: list[int], spread: int, level: int, take: int, long: bool
) -> None:
    """Prices on a 0.1 tick (many exactly at the level): the float search stops at or before the
    first bar where the exact Decimal comparison crosses, never after it."""
    tick = Decimal("0.1")
    low_d = [x * tick for x in lows]
    high_d = [x + spread * tick for x in low_d]
    adverse, target = level * tick, take * tick
    if long:
        exact = [lo <= adverse or hi >= target for lo, hi in zip(low_d, high_d, strict=True)]
    else:
        exact = [hi >= adverse or lo <= target for lo, hi in zip(low_d, high_d, strict=True)]
    first_exact = exact.index(True) if True in exact else len(exact)
    low = np.array([float(x) for x in low_d])
    high = np.array([float(x) for x in high_d])
    side = Side.LONG if long else Side.SHORT
    found = first_crossing(low, high, 0, len(low), side, float(adverse), float(target))
    assert found <= first_exact
    assert found == first_exact or not exact[found]


def test_a_low_exactly_at_the_stop_triggers_it() -> None:
    """Touching the level counts (low == stop): found by the float search, filled by the exact
    code at the stop."""
    low = np.array([19_850.0, 19_800.1, 19_700.0])
    high = low + 100.0
    assert first_crossing(low, high, 0, 3, Side.LONG, 19_800.1, 30_000.0) == 1
    assert first_crossing(low, high, 0, 3, Side.LONG, None, None) == 3
