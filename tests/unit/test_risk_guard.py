"""The risk guard's rules, as pure functions: trips, resets, caps, the operator's halt."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tbotd.domain.actions import ClosePosition, ExitPlan, ExitSource, HoldKind, OpenPosition
from tbotd.domain.enums import Side
from tbotd.risk.codec import state_data, state_from
from tbotd.risk.gate import Exposure, gate
from tbotd.risk.guard import (
    DAY_MS,
    Closed,
    Halt,
    OnTrip,
    RiskLimits,
    RiskRule,
    RiskState,
    after_flatten,
    command,
    observe,
)

D = Decimal
T0 = 1_700_006_400_000  # a UTC midnight
BAR = 300_000


def entry(symbol: str = "BTC/USDT:USDT", qty: str = "1") -> OpenPosition:
    return OpenPosition(
        symbol,
        Side.LONG,
        D(qty),
        ExitPlan(ExitSource.FIXED, sl_distance=D("0.01"), tp_distance=D("0.02")),
        "long",
    )


def run(limits: RiskLimits, equities: list[str], start: int = T0) -> tuple[RiskState, list[int]]:
    """Observe ``equities`` one bar apart; the bars where something tripped."""
    state, tripped = RiskState(), []
    for k, e in enumerate(equities):
        seen = observe(state, limits, start + k * BAR, D(e))
        state = seen.state
        if any(c.tripped for c in seen.changes):
            tripped.append(k)
    return state, tripped


def test_no_rule_set_never_trips_or_refuses() -> None:
    """Every rule is off unless set: a crash to nearly nothing trips nothing."""
    state, tripped = run(RiskLimits(), ["100", "1", "0.5"])
    assert tripped == []
    assert gate(state, RiskLimits(), [entry()], Exposure(D(1))).actions == [entry()]


def test_drawdown_trips_at_the_first_close_beyond_the_limit_and_stays() -> None:
    """10 % from the peak: 110 → 99.01 is 9.99 %, 98.99 is more; it stays tripped after."""
    limits = RiskLimits(max_drawdown=D("0.1"))
    state, tripped = run(limits, ["100", "110", "99.01", "98.99", "120", "130"])
    assert tripped == [3]
    assert state.trips[0].rule is RiskRule.MAX_DRAWDOWN
    refused = gate(state, limits, [entry()], Exposure(D(130))).actions
    assert refused[0].kind is HoldKind.RISK_HALTED  # type: ignore[union-attr]


def test_exactly_at_the_limit_is_not_beyond_it() -> None:
    """A drawdown equal to the limit does not trip (the limit is the most allowed)."""
    assert run(RiskLimits(max_drawdown=D("0.1")), ["100", "90"])[1] == []


def test_daily_loss_counts_from_the_days_first_close_and_resets_at_midnight() -> None:
    """5 % below the day's first equity trips; the next UTC day starts over."""
    limits = RiskLimits(daily_loss=D("0.05"))
    start = T0 + DAY_MS - 2 * BAR
    state, tripped = run(limits, ["100", "94", "80", "79"], start=start)
    assert tripped == [1]  # bars 2 and 3 are the next day: 80 is its first equity
    assert state.trips == ()
    assert state.day_start == D(80)


def test_a_stop_loss_streak_cools_the_symbol_and_the_book_down() -> None:
    """Two stop-losses in a row (one per symbol) trip the overall cooldown; a take-profit in
    between breaks the run; the cooldown ends after ``cooldown_ms``."""
    limits = RiskLimits(stop_loss_streak=2, cooldown_ms=30 * 60_000)
    state = observe(RiskState(), limits, T0, D(100)).state
    broken = [Closed("A", T0, "stop_loss"), Closed("A", T0 + 1, "take_profit")]
    after = observe(state, limits, T0 + BAR, D(100), broken)
    assert after.changes == ()
    both = [Closed("A", T0 + BAR, "stop_loss"), Closed("B", T0 + BAR + 1, "stop_loss")]
    seen = observe(after.state, limits, T0 + 2 * BAR, D(100), both)
    assert [(c.trip.rule, c.trip.symbol) for c in seen.changes] == [  # type: ignore[union-attr]
        (RiskRule.STOP_LOSS_STREAK, None)
    ]
    blocked = gate(seen.state, limits, [entry("B")], Exposure(D(100)))
    assert blocked.actions[0].kind is HoldKind.RISK_HALTED  # type: ignore[union-attr]
    later = observe(seen.state, limits, T0 + 2 * BAR + 30 * 60_000, D(100))
    assert [c.tripped for c in later.changes] == [False]
    assert gate(later.state, limits, [entry("B")], Exposure(D(100))).actions == [entry("B")]


def test_a_symbols_own_streak_blocks_only_that_symbol() -> None:
    """Per symbol: A's two stops in a row (with B's take-profits between) cool A down, not B."""
    limits = RiskLimits(stop_loss_streak=2, cooldown_ms=60_000)
    state = observe(RiskState(), limits, T0, D(100)).state
    mixed = [
        Closed("A", T0 + 1, "stop_loss"),
        Closed("B", T0 + 2, "take_profit"),
        Closed("A", T0 + 3, "stop_loss"),
    ]
    state = observe(state, limits, T0 + BAR, D(100), mixed).state
    assert [(t.symbol, t.rule) for t in state.trips] == [("A", RiskRule.STOP_LOSS_STREAK)]
    assert gate(state, limits, [entry("A")], Exposure(D(100))).actions[0] != entry("A")
    assert gate(state, limits, [entry("B")], Exposure(D(100))).actions == [entry("B")]


