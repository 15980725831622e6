"""Strategies: pure decisions from a signal and the position (cycle step 4, README: Strategies).

A strategy is a signal source (:mod:`ml_opinion`, :mod:`classic`, the enhancement layer in
:mod:`enhance`) plus the position rules every kind shares (:mod:`rules`); :mod:`strategy` puts
them together and :mod:`build` makes one from the config (the only module here that reads it).
:func:`decide` is the ML directional kind as one function; :mod:`sizing` and :mod:`exits` hold
the arithmetic. This package's ``__init__`` stays light: the config imports its enums.
"""

from tbotd.strategy.exits import ExitParams, Protection, plan_exits, protective_prices
from tbotd.strategy.manager import DecisionInput, ManagerConfig, decide
from tbotd.strategy.sizing import Size, position_size

__all__ = [
    "DecisionInput",
    "ExitParams",
    "ManagerConfig",
    "Protection",
    "Size",
    "decide",
    "plan_exits",
    "position_size",
    "protective_prices",
]
