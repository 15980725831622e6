"""The ML directional manager (README: Strategies): the ``ml_directional`` kind as one function.

:func:`decide` is the position rules (:mod:`tbotd.strategy.rules`) acting on the ML prediction
alone — what :class:`~tbotd.strategy.strategy.Strategy` does for ``kind = "ml_directional"``,
kept as a function for callers and tests that have a prediction and no strategy object.
"""

from __future__ import annotations

from tbotd.domain.actions import Action
from tbotd.strategy.ml_opinion import MLInputs, ml_opinions
from tbotd.strategy.rules import ENTRY_WINDOW, DecisionInput, ManagerConfig, decide_vote
from tbotd.strategy.signal import SignalSeries

__all__ = ["ENTRY_WINDOW", "DecisionInput", "ManagerConfig", "decide"]


def decide(inp: DecisionInput, cfg: ManagerConfig) -> list[Action]:
    """The actions for one symbol from its prediction: open, close, flip, move stops, or hold."""
    ml = MLInputs.of(inp.prediction)
    opinion = ml_opinions(ml)
    return decide_vote(inp, SignalSeries(opinion, ml.exits).vote(0), cfg)
