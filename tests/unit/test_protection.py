"""One definition of "protected" (README: Protection): closing side, whole quantity, bounded
distance, nearer than the liquidation price — and where a replacement stop goes."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain.enums import OrderSide, OrderType, Side
from tbotd.execution.protection import (
    Problem,
    StopBounds,
    VenueOrder,
    VenuePosition,
    repair_stop,
    verdict,
)

D = Decimal
SYM = "BTC/USDT:USDT"
BOUNDS = StopBounds(D("0.003"), D("0.05"), D("0.1"))
LONG = VenuePosition(SYM, Side.LONG, D(2), D(20000), liquidation_price=D(100))


def stop(
    trigger: str, qty: str = "2", side: OrderSide = OrderSide.SELL, **kw: object
) -> VenueOrder:
    return VenueOrder(
        SYM, f"s{trigger}{qty}", "1", True, True, side, OrderType.STOP_MARKET, D(qty), D(trigger),
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_stop_for_the_whole_quantity_in_bounds_protects() -> None:
    """A sell stop 1 % under a long's entry for its whole size: protected."""
    judged = verdict(LONG, [stop("19800")], BOUNDS)
    assert judged.protected
    assert judged.covered == D(2)


def test_stops_add_up_and_a_close_position_stop_covers_any_size() -> None:
    """Two stops of 1 cover 2; one close-position stop (qty 0) covers it all."""
    assert verdict(LONG, [stop("19800", "1"), stop("19700", "1")], BOUNDS).protected
    assert verdict(LONG, [stop("19800", "0", close_position=True)], BOUNDS).protected


def test_half_covered_is_not_protected() -> None:
    """After a hand increase the old stop covers half: PARTIAL."""
    judged = verdict(LONG, [stop("19800", "1")], BOUNDS)
    assert judged.problems == (Problem.PARTIAL,)
    assert judged.covered == D(1)


def test_a_stop_too_far_or_too_near_is_not_protection() -> None:
    """67.5 % away (an sd read as a percent) or 0.01 % away (an sd of 1e-5) does not count."""
    assert verdict(LONG, [stop("6500")], BOUNDS).problems == (Problem.TOO_FAR,)
    assert verdict(LONG, [stop("19998")], BOUNDS).problems == (Problem.TOO_NEAR,)


def test_a_stop_beyond_the_liquidation_price_is_not_protection() -> None:
    """At 125× the venue liquidates 0.4 % away: a stop 1 % away would never fire."""
    levered = VenuePosition(SYM, Side.SHORT, D(1), D(20000), liquidation_price=D(20080))
    judged = verdict(levered, [stop("20200", "1", OrderSide.BUY)], BOUNDS)
    assert judged.problems == (Problem.BEYOND_LIQUIDATION,)


def test_orders_on_the_opening_side_are_wrong_side_not_protection() -> None:
    """A long's old buy-side stop (left from a short) is listed as wrong side."""
    judged = verdict(LONG, [stop("20200", side=OrderSide.BUY)], BOUNDS)
    assert judged.problems == (Problem.NO_STOP,)
    assert len(judged.wrong_side) == 1


def test_a_take_profit_alone_is_not_protection() -> None:
    """Only stop-market orders limit a loss."""
    take = VenueOrder(
        SYM, "t", "2", True, True, OrderSide.SELL, OrderType.TAKE_PROFIT_MARKET, D(2), D(20400)
    )
    assert verdict(LONG, [take], BOUNDS).problems == (Problem.NO_STOP,)


def test_repair_keeps_a_sane_stop_and_clamps_an_absurd_one() -> None:
    """The old stop stays where it was when it is in bounds; 67 % away becomes 5 %."""
    assert repair_stop(LONG, D(19800), BOUNDS) == D(19800)
    assert repair_stop(LONG, D(6500), BOUNDS) == D(19000)
    assert repair_stop(LONG, None, BOUNDS) == D("19940")


def test_repair_stays_before_the_liquidation_price_or_gives_up() -> None:
    """Liquidation 2 % away: the stop takes at most half of it; 0.2 % away: no stop fits."""
    near = VenuePosition(SYM, Side.LONG, D(1), D(20000), liquidation_price=D(19600))
    assert repair_stop(near, D(19000), BOUNDS) == D(19800)
    tight = VenuePosition(SYM, Side.LONG, D(1), D(20000), liquidation_price=D(19960))
    assert repair_stop(tight, None, BOUNDS) is None


@given(
    side=st.sampled_from(list(Side)),
    entry=st.decimals(min_value=D(1), max_value=D(100_000), places=1),
    wanted=st.none() | st.decimals(min_value=D("0.1"), max_value=D(300_000), places=1),
    reach=st.none() | st.decimals(min_value=D("0.001"), max_value=D("0.9"), places=4),
)
def test_a_repaired_stop_always_passes_the_definition(
    side: Side, entry: Decimal, wanted: Decimal | None, reach: Decimal | None
) -> None:
    """Whatever the old stop and the liquidation distance, the repair is protection or None."""
    liquidation = None if reach is None else entry * (1 - side.sign * reach)
    position = VenuePosition(SYM, side, D(1), entry, liquidation_price=liquidation)
    price = repair_stop(position, wanted, BOUNDS)
    if price is None:
        return
    order = stop(str(price), "1", side.exit_order_side)
    assert verdict(position, [order], BOUNDS).protected
