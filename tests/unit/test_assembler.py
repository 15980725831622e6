"""Closed candles are emitted exactly once, in order, never from a stale row, gaps reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain.values import datetime_to_ms
from tbotd.marketdata.assembler import CandleAssembler

T0 = datetime(2024, 6, 1, tzinfo=UTC)
STEP = 300_000
SYMBOL = "BTC/USDT:USDT"


def row(i: int, close: float = 100.0) -> list[object]:
    """Candle number ``i`` after T0 (final values unless ``close`` says otherwise)."""
    return [datetime_to_ms(T0) + i * STEP, 100.0, 110.0, 90.0, close, 5.0]


def times(candles: list[object]) -> list[int]:
    return [(c.open_time - T0) // timedelta(minutes=5) for c in candles]  # type: ignore[attr-defined]


def test_roll_over_emits_the_previous_candle_once() -> None:
    """The forming candle is emitted when the next one appears, once, with its last values."""
    a = CandleAssembler(SYMBOL, "5m", None)
    assert a.on_stream([row(0, 95.0)]).closed == []
    assert a.on_stream([row(0, 97.0)]).closed == []
    out = a.on_stream([row(0, 99.0), row(1)])
    assert times(out.closed) == [0]
    assert float(out.closed[0].close) == 99.0
    assert a.on_stream([row(0, 1.0), row(1)]).closed == []


def test_rows_mutated_by_ccxt_later_do_not_change_emitted_candles() -> None:
    """ccxt mutates rows in place; what was emitted keeps its values."""
    a = CandleAssembler(SYMBOL, "5m", None)
    first = row(0, 99.0)
    a.on_stream([first])
    closed = a.on_stream([row(1)]).closed[0]
    first[4] = 50.0
    assert float(closed.close) == 99.0


def test_after_a_drop_the_stale_candle_comes_from_rest() -> None:
    """A candle whose final update may have been missed is not emitted from the stream."""
    a = CandleAssembler(SYMBOL, "5m", None)
    a.on_stream([row(0, 98.0)])
    a.on_stream([row(1, 96.0)])
    a.stream_lost()
    out = a.on_stream([row(3)])  # reconnected two candles later
    assert out.closed == []
    assert out.needs_gap_fill
    rest = a.on_rest([row(1, 97.0), row(2), row(3)], T0 + timedelta(minutes=17))
    assert times(rest.closed) == [1, 2]
    assert float(rest.closed[0].close) == 97.0
    assert a.on_stream([row(3), row(4)]).closed[0].open_time == T0 + timedelta(minutes=15)


def test_a_hole_the_stream_skipped_waits_for_rest_and_is_not_called_an_exchange_gap() -> None:
    """The stream dropped for two candles and REST could not fill them yet: the candles after
    the hole are not emitted (nothing is decided on a history with a hole) and no exchange gap
    is claimed; when REST answers, every candle comes in order."""
    a = CandleAssembler(SYMBOL, "5m", None)
    a.on_stream([row(0)])
    a.on_stream([row(1)])  # 0 closed
    a.stream_lost()
    assert a.on_stream([row(4)]).needs_gap_fill  # back two candles later; REST fails
    out = a.on_stream([row(4), row(5)])  # 4 rolls over with 1-3 still missing
    assert (out.closed, out.gaps) == ([], [])
    assert out.needs_gap_fill
    rest = a.on_rest([row(k) for k in range(1, 7)], T0 + timedelta(minutes=31))
    assert times(rest.closed) == [1, 2, 3, 4, 5]
    assert rest.gaps == []


def test_rest_never_emits_the_forming_candle() -> None:
    """The last REST row is still forming until its close time has passed."""
    a = CandleAssembler(SYMBOL, "5m", T0 - timedelta(minutes=5))
    out = a.on_rest([row(0), row(1)], T0 + timedelta(minutes=7))
    assert times(out.closed) == [0]


def test_exchange_gaps_are_reported_not_filled() -> None:
    """Missing candles stay missing and are reported as a gap."""
    a = CandleAssembler(SYMBOL, "5m", T0)
    out = a.on_rest([row(1), row(4), row(5)], T0 + timedelta(hours=1))
    assert times(out.closed) == [1, 4, 5]
    [gap] = out.gaps
    assert (gap.first_missing, gap.count) == (T0 + timedelta(minutes=10), 2)


def test_a_late_start_asks_for_gap_fill() -> None:
    """After a restart the stream's candle is far ahead of the store: fill from REST first."""
    a = CandleAssembler(SYMBOL, "5m", T0)
    assert a.on_stream([row(10)]).needs_gap_fill


def test_confirmation_is_due_after_the_grace_period() -> None:
    """An illiquid market that does not roll over is confirmed by REST after close + grace."""
    a = CandleAssembler(SYMBOL, "5m", T0)
    grace = timedelta(seconds=5)
    assert a.due_for_confirmation(T0 + timedelta(minutes=10), grace) is None
    assert a.due_for_confirmation(T0 + timedelta(minutes=10, seconds=5), grace) == T0 + timedelta(
        minutes=5
    )


def test_invalid_rows_are_rejected_with_a_reason() -> None:
    """A NaN price or an unaligned timestamp is rejected, not emitted."""
    a = CandleAssembler(SYMBOL, "5m", None)
    bad = [datetime_to_ms(T0) + 1, 1, 1, 1, 1, 1]
    nan = [datetime_to_ms(T0), float("nan"), 1, 1, 1, 1]
    out = a.on_rest([bad, nan], T0 + timedelta(hours=1))
    assert out.closed == []
    assert len(out.rejected) == 2


@given(
    events=st.lists(
        st.one_of(
            st.tuples(st.just("ws"), st.integers(0, 30)),
            st.tuples(st.just("rest"), st.integers(0, 30)),
            st.tuples(st.just("drop"), st.just(0)),
        ),
        max_size=60,
    )
)
def test_any_interleaving_emits_each_candle_at_most_once_in_order(
    events: list[tuple[str, int]],
) -> None:
    """Whatever mix of stream updates, drops and REST pages arrives, emission is in order."""
    a = CandleAssembler(SYMBOL, "5m", None)
    emitted: list[int] = []
    latest = 0
    for kind, i in events:
        latest = max(latest, i)
        if kind == "ws":
            out = a.on_stream([row(latest)])
            assert out.gaps == []  # only REST may say the exchange lacks candles
        elif kind == "rest":
            now = T0 + timedelta(minutes=5 * latest + 1)
            out = a.on_rest([row(k) for k in range(max(0, latest - 5), latest + 1)], now)
        else:
            a.stream_lost()
            continue
        emitted.extend(times(out.closed))
    assert emitted == sorted(set(emitted))
    assert all(k < latest for k in emitted)  # the forming candle is never emitted
