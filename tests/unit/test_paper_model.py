"""The paper fill model charges hand-computable fees, PnL and funding, and exits pessimistically."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain import Candle, OrderSide, Side
from tbotd.domain.errors import InsufficientMarginError
from tbotd.domain.markets import BTCUSD_PERP, BTCUSDT_PERP
from tbotd.domain.positions import is_funding_time
from tbotd.domain.values import book
from tbotd.execution.paper_model import (
    ExitReason,
    FillParams,
    Wallet,
    candle_exit,
    charge_funding,
    close_position,
    open_position,
    protect,
    taker_price,
)
from tbotd.strategy import position_size

T0 = datetime(2024, 5, 1, 7, 55, tzinfo=UTC)
# Binance's own rules (tbotd.domain.markets), with a 5 USDT minimum notional so small test
# accounts can trade.
LINEAR = replace(BTCUSDT_PERP, min_notional=Decimal(5))
INVERSE = BTCUSD_PERP
NO_SLIP = FillParams(slippage_bps=Decimal(0), taker_fee_bps=Decimal(5))


def candle(o: str, h: str, low: str, c: str, at: datetime = T0) -> Candle:
    return Candle(LINEAR.symbol, "5m", at, o, h, low, c, "1")


def test_linear_round_trip_matches_hand_computation() -> None:
    """Long 0.5 BTC 20,000 → 21,000 with 5 bps fees: +500 PnL, 5 + 5.25 fees, in USDT."""
    wallet = Wallet("USDT", Decimal(20000))
    wallet, entry = open_position(
        wallet, LINEAR, Side.LONG, Decimal("0.5"), Decimal(20000), NO_SLIP, T0
    )
    assert (entry.price, entry.fee) == (Decimal(20000), Decimal(5))
    assert wallet.free == Decimal(20000) - Decimal(5) - Decimal(10000)
    wallet, exit_ = close_position(wallet, LINEAR, Decimal(21000), NO_SLIP, T0, ExitReason.DECISION)
    assert (exit_.realized_pnl, exit_.fee) == (Decimal(500), Decimal("5.25"))
    assert wallet.balance == Decimal("20489.75")
    assert wallet.positions == {}


def test_inverse_round_trip_is_accounted_in_btc() -> None:
    """300 contracts of 100 USD long 30,000 → 33,000: PnL 30000·(1/30000 − 1/33000) BTC."""
    wallet = Wallet("BTC", Decimal(2))
    wallet, entry = open_position(
        wallet, INVERSE, Side.LONG, Decimal(300), Decimal(30000), NO_SLIP, T0
    )
    assert entry.fee == Decimal("0.0005")
    wallet, exit_ = close_position(
        wallet, INVERSE, Decimal(33000), NO_SLIP, T0, ExitReason.DECISION
    )
    expected_pnl = Decimal(30000) * (1 / Decimal(30000) - 1 / Decimal(33000))
    assert exit_.realized_pnl == Decimal("0.09090909")  # booked to 8 decimals, like the venue
    assert exit_.realized_pnl == book(expected_pnl)
    assert exit_.fee == book(Decimal(30000) / Decimal(33000) * Decimal(5) / Decimal(10000))
    expected_pnl = exit_.realized_pnl
    assert wallet.balance == Decimal(2) - Decimal("0.0005") + expected_pnl - exit_.fee


def test_short_pnl_and_slippage_go_against_the_taker() -> None:
    """Slippage makes buys dearer and sells cheaper, rounded to the tick against the trader."""
    assert taker_price(OrderSide.BUY, Decimal(20000), Decimal(2), Decimal("0.1")) == Decimal(20004)
    assert taker_price(OrderSide.SELL, Decimal("20000.05"), Decimal(0), Decimal("0.1")) == Decimal(
        "20000.0"
    )
    params = FillParams(slippage_bps=Decimal(10), taker_fee_bps=Decimal(0))
    wallet, entry = open_position(
        Wallet("USDT", Decimal(10000)),
        LINEAR,
        Side.SHORT,
        Decimal("0.1"),
        Decimal(20000),
        params,
        T0,
    )
    assert entry.price == Decimal(19980)
    _, exit_ = close_position(wallet, LINEAR, Decimal(19000), params, T0, ExitReason.DECISION)
    assert exit_.price == Decimal(19019)
    assert exit_.realized_pnl == Decimal("96.1")


def test_insufficient_margin_is_refused_and_nothing_opens() -> None:
    """An entry whose margin plus fee exceeds the free balance is rejected."""
    wallet = Wallet("USDT", Decimal(1000))
    with pytest.raises(InsufficientMarginError, match="exceeds free balance"):
        open_position(wallet, LINEAR, Side.LONG, Decimal(1), Decimal(20000), NO_SLIP, T0)


def protected_long(stop: str = "19000", take: str = "21000") -> Wallet:
    wallet, _ = open_position(
        Wallet("USDT", Decimal(100000)), LINEAR, Side.LONG, Decimal(1), Decimal(20000), NO_SLIP, T0
    )
    return protect(wallet, LINEAR.symbol, Decimal(stop), Decimal(take))


@pytest.mark.parametrize(
    ("bar", "expected"),
    [
        (("20000", "21500", "19900", "21200"), (ExitReason.TAKE_PROFIT, Decimal(21000))),
        (("20000", "20100", "18500", "18800"), (ExitReason.STOP_LOSS, Decimal(19000))),
        (("20000", "21500", "18500", "20000"), (ExitReason.STOP_LOSS, Decimal(19000))),
        (("18000", "18100", "17900", "18000"), (ExitReason.STOP_LOSS, Decimal(18000))),
        (("22000", "22500", "21900", "22000"), (ExitReason.TAKE_PROFIT, Decimal(22000))),
        (("20000", "20900", "19100", "20500"), None),
    ],
    ids=["tp", "sl", "both-touched-counts-as-stop", "gap-through-stop", "gap-through-tp", "none"],
)
def test_candle_exits_are_pessimistic(bar: tuple[str, str, str, str], expected: object) -> None:
    """Stop first, then take-profit; a level the candle opened beyond fills at the open."""
    position = protected_long().positions[LINEAR.symbol]
    assert candle_exit(position, candle(*bar)) == expected


def test_liquidation_comes_before_a_farther_stop() -> None:
    """At 10× a long is liquidated near −10 % before a stop placed at −15 % is reached."""
    params = FillParams(taker_fee_bps=Decimal(0), leverage=Decimal(10))
    wallet, _ = open_position(
        Wallet("USDT", Decimal(10000)), LINEAR, Side.LONG, Decimal(1), Decimal(20000), params, T0
    )
    wallet = protect(wallet, LINEAR.symbol, Decimal(17000), Decimal(25000))
    position = wallet.positions[LINEAR.symbol]
    assert position.liquidation_price == Decimal(18000) / Decimal("0.996")
    reason, price = candle_exit(position, candle("20000", "20000", "16000", "16500")) or (None, 0)
    assert reason is ExitReason.LIQUIDATION
    wallet, execution = close_position(
        wallet, LINEAR, Decimal(price), params, T0, reason, slip=False
    )
    assert execution.realized_pnl >= -position.margin
    assert wallet.balance >= Decimal(10000) - position.margin


def test_funding_is_charged_at_8_hour_marks_only() -> None:
    """Longs pay a positive rate: 1 BTC at 20,000 × 0.0001 = 2 USDT, at 00/08/16 UTC."""
    assert is_funding_time(T0 + timedelta(minutes=5))
    assert not is_funding_time(T0)
    wallet = protected_long()
    after, amount = charge_funding(wallet, LINEAR, Decimal("0.0001"), Decimal(20000))
    assert amount == Decimal(-2)
    assert after.balance == wallet.balance - 2
    flat, nothing = charge_funding(
        Wallet("USDT", Decimal(1)), LINEAR, Decimal("0.01"), Decimal(20000)
    )
    assert (flat.balance, nothing) == (Decimal(1), Decimal(0))


@given(
    moves=st.lists(
        st.tuples(
            st.sampled_from(list(Side)),
            st.integers(1, 50),
            st.integers(5000, 60000),
            st.integers(5000, 60000),
        ),
        min_size=1,
        max_size=20,
    ),
    leverage=st.integers(1, 20),
)
def test_balance_never_goes_negative_and_each_fill_pays_one_fee(
    moves: list[tuple[Side, int, int, int]], leverage: int
) -> None:
    """Whatever is traded, isolated margin keeps the wallet non-negative; one fee per fill."""
    params = FillParams(
        slippage_bps=Decimal(3), taker_fee_bps=Decimal(5), leverage=Decimal(leverage)
    )
    wallet = Wallet("USDT", Decimal(10000))
    for side, tenths, entry, exit_price in moves:
        qty = Decimal(tenths) / 10
        try:
            wallet, opened = open_position(wallet, LINEAR, side, qty, Decimal(entry), params, T0)
        except InsufficientMarginError:
            continue
        position = wallet.positions[LINEAR.symbol]
        liq = position.liquidation_price
        adverse = (liq is not None) and (
            Decimal(exit_price) <= liq if side is Side.LONG else Decimal(exit_price) >= liq
        )
        reason = ExitReason.LIQUIDATION if adverse else ExitReason.DECISION
        price = liq if adverse and liq is not None else Decimal(exit_price)
        before = wallet.balance
        wallet, closed = close_position(wallet, LINEAR, price, params, T0, reason, slip=not adverse)
        assert closed.fee >= 0
        assert opened.fee > 0
        assert wallet.balance == before + closed.realized_pnl - closed.fee
        assert wallet.balance >= 0


@given(
    equity=st.integers(50, 10**6),
    mark=st.integers(1000, 100000),
    leverage=st.integers(1, 20),
    inverse=st.booleans(),
    side=st.sampled_from(list(Side)),
)
def test_full_fraction_sizing_always_fits_the_margin_check(
    equity: int, mark: int, leverage: int, inverse: bool, side: Side
) -> None:
    """position_fraction = 1 sized with fee + slippage + buffer is never refused for margin."""
    market = INVERSE if inverse else LINEAR
    params = FillParams(
        slippage_bps=Decimal(2), taker_fee_bps=Decimal(5), leverage=Decimal(leverage)
    )
    cost_rate = (Decimal(2) + Decimal(5) + Decimal(20)) / 10_000
    balance = Decimal(equity) / (Decimal(20000) if inverse else 1)
    size = position_size(market, balance, Decimal(1), Decimal(leverage), Decimal(mark), cost_rate)
    if not size.ok:
        return
    fill_reference = Decimal(mark) * Decimal("1.0015")  # price moved 15 bps against us
    open_position(
        Wallet(market.settle, balance), market, side, size.qty, fill_reference, params, T0
    )
