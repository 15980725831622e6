"""Hand-checked backtests: a few candles each, every trade and balance worked out on paper.

Unless a test says otherwise: USDT account of 10,000, 5 bps taker fee, no slippage, leverage 1,
position_fraction 1, size buffer 20 bps, threshold 0.70, k_sl 1.5 / k_tp 2.0, fixed exits 1 % /
2 %. Sizing at 20,000: budget = 10,000 / (1 + (5 + 0 + 20) bps) = 9,975.06; qty = 9,975.06 /
20,000 = 0.49875 → rounded down to the 0.001 step: 0.498 BTC. Candles start at 09:00 UTC (no
funding time) unless the test is about funding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from tbotd.backtest import BacktestResult, run_backtest
from tbotd.domain import Side
from tbotd.domain.enums import OrderSide
from tbotd.domain.markets import BTCUSD_PERP
from tbotd.domain.values import book, datetime_to_ms
from tbotd.execution.paper_model import taker_price
from tests.unit.backtest_support import candles, predictions, settings

D = Decimal
START = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
FLAT = ("20000", "20010", "19990", "20000")


def at(bar: int, start: datetime = START) -> datetime:
    """Open time of bar ``bar``."""
    return start + timedelta(minutes=5 * bar)


def bt(
    rows: list[tuple[str, str, str, str]],
    calls: dict[int, tuple[str, float]],
    start: datetime = START,
    inverse: bool = False,
    funding: dict[int, Decimal] | None = None,
    extra: dict[str, Any] | None = None,
    **sections: dict[str, Any],
) -> BacktestResult:
    frame = candles(*rows, start=start)
    preds = predictions(frame, calls, **(extra or {}))
    market = BTCUSD_PERP if inverse else None
    return run_backtest(frame, preds, settings(inverse, **sections), funding, market)


def test_long_take_profit() -> None:
    """Long 0.498 at 20,000 with sd 1 %: TP 20,400 (k_tp 2), SL 19,700 (k_sl 1.5); the next
    candle reaches 20,450 → exit at 20,400: PnL 0.498 × 400 = 199.2, fees 4.98 + 5.0796."""
    r = bt(
        [FLAT, ("20000", "20100", "19950", "20050"), ("20050", "20450", "20000", "20300"), FLAT],
        {0: ("long", 0.8)},
        extra={"sd": {0: "0.01"}},
    )
    [t] = r.trades
    assert (t.side, t.qty, t.entry_price, t.exit_price) == (
        Side.LONG,
        D("0.498"),
        D(20000),
        D(20400),
    )
    assert (t.entry_time, t.exit_time, t.exit_reason) == (at(1), at(2), "take_profit")
    assert (t.pnl, t.fees, t.funding) == (D("199.2"), D("4.98") + D("5.0796"), D(0))
    assert r.final_equity == D("10189.1404")
    assert r.fees == D("10.0596")


def test_short_stop_loss_with_slippage() -> None:
    """2 bps slippage: budget 10,000 / 1.0027 → 0.498 BTC; the short sells at 20,000 − 4 =
    19,996 (fee 4.979004); fixed SL 19,996 × 1.01 = 20,195.96 → 20,196.0; the stop buys at
    20,196 + 4.0392 → 20,200.1 (rounded up to the tick, against us): PnL −204.1 × 0.498."""
    r = bt(
        [FLAT, ("20000", "20100", "19950", "20050"), ("20050", "20250", "20000", "20200"), FLAT],
        {0: ("short", 0.75)},
        execution={"slippage_bps": "2"},
    )
    [t] = r.trades
    assert (t.side, t.entry_price, t.exit_price, t.exit_reason) == (
        Side.SHORT,
        D(19996),
        D("20200.1"),
        "stop_loss",
    )
    assert t.pnl == D("-101.6418")
    assert t.fees == D("4.979004") + D("5.02982490")
    assert r.final_equity == D(10000) - D("101.6418") - t.fees


def test_stop_and_target_in_one_candle_count_as_the_stop() -> None:
    """Long at 20,000 with fixed exits (SL 19,800, TP 20,400); a candle touching 20,500 and
    19,700 closes at the stop: PnL −200 × 0.498 = −99.6."""
    r = bt(
        [FLAT, ("20000", "20100", "19950", "20050"), ("20050", "20500", "19700", "20000"), FLAT],
        {0: ("long", 0.9)},
    )
    [t] = r.trades
    assert (t.exit_reason, t.exit_price, t.pnl) == ("stop_loss", D(19800), D("-99.6"))
    assert t.fees == D("4.98") + D("0.498") * 19800 * D("0.0005")


def test_a_candle_opening_beyond_the_stop_fills_at_its_open() -> None:
    """A gap down to 19,700 through the 19,800 stop fills at 19,700: PnL −300 × 0.498."""
    r = bt(
        [FLAT, ("20000", "20100", "19950", "20050"), ("19700", "19750", "19600", "19650"), FLAT],
        {0: ("long", 0.9)},
    )
    [t] = r.trades
    assert (t.exit_reason, t.exit_price, t.pnl) == ("stop_loss", D(19700), D("-149.4"))


def test_flip_closes_the_long_and_opens_a_short_at_the_next_open() -> None:
    """Long 0.498 at 20,000; a confident short after bar 1 closes it at bar 2's open 20,100
    (+49.8) and sizes the short from equity 9,995.02 + 49.8 = 10,044.82 → 0.498 at 20,100; the
    short is closed at the last close (end of data, 20,100)."""
    r = bt(
        [FLAT, ("20000", "20150", "19950", "20100"), ("20100", "20150", "20050", "20100")],
        {0: ("long", 0.9), 1: ("short", 0.8)},
    )
    first, second = r.trades
    assert (first.side, first.exit_price, first.exit_reason, first.pnl) == (
        Side.LONG,
        D(20100),
        "decision",
        D("49.8"),
    )
    assert (first.exit_time, second.entry_time) == (at(2), at(2))
    assert (second.side, second.qty, second.entry_price) == (Side.SHORT, D("0.498"), D(20100))
    assert (second.exit_reason, second.exit_time, second.pnl) == (
        "end_of_data",
        at(3),
        D(0),
    )
    fee_20100 = D("0.498") * 20100 * D("0.0005")  # 5.0049
    assert (first.fees, second.fees) == (D("4.98") + fee_20100, 2 * fee_20100)
    assert r.final_equity == D("10029.8053")


def test_confident_neutral_closes_and_hold_config_keeps_it() -> None:
    """Neutral 0.9 after bar 1 closes the long at bar 2's open 20,050 (+24.9); with
    on_neutral = "hold" the long stays until the end of data (last close 20,080)."""
    rows = [FLAT, ("20000", "20060", "19990", "20050"), ("20050", "20090", "20040", "20080")]
    calls = {0: ("long", 0.9), 1: ("neutral", 0.9)}
    [t] = bt(rows, calls).trades
    assert (t.exit_reason, t.exit_time, t.exit_price, t.pnl) == (
        "decision",
        at(2),
        D(20050),
        D("24.9"),
    )
    [kept] = bt(rows, calls, strategy={"on_neutral": "hold"}).trades
    assert (kept.exit_reason, kept.exit_price, kept.pnl) == ("end_of_data", D(20080), D("39.84"))


def test_hold_rows_and_same_direction_change_nothing() -> None:
    """A "hold" row never opens (the manager is not asked, even with confidence 0.99); a second
    confident long keeps the first position and its exits."""
    rows = [FLAT, FLAT, ("20000", "20010", "19990", "20005"), FLAT]
    assert bt(rows, {0: ("hold", 0.99), 1: ("hold", 0.99)}).trades == ()
    [t] = bt(rows, {0: ("long", 0.9), 1: ("long", 0.95), 2: ("hold", 0.99)}).trades
    assert (t.entry_time, t.exit_reason, t.qty) == (at(1), "end_of_data", D("0.498"))


def test_below_threshold_does_nothing_and_the_threshold_itself_acts() -> None:
    """0.69 < 0.70: no entry, and no flip of an open position; exactly 0.70 acts."""
    rows = [FLAT, FLAT, FLAT, FLAT]
    assert bt(rows, {0: ("long", 0.69), 1: ("short", 0.699)}).trades == ()
    [t] = bt(rows, {0: ("long", 0.7), 1: ("short", 0.69)}).trades
    assert (t.side, t.entry_time, t.exit_reason) == (Side.LONG, at(1), "end_of_data")


def test_funding_across_the_8h_mark() -> None:
    """Long 0.498 opened at 07:50; the 07:55 candle closes at 08:00 at 20,010: it pays
    0.0001 × 0.498 × 20,010 = 0.996498 USDT. A position opened at 08:00 owes nothing for it."""
    start = datetime(2024, 3, 4, 7, 45, tzinfo=UTC)
    eight = datetime_to_ms(datetime(2024, 3, 4, 8, 0, tzinfo=UTC))
    rows = [FLAT, FLAT, ("20000", "20020", "19990", "20010"), FLAT]
    r = bt(rows, {0: ("long", 0.9)}, start=start, funding={eight: D("0.0001")})
    [t] = r.trades
    assert t.funding == D("-0.996498")
    assert (r.funding, r.funding_payments) == (D("-0.996498"), 1)
    assert r.final_equity == D(10000) + t.pnl - t.fees - D("0.996498")
    late = bt(rows, {2: ("long", 0.9)}, start=start, funding={eight: D("0.0001")})
    assert (late.trades[0].entry_time, late.funding) == (at(3, start), D(0))
    unknown = bt(rows, {0: ("long", 0.9)}, start=start)
    assert (unknown.funding, unknown.funding_missing) == (D(0), 1)


def test_inverse_pnl_is_in_btc() -> None:
    """1 BTC at 30,000 on 100-USD contracts: budget 1 / 1.0025 BTC × 30,000 / 100 = 299.25 → 299
    contracts; TP 2 % at 30,600: PnL = 299 × 100 × (1/30,000 − 1/30,600) BTC (≈ 0.019542)."""
    flat = ("30000", "30010", "29990", "30000")
    r = bt(
        [flat, flat, ("30000", "30700", "29990", "30650"), flat],
        {0: ("long", 0.9)},
        inverse=True,
    )
    [t] = r.trades
    assert (t.qty, t.entry_price, t.exit_price, t.exit_reason) == (
        D(299),
        D(30000),
        D(30600),
        "take_profit",
    )
    assert t.pnl == book(D(29900) * (1 / D(30000) - 1 / D(30600)))  # booked to 1e-8 BTC
    assert t.fees == book(D(29900) / D(30000) * D("0.0005")) + book(
        D(29900) / D(30600) * D("0.0005")
    )
    assert r.currency == "BTC"
    assert r.final_equity == D(1) + t.pnl - t.fees


def test_a_stop_beyond_the_leverages_reach_is_clamped_before_liquidation() -> None:
    """Leverage 10, 3 bps slippage, sd 20 % asks for a stop 30 % away, past the liquidation
    (9.64 % away at 10×): the stop is clamped to half that way, 4.82 %, rounded to the tick inside
    the bound (19,041.9), and fires there (slipped) before liquidation could (README:
    Protection)."""
    r = bt(
        [FLAT, FLAT, ("20000", "20000", "18000", "18500"), FLAT],
        {0: ("long", 0.9)},
        extra={"sd": {0: "0.2"}},
        execution={"leverage": 10, "slippage_bps": "3"},
    )
    [t] = r.trades
    reach = (D("0.1") - D("0.004")) / (1 - D("0.004")) / 2
    stop = (D(20006) * (1 - reach) / D("0.1")).to_integral_value(rounding=ROUND_CEILING) / 10
    assert stop == D("19041.9")
    assert (t.qty, t.exit_reason) == (D("4.863"), "stop_loss")
    assert t.exit_price == taker_price(OrderSide.SELL, stop, D(3), D("0.1"))


def test_a_position_open_at_the_end_is_closed_at_the_last_close() -> None:
    """No exit before the data ends: closed at the last close as "end_of_data", fee charged."""
    r = bt([FLAT, FLAT, ("20000", "20010", "19990", "20007.5")], {0: ("long", 0.9)})
    [t] = r.trades
    assert (t.exit_reason, t.exit_time, t.exit_price) == ("end_of_data", at(3), D("20007.5"))
    assert r.final_equity == D(10000) + D("0.498") * D("7.5") - t.fees
    assert r.equity.equity[-1] == float(r.final_equity)