def test_exposure_caps_refuse_entries_beyond_them_and_count_the_book() -> None:
    """Per-symbol and gross caps: the notional already open counts, a flip's close frees its own."""
    limits = RiskLimits(max_symbol_exposure=D("0.6"), max_gross_exposure=D("1"))
    equity = D(100)
    ok = gate(RiskState(), limits, [entry()], Exposure(equity, D(30)), D(60))
    assert ok.actions == [entry()]
    assert ok.gross == D(90)
    too_big = gate(RiskState(), limits, [entry()], Exposure(equity), D(61))
    assert too_big.actions[0].kind is HoldKind.RISK_LIMIT  # type: ignore[union-attr]
    full = gate(RiskState(), limits, [entry()], Exposure(equity, D(50)), D(60))
    assert full.actions[0].kind is HoldKind.RISK_LIMIT  # type: ignore[union-attr]
    close = ClosePosition("BTC/USDT:USDT", Side.SHORT, D(1), "flip")
    flip = gate(RiskState(), limits, [close, entry()], Exposure(equity, D(50), D(50)), D(60))
    assert flip.actions == [close, entry()]


def test_entries_per_day_are_capped_and_start_over_the_next_day() -> None:
    """max_entries_per_day over every symbol; the next UTC day's first close resets the count."""
    limits = RiskLimits(max_entries_per_day=2)
    state = observe(RiskState(), limits, T0, D(100)).state
    for _ in range(2):
        state = gate(state, limits, [entry()], Exposure(D(100))).state
    third = gate(state, limits, [entry("B")], Exposure(D(100)))
    assert third.actions[0].kind is HoldKind.RISK_LIMIT  # type: ignore[union-attr]
    state = observe(state, limits, T0 + DAY_MS, D(100)).state
    assert gate(state, limits, [entry()], Exposure(D(100))).actions == [entry()]


def test_flatten_is_asked_when_an_equity_rule_trips_until_the_book_is_flat() -> None:
    """``on_trip = flatten``: the trip's observation says flatten; once the book is reported
    flat the next one does not (a plain halt never flattens)."""
    limits = RiskLimits(max_drawdown=D("0.1"), on_trip=OnTrip.FLATTEN)
    state = observe(RiskState(), limits, T0, D(100)).state
    tripped = observe(state, limits, T0 + BAR, D(80))
    assert tripped.flatten
    flat = after_flatten(tripped.state, ())
    assert not observe(flat, limits, T0 + 2 * BAR, D(70)).flatten
    plain = replace(limits, on_trip=OnTrip.HALT)
    assert not observe(state, plain, T0 + BAR, D(80)).flatten


def test_halt_blocks_entries_keeps_closes_and_resume_resets_every_rule() -> None:
    """The operator's halt (its flatten not asked again once the book is flat), and resume:
    trips cleared, the peak restarted."""
    limits = RiskLimits(max_drawdown=D("0.1"))
    state = run(limits, ["100", "80"])[0]
    halted = command(state, Halt(1, T0, flatten=True), 1, T0, D(80))
    assert halted.flatten
    flat = after_flatten(halted.state, ())
    assert not command(flat, Halt(1, T0, flatten=True), 1, T0, D(80)).flatten  # read again
    close = ClosePosition("BTC/USDT:USDT", Side.LONG, D(1), "x")
    assert gate(halted.state, limits, [close, entry()], Exposure(D(80))).actions[0] == close
    resumed = command(halted.state, None, 2, T0 + BAR, D(80))
    assert resumed.state.trips == ()
    assert resumed.state.halt is None
    assert resumed.state.peak == D(80)
    assert {c.tripped for c in resumed.changes} == {False}
    assert gate(resumed.state, limits, [entry()], Exposure(D(80))).actions == [entry()]


def test_the_state_survives_its_round_trip_through_json_data() -> None:
    """What the daemon persists reads back equal (exact decimals, trips, halt, counters)."""
    limits = RiskLimits(max_drawdown=D("0.1"), stop_loss_streak=1, cooldown_ms=60_000)
    state = run(limits, ["100.12345678", "80"])[0]
    state = observe(state, limits, T0 + 2 * BAR, D(80), [Closed("A", T0, "stop_loss")]).state
    state = command(state, Halt(3, T0, flatten=True), 3, T0, D(80)).state
    assert state_from(state_data(state)) == state


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("daily_loss_pct", "0"),
        ("max_drawdown_pct", "100"),
        ("max_drawdown_pct", "150"),
        ("cooldown_min", "-1"),
        ("max_entries_per_day", "0"),
    ],
)
def test_limits_that_cannot_work_are_refused(key: str, value: str) -> None:
    """A daily loss of 0, a drawdown of 100 % or more, a negative cooldown: config errors."""
    from pydantic import ValidationError

    from tbotd.config.risk import RiskConfig

    extra = {"stop_loss_streak": 2} if key == "cooldown_min" else {}
    with pytest.raises(ValidationError, match=key):
        RiskConfig.model_validate({key: value, **extra})
