"""Model consensus (README: Pure ML strategies): who votes, what a quorum is, when models agree."""

from __future__ import annotations

import math

import numpy as np

from tbotd.domain.actions import Reason
from tbotd.strategy.consensus import ConsensusParams, consensus, normal_cdf, price_vote
from tbotd.strategy.model_inputs import ModelArrays
from tbotd.strategy.signal import ABSTAIN, FLAT, LONG, SHORT, reasons_of

NAN3 = (math.nan, math.nan, math.nan)


def models(
    direction: tuple[float, float, float] = NAN3,
    ret: float = math.nan,
    sd: float = math.nan,
    regime: tuple[float, float, float] = NAN3,
) -> ModelArrays:
    return ModelArrays(
        np.array([direction], dtype=float),
        np.array([ret]),
        np.array([sd]),
        np.array([regime], dtype=float),
    )


def said(m: ModelArrays, **params: object) -> tuple[int, int, tuple[Reason, ...]]:
    c = consensus(m, ConsensusParams(**params))  # type: ignore[arg-type]
    return int(c.direction[0]), int(c.quorum[0]), reasons_of(int(c.reasons[0]))


UP = (0.1, 0.2, 0.7)
DOWN = (0.7, 0.2, 0.1)
TREND_UP = (0.1, 0.2, 0.7)
SIDEWAYS = (0.2, 0.6, 0.2)


def test_agreeing_models_reach_consensus_on_their_direction() -> None:
    """Direction up, the price model's return above the fee band, the regime trending up: all
    three vote long, so the consensus is long."""
    m = models(UP, 0.004, 0.003, TREND_UP)
    assert said(m, fee_band=0.001) == (LONG, 3, (Reason.CONSENSUS,))


def test_no_quorum_and_no_consensus_are_different_reasons() -> None:
    """One confident model is no quorum; two confident models that disagree are a quorum without
    consensus."""
    assert said(models(UP)) == (ABSTAIN, 1, (Reason.NO_QUORUM,))
    assert said(models(UP, regime=(0.7, 0.2, 0.1))) == (ABSTAIN, 2, (Reason.NO_CONSENSUS,))


def test_missing_models_shrink_the_quorum_and_are_never_filled_in() -> None:
    """No answers at all: no quorum, zero votes — not a neutral vote of any kind."""
    assert said(models()) == (ABSTAIN, 0, (Reason.NO_QUORUM,))
    assert said(models(UP, regime=TREND_UP)) == (LONG, 2, (Reason.CONSENSUS,))


def test_unsure_models_do_not_vote() -> None:
    """A model whose confidence is at or below min_confidence stays out of the quorum."""
    unsure = (0.3, 0.4, 0.3)
    assert said(models(UP, regime=unsure), min_confidence=0.4) == (ABSTAIN, 1, (Reason.NO_QUORUM,))
    assert said(models(UP, regime=unsure), min_confidence=0.3)[2] == (Reason.NO_CONSENSUS,)


def test_sixty_percent_must_agree() -> None:
    """Two of three agreeing is 67 % (consensus at 0.6, none at 0.7); a tie never agrees."""
    m = models(UP, 0.004, 0.003, SIDEWAYS)
    assert said(m, fee_band=0.001)[0] == LONG
    assert said(m, fee_band=0.001, min_agreement=0.7)[2] == (Reason.NO_CONSENSUS,)
    assert said(models(UP, -0.004, 0.003), fee_band=0.001)[2] == (Reason.NO_CONSENSUS,)


def test_the_price_model_votes_by_the_sign_of_its_return_beyond_the_fee_band() -> None:
    """Above the band long, below its negative short, inside it flat; the confidence is the
    Gaussian probability of that class."""
    cls, conf = price_vote(np.array([0.004, -0.004, 0.0005]), np.array([0.002] * 3), 0.001)
    assert cls.tolist() == [LONG, SHORT, FLAT]
    assert math.isclose(conf[0], float(normal_cdf(np.array([1.5]))[0]))
    assert math.isclose(conf[1], conf[0])
    inside = normal_cdf(np.array([0.25])) - normal_cdf(np.array([-0.75]))
    assert math.isclose(conf[2], float(inside[0]))


def test_the_regime_model_can_be_kept_out_of_the_vote() -> None:
    """regime_votes = false: only the direction and price models vote."""
    m = models(UP, regime=TREND_UP)
    assert said(m, regime_votes=False) == (ABSTAIN, 1, (Reason.NO_QUORUM,))


def test_one_bar_and_many_bars_agree() -> None:
    """The rule over a history equals the rule bar by bar (the daemon's length-1 arrays)."""
    rng = np.random.default_rng(3)
    n = 300
    d = rng.dirichlet([1, 1, 1], n)
    r = rng.dirichlet([1, 1, 1], n)
    ret, sd = rng.normal(0, 0.003, n), rng.uniform(0.001, 0.01, n)
    d[rng.random(n) < 0.2] = np.nan
    ret[rng.random(n) < 0.2] = np.nan
    whole = consensus(ModelArrays(d, ret, sd, r), ConsensusParams(fee_band=0.001))
    for i in range(n):
        one = consensus(
            ModelArrays(d[i : i + 1], ret[i : i + 1], sd[i : i + 1], r[i : i + 1]),
            ConsensusParams(fee_band=0.001),
        )
        assert (one.direction[0], one.quorum[0], one.reasons[0]) == (
            whole.direction[i],
            whole.quorum[i],
            whole.reasons[i],
        )
