"""The ML directional manager: pure decisions from prediction and position (cycle step 4).

:func:`decide` is the whole strategy; :mod:`sizing` and :mod:`exits` hold its arithmetic.
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
