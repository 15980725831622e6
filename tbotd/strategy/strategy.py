"""A strategy: a signal source and the shared position rules, one object for every path.

:func:`tbotd.strategy.build.build_strategy` makes it from the config; the daemon's cycle, its
reload, the paper cycle of the tests and the backtest all use it:

- the **backtest** asks :meth:`Strategy.series` for every bar's signal at once (indicators in
  batch, the enhancement layer over arrays), then :meth:`Strategy.decide` at the bars where
  something can happen;
- the **daemon** keeps a :class:`Session` (per-symbol indicator streams) and calls
  :meth:`Session.decide` once per symbol and closed candle, which runs the same rule and layer
  over the newest bar and then the same :meth:`Strategy.decide`.

Both produce a :class:`~tbotd.domain.actions.DecisionTrace` per decision: the strategy's name,
the classic signal, the ML opinion, what the layer did (provenance) and the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tbotd.domain.actions import Action, DecisionTrace, Provenance
from tbotd.domain.market import Candle
from tbotd.strategy.classic.base import ClassicStrategy, Tracker, Values, with_previous
from tbotd.strategy.enhance import PROVENANCE_CODE, PROVENANCES, EnhanceParams, enhance
from tbotd.strategy.kinds import SecondaryModel, StrategyKind
from tbotd.strategy.meta_label import MetaLabel, meta_gate
from tbotd.strategy.ml_opinion import MLInputs, ml_opinions
from tbotd.strategy.pure_ml import PureML, pure_series
from tbotd.strategy.rules import DecisionInput, ManagerConfig, decide_vote
from tbotd.strategy.signal import (
    LONG,
    SHORT,
    ExitHints,
    Floats,
    Opinions,
    SignalSeries,
    Vote,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one symbol's decision for one candle did, and why."""

    actions: list[Action]
    trace: DecisionTrace


