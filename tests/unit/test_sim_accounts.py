"""The sim's margin arithmetic: liquidation prices, entry averaging, taker prices."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain.enums import MarketType
from tbotd.sim.accounts import PositionState, average_entry, liquidation_price, unrealized
from tbotd.sim.instruments import DEFAULT_INSTRUMENTS

LINEAR = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "BTCUSDT")
INVERSE = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "BTCUSD_PERP")


@given(
    st.sampled_from([LINEAR, INVERSE]),
    st.integers(1, 500),
    st.decimals("10000", "90000", places=1),
    st.decimals("0.02", "0.5", places=3),
    st.booleans(),
)
def test_at_the_liquidation_price_equity_equals_maintenance(
    inst: object, units: int, entry: Decimal, margin_share: Decimal, long: bool
) -> None:
    """At the liquidation price, collateral + unrealized PnL is exactly the maintenance margin."""
    from tbotd.sim.instruments import Instrument

    assert isinstance(inst, Instrument)
    qty = Decimal(units) if inst.market_type is MarketType.INVERSE else Decimal(units) / 100
    position = PositionState(inst.symbol, qty if long else -qty, entry)
    collateral = inst.notional(qty, entry) * margin_share
    price = liquidation_price(inst, position, collateral)
    assert price > 0
    equity = collateral + unrealized(inst, position, price)
    maintenance = inst.notional(qty, price) * inst.maint_margin_ratio
    assert abs(equity - maintenance) < Decimal("1e-12") * max(1, abs(maintenance))
    assert (price < entry) if long else (price > entry)


def test_inverse_entries_average_in_coins_per_dollar() -> None:
    """Adding to a COIN-M position averages 1/price (what each contract is worth in coins)."""
    entry = average_entry(INVERSE, Decimal(10), Decimal(40000), Decimal(10), Decimal(50000))
    assert entry == Decimal(20) / (Decimal(10) / 40000 + Decimal(10) / 50000)
    linear = average_entry(LINEAR, Decimal(1), Decimal(40000), Decimal(1), Decimal(50000))
    assert linear == 45000


def test_cross_short_with_ample_collateral_has_a_finite_price_and_long_may_have_none() -> None:
    """A long with collateral beyond its notional can never be liquidated (price 0)."""
    long = PositionState("BTCUSDT", Decimal("0.1"), Decimal(40000))
    assert liquidation_price(LINEAR, long, Decimal(5000)) == 0
    short = PositionState("BTCUSD_PERP", Decimal(-10), Decimal(40000))
    assert liquidation_price(INVERSE, short, Decimal(1)) == 0
