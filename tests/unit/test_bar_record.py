"""The per-bar record: runs of states filled into arrays equal writing every bar at once."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tbotd.backtest.bars import BarRecord, BarState

N = 40
STATES = [BarState(100.0), BarState(99.5, 1, 0.25, 27_000.5), BarState(98.0, -1, 0.5, 26_999.0)]
writes = st.lists(
    st.tuples(st.integers(0, N), st.integers(0, N), st.integers(0, len(STATES) - 1)), max_size=30
)


def _immediate(spans: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    balance, sign = np.full(N, np.nan), np.zeros(N, dtype=np.int8)
    qty, entry = np.zeros(N), np.zeros(N)
    for start, stop, k in spans:
        state = STATES[k]
        s = slice(start, stop)
        balance[s], sign[s], qty[s], entry[s] = state.balance, state.sign, state.qty, state.entry
    return balance, sign, qty, entry


def _check(spans: list[tuple[int, int, int]]) -> None:
    record = BarRecord(N)
    for start, stop, k in spans:
        record.write(start, stop, STATES[k])
    balance, sign, qty, entry = record.arrays()
    want_balance, want_sign, want_qty, want_entry = _immediate(spans)
    written = ~np.isnan(want_balance)
    assert np.array_equal(balance[written], want_balance[written])
    assert np.array_equal(sign, want_sign)
    assert np.array_equal(qty, want_qty)
    assert np.array_equal(entry, want_entry)


@given(writes)
def test_any_writes_leave_what_writing_each_bar_at_once_leaves(
    spans: list[tuple[int, int, int]],
) -> None:
    """Overlapping, out-of-order or empty writes: the later write wins, bar for bar."""
    _check(spans)


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 3), st.integers(0, 2)), max_size=20))
def test_writes_in_bar_order_leave_what_writing_each_bar_at_once_leaves(
    steps: list[tuple[int, int, int]],
) -> None:
    """The simulators' way (each write starts where the last began or later, and ends no
    earlier), including a last write over the final bar: the same arrays."""
    spans, start, stop = [], 0, 0
    for width, advance, k in steps:
        start = min(start + advance, N)
        stop = min(max(stop, start + width), N)
        spans.append((start, stop, k))
    _check(spans)
