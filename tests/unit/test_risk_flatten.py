"""The risk guard's flatten, as pure functions: once asked (an equity trip with ``on_trip =
flatten``, ``tbotd halt --flatten``) it is asked at every close until the book is reported flat;
a resume cancels it; it survives a restart; a state persisted before it existed loads."""

from __future__ import annotations

import json
from decimal import Decimal

from tbotd.risk.codec import state_data, state_from
from tbotd.risk.guard import (
    DAY_MS,
    Flatten,
    Halt,
    OnTrip,
    RiskLimits,
    RiskState,
    after_flatten,
    command,
    observe,
)

D = Decimal
T0 = 1_700_006_400_000  # a UTC midnight
BAR = 300_000
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
DRAWDOWN = RiskLimits(max_drawdown=D("0.1"), on_trip=OnTrip.FLATTEN)


def tripped() -> RiskState:
    """A drawdown trip with ``on_trip = flatten`` at the second close (100 → 80)."""
    state = observe(RiskState(), DRAWDOWN, T0, D(100)).state
    seen = observe(state, DRAWDOWN, T0 + BAR, D(80))
    assert seen.flatten
    return seen.state


def test_a_flatten_is_asked_at_every_close_until_the_book_is_reported_flat() -> None:
    """A close that failed leaves BTC open: the next closes still say flatten (no new trip is
    recorded for it); once the book is reported flat, no close asks again."""
    state = after_flatten(tripped(), {BTC})
    assert state.flatten == Flatten(T0 + BAR, "max_drawdown", tries=1, left=(BTC,))
    for k in (2, 3):
        seen = observe(state, DRAWDOWN, T0 + k * BAR, D(79))
        assert seen.flatten
        assert seen.changes == ()
        state = after_flatten(seen.state, {BTC, ETH})  # a position appeared meanwhile
    assert state.flatten is not None
    assert (state.flatten.tries, state.flatten.left) == (3, (BTC, ETH))
    flat = after_flatten(state, ())
    assert flat.flatten is None
    assert not observe(flat, DRAWDOWN, T0 + 4 * BAR, D(70)).flatten
    assert flat.trips == state.trips  # the rule stays tripped: still no new entries


def test_a_halts_flatten_is_asked_until_flat_and_never_again_for_the_same_halt() -> None:
    """`tbotd halt --flatten`: asked at every close until flat; the same halt read again (a
    restart) does not ask again once done, a newer halt with flatten does."""
    state = observe(RiskState(), RiskLimits(), T0, D(100)).state
    halted = command(state, Halt(1, T0, flatten=True), 1, T0, D(100))
    assert halted.flatten
    assert halted.state.flatten == Flatten(T0, "operator halt #1")
    again = observe(after_flatten(halted.state, {BTC}), RiskLimits(), T0 + BAR, D(100))
    assert again.flatten
    flat = after_flatten(again.state, ())
    assert not command(flat, Halt(1, T0, flatten=True), 1, T0 + BAR, D(100)).flatten
    assert command(flat, Halt(2, T0 + BAR, flatten=True), 2, T0 + 2 * BAR, D(100)).flatten


def test_a_resume_cancels_a_pending_flatten() -> None:
    """The operator lifted the halt: what is still open stays open (with its stop and target)."""
    state = after_flatten(tripped(), {BTC})
    resumed = command(state, None, 1, T0 + 2 * BAR, D(80))
    assert resumed.state.flatten is None
    assert not resumed.flatten
    assert not observe(resumed.state, DRAWDOWN, T0 + 3 * BAR, D(80)).flatten


def test_a_plain_halt_keeps_a_pending_flatten() -> None:
    """A halt without flatten is no resume: the drawdown's flatten is still asked."""
    state = after_flatten(tripped(), {BTC})
    assert command(state, Halt(1, T0, flatten=False), 1, T0 + 2 * BAR, D(80)).flatten


def test_a_second_trip_while_pending_keeps_the_first_ask() -> None:
    """The daily loss trips while the drawdown's flatten is pending: one flatten, its start and
    count kept."""
    limits = RiskLimits(max_drawdown=D("0.1"), daily_loss=D("0.3"), on_trip=OnTrip.FLATTEN)
    state = observe(RiskState(), limits, T0, D(100)).state
    state = after_flatten(observe(state, limits, T0 + BAR, D(85)).state, {BTC})
    seen = observe(state, limits, T0 + 2 * BAR, D(60))
    assert [c.kind for c in seen.changes] == ["risk-trip"]
    assert seen.state.flatten == Flatten(T0 + BAR, "max_drawdown", tries=1, left=(BTC,))


def test_the_daily_loss_ending_at_midnight_ends_its_pending_flatten() -> None:
    """Nothing refuses entries on the book any more: a flatten would fight the entries that
    follow, so it is dropped with the trip."""
    limits = RiskLimits(daily_loss=D("0.1"), on_trip=OnTrip.FLATTEN)
    state = observe(RiskState(), limits, T0, D(100)).state
    state = after_flatten(observe(state, limits, T0 + BAR, D(80)).state, {BTC})
    assert observe(state, limits, T0 + 2 * BAR, D(80)).flatten
    next_day = observe(state, limits, T0 + DAY_MS, D(80))
    assert [c.kind for c in next_day.changes] == ["risk-reset"]
    assert not next_day.flatten
    assert next_day.state.flatten is None


def test_a_restart_keeps_a_pending_flatten() -> None:
    """Round-tripped through what the daemon persists (JSON): still pending, same count."""
    state = after_flatten(tripped(), {BTC, ETH})
    back = state_from(json.loads(json.dumps(state_data(state))))
    assert back == state
    assert observe(back, DRAWDOWN, T0 + 2 * BAR, D(80)).flatten


def test_a_state_persisted_before_the_pending_flatten_existed_loads() -> None:
    """An older daemon's state (no ``flatten`` key) loads with no flatten pending: it asked its
    flatten once, and a position open now may be one the operator opened since."""
    old = state_data(command(tripped(), Halt(2, T0, flatten=True), 2, T0, D(80)).state)
    del old["flatten"]
    state = state_from(old)
    assert state.flatten is None
    assert state.flattened_seq == 2
    assert state.halt == Halt(2, T0, flatten=True)
    assert not command(state, Halt(2, T0, flatten=True), 2, T0, D(80)).flatten


def test_a_halt_carrying_a_resume_the_daemon_already_applied_does_not_apply_it_again() -> None:
    """The daemon read a resume (#2) just before a halt (#3) was written over it: the halt
    carries #2, yet it does not reset a trip of the close since, nor cancel its flatten."""
    state = observe(RiskState(), DRAWDOWN, T0, D(100)).state
    state = command(state, None, 2, T0, D(100)).state  # the resume, applied
    seen = observe(state, DRAWDOWN, T0 + BAR, D(80))  # a trip, with its flatten
    assert seen.flatten
    done = command(seen.state, Halt(3, T0 + BAR, resume_seq=2), 3, T0 + 2 * BAR, D(80))
    assert done.flatten
    assert [t.rule for t in done.state.trips] == ["max_drawdown"]
    assert done.state.halt is not None


def test_a_halt_carrying_a_resume_not_applied_yet_applies_it_first() -> None:
    """A resume (#2) and a halt (#3) written before the daemon read either: the resume counts
    (trips reset, flatten cancelled), then the halt stops entries."""
    seen = command(tripped(), Halt(3, T0 + BAR, resume_seq=2), 3, T0 + 2 * BAR, D(80))
    assert not seen.flatten
    assert seen.state.trips == ()
    assert seen.state.halt is not None
    assert seen.state.peak == D(80)
