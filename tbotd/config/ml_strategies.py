"""The pure ML kinds' tables (README: Pure ML strategies): ``[strategy.consensus]``,
``[strategy.ml_momentum]`` and ``[strategy.ml_mean_reversion]``.

Kept apart from :mod:`tbotd.config.settings` (which only adds the two kinds to the union): the
kinds ``ml_momentum`` and ``ml_mean_reversion`` read the consensus table and their own; an
``ml_enhanced`` config may carry all three for the pure ML arms of ``tbotd backtest --compare``.
Every default is the design's: a quorum of models answering with confidence above
0.3, 60 % of them agreeing; trending at P(trend) ≥ 0.6 until it falls below 0.5; an extreme call
at 0.7 faded while P(sideways) ≥ 0.5. Levels that cannot work are refused here, so
``check-config`` names them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Share = Annotated[float, Field(ge=0, le=1)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsensusConfig(_Table):
    """``[strategy.consensus]``: which models vote and how many must agree.

    ``min_confidence``: a model votes only above it; ``min_quorum``: at least this many votes,
    else "no quorum"; ``min_agreement``: the share of the votes the winning direction needs, else
    "no consensus" (above one half, so a tie never agrees); ``regime_votes``: whether the regime
    model votes (trend down short, sideways flat, trend up long). The price model votes long or
    short only when its expected return exceeds the round trip's costs (2 × (taker fee +
    slippage), from ``[execution]``).
    """

    min_confidence: Annotated[float, Field(ge=0, lt=1)] = 0.3
    min_quorum: Annotated[int, Field(ge=1, le=3)] = 2
    min_agreement: Annotated[float, Field(gt=0.5, le=1)] = 0.6
    regime_votes: bool = True


class MLMomentumTable(_Table):
    """``[strategy.ml_momentum]``: the trending gate opens at P(trend_up) + P(trend_down) ≥
    ``enter_trend`` and closes below ``exit_trend`` (hysteresis: ``exit_trend`` ≤
    ``enter_trend``; equal levels mean none)."""

    enter_trend: Share = 0.6
    exit_trend: Share = 0.5

    @model_validator(mode="after")
    def _hysteresis(self) -> MLMomentumTable:
        if self.exit_trend > self.enter_trend:
            raise ValueError(
                f"exit_trend ({self.exit_trend}) must not be above enter_trend ({self.enter_trend})"
            )
        return self


class MLMeanReversionTable(_Table):
    """``[strategy.ml_mean_reversion]``: fade max(P(down), P(up)) ≥ ``extreme_probability``
    (above one half: only one side can be extreme) while P(sideways) ≥ ``min_sideways``."""

    extreme_probability: Annotated[float, Field(gt=0.5, le=1)] = 0.7
    min_sideways: Share = 0.5


class PureMLTables(_Table):
    """The three tables, each optional (its defaults when absent)."""

    consensus: ConsensusConfig = ConsensusConfig()
    ml_momentum: MLMomentumTable = MLMomentumTable()
    ml_mean_reversion: MLMeanReversionTable = MLMeanReversionTable()
