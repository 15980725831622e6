"""Momentum: an EMA crossover, its strength measured in ATRs (README: Strategies).

While the fast EMA is above the slow one the signal is long, below it short (a stop-and-reverse
system: the position rules flip on the crossing). Confidence is the distance between the two
averages in units of the average true range: ``min(1, |fast − slow| / (full_confidence_atr ×
ATR))``, so a fresh crossing is weak and a spread of ``full_confidence_atr`` ATRs is certain. Equal
averages: no setup; any indicator still warming up: abstain with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib
from talib import stream

from tbotd.domain.actions import Reason
from tbotd.strategy.classic.base import Values, bars_to_open
from tbotd.strategy.kinds import ClassicName
from tbotd.strategy.signal import ABSTAIN, BIT, LONG, SHORT, Floats, Opinions

OUTPUTS = ("fast", "slow", "atr")


@dataclass(frozen=True, slots=True)
class MomentumParams:
    """``strategy.classic`` for ``name = "momentum"``."""

    fast_ema_bars: int = 12
    slow_ema_bars: int = 48
    atr_window_bars: int = 14
    full_confidence_atr: float = 1.0


class _Streams:
    def __init__(self, fast: stream.EMA, slow: stream.EMA, atr: stream.ATR) -> None:
        self._fast, self._slow, self._atr = fast, slow, atr

    def update(self, high: float, low: float, close: float) -> dict[str, float]:
        return {
            "fast": self._fast.update(close),
            "slow": self._slow.update(close),
            "atr": self._atr.update(high, low, close),
        }


class Momentum:
    """EMA crossover; confidence from the spread in ATRs."""

    name = ClassicName.MOMENTUM
    outputs = OUTPUTS
    previous: tuple[str, ...] = ()

    def __init__(self, params: MomentumParams) -> None:
        self.params = params
        self.bars_to_open = max(
            bars_to_open("EMA", timeperiod=params.fast_ema_bars),
            bars_to_open("EMA", timeperiod=params.slow_ema_bars),
            bars_to_open("ATR", timeperiod=params.atr_window_bars),
        )

    def batch(self, high: Floats, low: Floats, close: Floats) -> dict[str, Floats]:
        """Both EMAs and the ATR over the whole history (TA-Lib's Function API)."""
        p = self.params
        return {
            "fast": talib.EMA(close, timeperiod=p.fast_ema_bars),
            "slow": talib.EMA(close, timeperiod=p.slow_ema_bars),
            "atr": talib.ATR(high, low, close, timeperiod=p.atr_window_bars),
        }

    def open(self, high: Floats, low: Floats, close: Floats) -> tuple[_Streams, dict[str, Floats]]:
        """Streams at the last bar of the history (TA-Lib's Streaming API), and the series."""
        p = self.params
        fast, fast_v = stream.EMA.open_and_fill(close, timeperiod=p.fast_ema_bars)
        slow, slow_v = stream.EMA.open_and_fill(close, timeperiod=p.slow_ema_bars)
        atr, atr_v = stream.ATR.open_and_fill(high, low, close, timeperiod=p.atr_window_bars)
        return _Streams(fast, slow, atr), {"fast": fast_v, "slow": slow_v, "atr": atr_v}

    def rule(self, values: Values) -> Opinions:
        """Long above, short below; confidence from the spread in ATRs."""
        fast, slow, atr = (values[k] for k in OUTPUTS)
        ready = np.isfinite(fast) & np.isfinite(slow) & np.isfinite(atr)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = fast - slow
            scale = self.params.full_confidence_atr * atr
            strength = np.where(scale > 0, np.abs(spread) / np.where(scale > 0, scale, 1.0), 1.0)
        up, down = ready & (spread > 0), ready & (spread < 0)
        direction = np.where(up, LONG, np.where(down, SHORT, ABSTAIN)).astype(np.int8)
        confidence = np.where(up | down, np.minimum(strength, 1.0), 0.0)
        reasons = np.where(ready, BIT[Reason.NO_SETUP], BIT[Reason.WARMUP])
        reasons = np.where(up, BIT[Reason.FAST_ABOVE_SLOW], reasons)
        reasons = np.where(down, BIT[Reason.FAST_BELOW_SLOW], reasons)
        return Opinions(direction, confidence, reasons.astype(np.int64))
