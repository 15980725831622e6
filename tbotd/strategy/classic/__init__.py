"""Classic rule strategies over indicators of closed candles (README: Strategies).

Each strategy computes its indicators with TA-Lib — over a whole history at once for the
backtest (the Function API) and one closed candle at a time in the daemon (the Streaming API,
O(1) per bar and bit-identical to the Function API for the same bars) — and turns them into
opinions with one rule written over arrays, the same code on both paths.
"""

from tbotd.strategy.classic.base import ClassicStrategy, Tracker, Values, with_previous
from tbotd.strategy.classic.mean_reversion import MeanReversion, MeanReversionParams
from tbotd.strategy.classic.momentum import Momentum, MomentumParams

__all__ = [
    "ClassicStrategy",
    "MeanReversion",
    "MeanReversionParams",
    "Momentum",
    "MomentumParams",
    "Tracker",
    "Values",
    "with_previous",
]
