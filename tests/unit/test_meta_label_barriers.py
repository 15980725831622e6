"""Triple-barrier labels of the classic signals: what a trade would have done, after fees, with
the paper fill model's rules, reading no bar beyond its time barrier."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tbotd.domain.enums import MarketType
from tbotd.ml.dataset import build_dataset, plan_folds
from tbotd.ml.labels import LabelSpec
from tbotd.ml.meta.labels import Barriers, Exit, barrier_distances, triple_barrier
from tbotd.strategy.exits import ExitBounds, ExitParams
from tests.synthetic import random_walk

TP_SL = Barriers(0.02, 0.01, 0.02, 0.01, max_hold=3, cost=0.0014)


def label(bars: list[tuple[float, float, float, float]], side: int, b: Barriers = TP_SL):
    """The outcome of a signal on bar 0 of hand-made (open, high, low, close) bars."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*bars, strict=True))
    out = triple_barrier(o, h, lo, c, np.array([0]), np.array([side], np.int8), b)
    return int(out.label[0]), float(out.ret[0]), Exit(int(out.exit[0])), int(out.exit_bar[0])


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_take_profit_first_is_a_win_after_fees() -> None:
    """A long filled at the next open whose target (+2 %) is touched before its stop wins 2 %
    less the round trip's costs."""
    got = label([FLAT, FLAT, (100, 102.5, 99.5, 102), FLAT], side=1)
    assert got[0] == 1
    assert got[2] is Exit.TAKE_PROFIT
    assert got[3] == 2
    assert got[1] == pytest.approx(0.02 - 0.0014)


def test_stop_loss_first_and_a_bar_touching_both_are_losses() -> None:
    """The stop before the target; a bar reaching both counts as the stop (pessimistic, as the
    paper fill model)."""
    assert label([FLAT, FLAT, (100, 100.2, 98.9, 99), FLAT], 1)[:3] == (
        0,
        pytest.approx(-0.01 - 0.0014),
        Exit.STOP_LOSS,
    )
    assert label([FLAT, (100, 103, 98, 100), FLAT, FLAT], 1)[2] is Exit.STOP_LOSS
    short = label([FLAT, FLAT, (100, 101.2, 99.5, 101), FLAT], -1)  # a short's stop is above
    assert short[0] == 0
    assert short[2] is Exit.STOP_LOSS


def test_time_barrier_closes_at_the_last_bar_and_is_not_a_win() -> None:
    """Neither level within max_hold bars: out at that bar's close; even a gain is label 0
    (the trade did not reach its take-profit)."""
    got = label([FLAT, FLAT, FLAT, (100, 101, 99.5, 101)], side=1)
    assert got[0] == 0
    assert got[2] is Exit.TIME
    assert got[3] == 3
    assert got[1] == pytest.approx(0.01 - 0.0014)


def test_a_gap_beyond_the_stop_fills_at_the_open() -> None:
    """A bar opening below a long's stop fills there, not at the stop."""
    got = label([FLAT, FLAT, (97, 98, 96, 97), FLAT], side=1)
    assert got[2] is Exit.STOP_LOSS
    assert got[1] == pytest.approx(-0.03 - 0.0014)


def test_fees_turn_a_marginal_take_profit_into_a_loss() -> None:
    """A take-profit closer than the round trip's costs is hit first but loses money: label 0."""
    tight = Barriers(0.001, 0.01, 0.001, 0.01, max_hold=3, cost=0.0014)
    got = label([FLAT, FLAT, (100, 100.2, 99.9, 100.1), FLAT], 1, tight)
    assert got[2] is Exit.TAKE_PROFIT
    assert got[1] < 0
    assert got[0] == 0
    free = Barriers(0.001, 0.01, 0.001, 0.01, max_hold=3, cost=0.0)
    assert label([FLAT, FLAT, (100, 100.2, 99.9, 100.1), FLAT], 1, free)[0] == 1


def test_barriers_are_the_strategys_clamped_exits_and_break_even() -> None:
    """The distances come from the live TP/SL maths (a stop beyond max_stop is clamped); the
    break-even probability is (stop + cost) / (take + stop)."""
    params = ExitParams(
        Decimal("1.5"), Decimal(2), Decimal(9), Decimal(2), ExitBounds(max_stop=Decimal("0.05"))
    )
    b = barrier_distances(params, MarketType.LINEAR, 48, 0.0014)
    assert (b.take_long, b.stop_long, b.take_short, b.stop_short) == pytest.approx(
        (0.02, 0.05, 0.02, 0.05)
    )
    assert b.break_even() == pytest.approx((0.05 + 0.0014) / 0.07)


def test_labels_read_nothing_beyond_their_time_barrier() -> None:
    """Changing every bar after row + max_hold leaves the row's label and return unchanged
    (prefix invariance), and a signal whose barrier lies beyond the data is refused."""
    f = random_walk(400, seed=5)
    cols = [f[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")]
    rows = np.arange(10, 300, 7)
    sides = np.where(rows % 2 == 0, 1, -1).astype(np.int8)
    b = Barriers(0.004, 0.003, 0.004, 0.003, max_hold=20, cost=0.0014)
    before = triple_barrier(*cols, rows, sides, b)
    cut = int(rows.max()) + b.max_hold + 1
    changed = [np.concatenate([c[:cut], c[cut:] * 1.5]) for c in cols]
    after = triple_barrier(*changed, rows, sides, b)
    assert np.array_equal(before.label, after.label)
    assert np.array_equal(before.ret, after.ret)
    with pytest.raises(ValueError, match="beyond the data"):
        triple_barrier(*cols, np.array([390]), np.array([1], np.int8), b)


def test_the_purge_covers_the_time_barrier() -> None:
    """In the walk-forward plan the meta model uses, every fit and calibration label window
    (row + max_hold) ends before the next slice's first row by at least the feature warm-up."""
    hold = 48
    spec = LabelSpec(horizon=hold, fee_bps=0.0, regime_window=1)
    ds = build_dataset(random_walk(6000, seed=2), spec)
    folds, final = plan_folds(ds, spec, 3, 0.5, 0.2)
    for fold in [*folds, final]:
        assert fold.fit.stop - 1 + hold < fold.cal.start
        if fold.test is not None:
            assert fold.cal.stop - 1 + hold < fold.test.start
