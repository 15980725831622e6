"""The ML enhancement layer is the truth table of the README: every mode × ML agrees / disagrees /
abstains × classic long / short / flat (and no classic setup), with ``ml_weight`` 0.3."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tbotd.domain.actions import Provenance, Reason
from tbotd.strategy.enhance import PROVENANCES, EnhanceParams, enhance
from tbotd.strategy.kinds import EnhanceMode, ReplaceOn
from tbotd.strategy.signal import ABSTAIN, BIT, FLAT, LONG, SHORT, Opinions

L, S, F, A = "long", "short", "flat", "abstain"
CODE = {L: LONG, S: SHORT, F: FLAT, A: ABSTAIN}
B, M = 0.8, 0.9  # classic and ML confidence of every row; a classic flat (its exit) is 1.0


def opposite(side: str) -> str:
    return {L: S, S: L, F: L}[side]


# (mode, classic, ML) → (direction, confidence, provenance); ML "agrees" is the classic side
TABLE = {
    ("boost", L, "agrees"): (L, B * 0.7 + M * 0.3, Provenance.BOOSTED),
    ("boost", L, "disagrees"): (L, B * (1 - 0.15), Provenance.REDUCED),
    ("boost", L, "abstains"): (L, B, Provenance.ML_ABSTAINED),
    ("boost", S, "agrees"): (S, B * 0.7 + M * 0.3, Provenance.BOOSTED),
    ("boost", S, "disagrees"): (S, B * (1 - 0.15), Provenance.REDUCED),
    ("boost", S, "abstains"): (S, B, Provenance.ML_ABSTAINED),
    ("boost", F, "agrees"): (F, 1.0 * 0.7 + M * 0.3, Provenance.BOOSTED),
    ("boost", F, "disagrees"): (F, 1.0 * (1 - 0.15), Provenance.REDUCED),
    ("boost", F, "abstains"): (F, 1.0, Provenance.ML_ABSTAINED),
    ("filter", L, "agrees"): (L, B, Provenance.ML_CONFIRMED),
    ("filter", L, "disagrees"): (A, 0.0, Provenance.VETOED),
    ("filter", L, "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("filter", S, "agrees"): (S, B, Provenance.ML_CONFIRMED),
    ("filter", S, "disagrees"): (A, 0.0, Provenance.VETOED),
    ("filter", S, "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("filter", F, "agrees"): (F, 1.0, Provenance.ML_CONFIRMED),
    ("filter", F, "disagrees"): (A, 0.0, Provenance.VETOED),
    ("filter", F, "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("replace", L, "agrees"): (L, M, Provenance.REPLACED),
    ("replace", L, "disagrees"): (S, M, Provenance.REPLACED),
    ("replace", L, "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("replace", S, "agrees"): (S, M, Provenance.REPLACED),
    ("replace", S, "disagrees"): (L, M, Provenance.REPLACED),
    ("replace", S, "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("replace", F, "agrees"): (F, 1.0, Provenance.CLASSIC_ONLY),  # an exit is not a setup
    ("replace", F, "disagrees"): (F, 1.0, Provenance.CLASSIC_ONLY),
    ("replace", F, "abstains"): (F, 1.0, Provenance.CLASSIC_ONLY),
    ("hybrid", L, "agrees"): (L, 0.7 * B + 0.3 * M, Provenance.BLENDED),
    ("hybrid", L, "disagrees"): (L, 0.7 * B - 0.3 * M, Provenance.BLENDED),
    ("hybrid", L, "abstains"): (L, B, Provenance.ML_ABSTAINED),
    ("hybrid", S, "agrees"): (S, 0.7 * B + 0.3 * M, Provenance.BLENDED),
    ("hybrid", S, "disagrees"): (S, 0.7 * B - 0.3 * M, Provenance.BLENDED),
    ("hybrid", S, "abstains"): (S, B, Provenance.ML_ABSTAINED),
    ("hybrid", F, "agrees"): (F, 0.7 * 1.0 + 0.3 * M, Provenance.BLENDED),
    ("hybrid", F, "disagrees"): (F, 0.7 * 1.0, Provenance.BLENDED),  # flat 0.7 beats long 0.27
    ("hybrid", F, "abstains"): (F, 1.0, Provenance.ML_ABSTAINED),
}
# no classic setup (the classic strategy abstains): nothing to boost, filter or replace
NO_SETUP = {
    ("boost", "long"): (A, 0.0, Provenance.CLASSIC_ONLY),
    ("filter", "long"): (A, 0.0, Provenance.CLASSIC_ONLY),
    ("replace", "long"): (A, 0.0, Provenance.CLASSIC_ONLY),
    ("hybrid", "long"): (L, 0.3 * M, Provenance.BLENDED),  # the classic side counts as 0
    ("hybrid", "abstains"): (A, 0.0, Provenance.ML_ABSTAINED),
    ("boost", "abstains"): (A, 0.0, Provenance.CLASSIC_ONLY),
}


def opinions(rows: list[tuple[str, float]]) -> Opinions:
    return Opinions(
        np.array([CODE[d] for d, _ in rows], dtype=np.int8),
        np.array([c for _, c in rows]),
        np.full(len(rows), BIT[Reason.NO_SETUP], dtype=np.int64),
    )


def ml_of(classic: str, ml: str) -> tuple[str, float]:
    if ml == "abstains":
        return (A, 0.0)
    side = classic if ml == "agrees" else opposite(classic)
    return (side, M)


def check(
    mode: str,
    rows: list[tuple[tuple[str, float], tuple[str, float]]],
    expected: list[tuple[str, float, Provenance]],
    **params: object,
) -> None:
    """Run the rows through the layer at once (as the backtest does) and one by one (as the
    daemon does): both give the expected direction, confidence and provenance."""
    p = EnhanceParams(EnhanceMode(mode), ml_weight=0.3, **params)  # type: ignore[arg-type]
    batch = enhance(opinions([b for b, _ in rows]), opinions([m for _, m in rows]), p)
    for i, (want_dir, want_conf, want_prov) in enumerate(expected):
        one = enhance(opinions([rows[i][0]]), opinions([rows[i][1]]), p)
        for got, k in ((batch, i), (one, 0)):
            direction = int(got.result.direction[k])
            assert direction == CODE[want_dir], (mode, rows[i], direction)
            assert math.isclose(float(got.result.confidence[k]), want_conf, abs_tol=1e-12)
            assert PROVENANCES[int(got.provenance[k])] is want_prov


@pytest.mark.parametrize("mode", ["boost", "filter", "replace", "hybrid"])
def test_each_mode_follows_the_truth_table(mode: str) -> None:
    """Every classic side × ML agrees / disagrees / abstains gives the table's signal."""
    keys = [k for k in TABLE if k[0] == mode]
    rows = [((c, 1.0 if c == F else B), ml_of(c, m)) for _, c, m in keys]
    check(mode, rows, [TABLE[k] for k in keys])