@dataclass(frozen=True)
class Strategy:
    """``strategy.kind`` made concrete: ``classic`` for the classic kinds, ``enhance`` for
    ``ml_enhanced``, ``pure`` for the pure ML kinds; ``rules`` are the position rules every kind
    shares; ``meta``: the meta-label gate over the classic setups (before the enhancement
    layer, :mod:`tbotd.strategy.meta_label`)."""

    kind: StrategyKind
    rules: ManagerConfig
    classic: ClassicStrategy | None = None
    enhance: EnhanceParams | None = None
    secondary: SecondaryModel = SecondaryModel.NONE
    label: str = ""  # a name of its own (the buy-and-hold arm of --compare)
    pure: PureML | None = None
    meta: MetaLabel | None = None

    @property
    def name(self) -> str:
        """What decisions record as their strategy: ``ml_directional``,
        ``classic:mean_reversion``, ``ml_enhanced:boost:mean_reversion``."""
        if self.label:
            return self.label
        if self.kind is StrategyKind.ML_DIRECTIONAL or self.classic is None:
            return str(self.kind)
        if self.enhance is None:
            return f"{self.kind}:{self.classic.name}"
        return f"{self.kind}:{self.enhance.mode}:{self.classic.name}"

    @property
    def uses_ml(self) -> bool:
        """Whether predictions matter to this strategy at all."""
        return self.kind is not StrategyKind.CLASSIC

    def base(self, high: Floats, low: Floats, close: Floats) -> Opinions | None:
        """The classic signal for every bar of a history (None for ``ml_directional``)."""
        if self.classic is None:
            return None
        values = with_previous(self.classic.batch(high, low, close), self.classic.previous)
        return self.classic.rule(values)

    def series(
        self, high: Floats, low: Floats, close: Floats, ml: MLInputs | None = None
    ) -> SignalSeries:
        """Every bar's signal of a history (the backtest's path)."""
        base = self.base(high, low, close)
        return self.combine(base, ml if ml is not None else MLInputs.none(len(close)))

    def combine(self, base: Opinions | None, ml: MLInputs) -> SignalSeries:
        """The signal the rules act on, from the classic signal and the ML inputs."""
        return self.combine_from(base, ml)[0]

    def combine_from(
        self, base: Opinions | None, ml: MLInputs, trending: bool = False
    ) -> tuple[SignalSeries, bool]:
        """:meth:`combine` from a momentum gate that was ``trending`` before the first bar, and
        the gate after the last one (the only state a signal source carries between bars)."""
        if self.pure is not None:
            return pure_series(ml, self.pure, trending)
        return self._combine(base, ml), trending

    def _combine(self, base: Opinions | None, ml: MLInputs) -> SignalSeries:
        if base is None:  # ml_directional: the model's call is the signal
            opinion = ml_opinions(ml)
            return SignalSeries(opinion, ml.exits, ml=opinion)
        n = len(base)
        if self.meta is not None:  # confirmed or vetoed before anything else sees the setup
            base = meta_gate(base, ml.meta, self.meta.level())
        if self.enhance is None:  # classic: no ML at all
            only = np.full(n, PROVENANCE_CODE[Provenance.CLASSIC_ONLY], dtype=np.int8)
            return SignalSeries(base, ExitHints.none(n), base=base, provenance=only)
        opinion = ml_opinions(ml, self.enhance.confidence_threshold, self.secondary)
        done = enhance(base, opinion, self.enhance)
        exits = ExitHints.none(n).where(done.from_ml, ml.exits)
        return SignalSeries(done.result, exits, base, opinion, done.provenance)

    def trace(self, series: SignalSeries, i: int) -> DecisionTrace:
        """Bar ``i`` of ``series`` as a decision's record."""
        prov = None if series.provenance is None else PROVENANCES[int(series.provenance[i])]
        return DecisionTrace(
            self.name,
            series.result.at(i),
            prov,
            None if series.base is None else series.base.at(i),
            None if series.ml is None else series.ml.at(i),
        )

    def decide(self, inp: DecisionInput, vote: Vote) -> list[Action]:
        """The position rules for one symbol (:func:`~tbotd.strategy.rules.decide_vote`)."""
        return decide_vote(inp, vote, self.rules)

    def session(self) -> Session:
        """Per-symbol state for a daemon running this strategy."""
        return Session(self)


class Session:
    """A strategy in the daemon: the per-symbol indicator streams and momentum gates it keeps
    between cycles (both start afresh on a restart or a reload: the gate closed)."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self._trackers: dict[str, Tracker] = {}
        self._trending: dict[str, bool] = {}

    def values(self, symbol: str, history: Sequence[Candle]) -> Values:
        """The classic strategy's values at the newest candle of ``history`` (streamed)."""
        classic = self.strategy.classic
        if classic is None:
            return {}
        tracker = self._trackers.get(symbol)
        if tracker is None:
            tracker = self._trackers[symbol] = Tracker(classic)
        return tracker.values(history)

    def signal(self, inp: DecisionInput, history: Sequence[Candle]) -> SignalSeries:
        """The signal for the newest candle of ``history`` (a series of length 1)."""
        classic = self.strategy.classic
        base = None if classic is None else classic.rule(self.values(inp.symbol, history))
        before = self._trending.get(inp.symbol, False)
        ml = MLInputs.of(inp.prediction)
        meta = self.strategy.meta
        if meta is not None and base is not None and base.direction[0] in (LONG, SHORT):
            ml = replace(ml, meta=meta.scorer.latest(history))  # asked only for a setup
        series, after = self.strategy.combine_from(base, ml, before)
        self._trending[inp.symbol] = after  # one step of the hysteresis: idempotent per candle
        return series

    def decide(self, inp: DecisionInput, history: Sequence[Candle]) -> Decision:
        """Signal, then the position rules, for one symbol after one closed candle."""
        series = self.signal(inp, history)
        actions = self.strategy.decide(inp, series.vote(0))
        return Decision(actions, self.strategy.trace(series, 0))