def test_without_a_classic_setup_ml_alone_opens_nothing_except_in_a_hybrid_blend() -> None:
    """The classic strategy abstaining (no setup): boost, filter and replace pass it through;
    hybrid blends it as 0, so ML alone reaches at most ml_weight × its confidence."""
    for (mode, ml), expected in NO_SETUP.items():
        ml_row = (L, M) if ml == "long" else (A, 0.0)
        check(mode, [((A, 0.0), ml_row)], [expected])


def test_ml_abstaining_is_never_a_vote_of_one_half() -> None:
    """Abstaining ML leaves boost and hybrid exactly at the classic confidence (not blended with
    0.5) and blocks filter unless fail_open passes the classic signal."""
    rows = [((L, 0.62), (A, 0.0))]
    check("boost", rows, [(L, 0.62, Provenance.ML_ABSTAINED)])
    check("hybrid", rows, [(L, 0.62, Provenance.ML_ABSTAINED)])
    check("filter", rows, [(A, 0.0, Provenance.ML_ABSTAINED)])
    check("filter", rows, [(L, 0.62, Provenance.ML_ABSTAINED)], fail_open=True)
    check("replace", rows, [(A, 0.0, Provenance.ML_ABSTAINED)])


def test_replace_on_all_bars_lets_ml_stand_in_everywhere() -> None:
    """``replace_on = "all_bars"``: ML's call replaces also exits and bars without a setup;
    abstaining ML there means no trade."""
    rows = [((F, 1.0), (L, M)), ((A, 0.0), (S, M)), ((A, 0.0), (A, 0.0)), ((L, B), (F, M))]
    expected = [
        (L, M, Provenance.REPLACED),
        (S, M, Provenance.REPLACED),
        (A, 0.0, Provenance.ML_ABSTAINED),
        (F, M, Provenance.REPLACED),
    ]
    check("replace", rows, expected, replace_on=ReplaceOn.ALL_BARS)


def test_a_confident_neutral_disagrees_with_a_classic_side() -> None:
    """ML's confident neutral against a classic long: boost reduces it, filter vetoes it,
    replace turns it into a flat signal."""
    rows = [((L, B), (F, M))]
    check("boost", rows, [(L, B * 0.85, Provenance.REDUCED)])
    check("filter", rows, [(A, 0.0, Provenance.VETOED)])
    check("replace", rows, [(F, M, Provenance.REPLACED)])


def test_exits_follow_the_direction_traded() -> None:
    """The result takes ML's exits (its sd or prices) only where it follows ML's direction."""
    p = EnhanceParams(EnhanceMode.REPLACE, ml_weight=0.3)
    done = enhance(opinions([(L, B), (L, B)]), opinions([(S, M), (A, 0.0)]), p)
    assert done.from_ml.tolist() == [True, False]
    p = EnhanceParams(EnhanceMode.BOOST, ml_weight=0.3)
    done = enhance(opinions([(L, B)]), opinions([(L, M)]), p)
    assert done.from_ml.tolist() == [False]
