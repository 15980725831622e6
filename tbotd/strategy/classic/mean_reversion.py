"""Mean reversion: Bollinger bands and RSI (README: Strategies).

A close below the lower band while RSI is oversold is a long setup, above the upper band while
overbought a short one. Confidence grows with how far the close is beyond the band (in band
widths) and how far RSI is beyond its level: ``0.5 + 0.25 × min(1, band excess) + 0.25 ×
min(1, RSI excess)``, so a bare touch is 0.5 and a close a full band width beyond the band with
RSI at 0 (or 100) is 1. With ``exit_at_middle_band``, the bar whose close crosses the middle band
(the mean the trade expected) is a flat signal at confidence 1. Anything else: no setup
(abstain); any indicator still warming up: abstain with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib
from talib import stream

from tbotd.domain.actions import Reason
from tbotd.strategy.classic.base import Values, bars_to_open
from tbotd.strategy.kinds import ClassicName
from tbotd.strategy.signal import ABSTAIN, BIT, FLAT, LONG, SHORT, Floats, Opinions

OUTPUTS = ("close", "upper", "middle", "lower", "rsi")


@dataclass(frozen=True, slots=True)
class MeanReversionParams:
    """``strategy.classic`` for ``name = "mean_reversion"``."""

    bollinger_window_bars: int = 20
    bollinger_width_sd: float = 2.0
    rsi_window_bars: int = 14
    rsi_oversold: float = 30.0
    rsi_overbought: float = 70.0
    exit_at_middle_band: bool = True


class _Streams:
    def __init__(self, bands: stream.BBANDS, rsi: stream.RSI) -> None:
        self._bands, self._rsi = bands, rsi

    def update(self, high: float, low: float, close: float) -> dict[str, float]:  # noqa: ARG002
        upper, middle, lower = self._bands.update(close)
        return {
            "close": close,
            "upper": upper,
            "middle": middle,
            "lower": lower,
            "rsi": self._rsi.update(close),
        }


class MeanReversion:
    """Bollinger bands + RSI, confidence from how far both are beyond their levels."""

    name = ClassicName.MEAN_REVERSION
    outputs = OUTPUTS
    previous = ("close", "middle")

    def __init__(self, params: MeanReversionParams) -> None:
        self.params = params
        width = params.bollinger_width_sd
        self.bars_to_open = max(
            bars_to_open(
                "BBANDS", timeperiod=params.bollinger_window_bars, nbdevup=width, nbdevdn=width
            ),
            bars_to_open("RSI", timeperiod=params.rsi_window_bars),
        )

    def batch(self, high: Floats, low: Floats, close: Floats) -> dict[str, Floats]:  # noqa: ARG002
        """Bands and RSI over the whole history (TA-Lib's Function API)."""
        p = self.params
        width = p.bollinger_width_sd
        upper, middle, lower = talib.BBANDS(close, p.bollinger_window_bars, width, width)
        rsi = talib.RSI(close, timeperiod=p.rsi_window_bars)
        return {"close": close, "upper": upper, "middle": middle, "lower": lower, "rsi": rsi}

    def open(
        self,
        high: Floats,  # noqa: ARG002
        low: Floats,  # noqa: ARG002
        close: Floats,
    ) -> tuple[_Streams, dict[str, Floats]]:
        """Streams at the last bar of the history (TA-Lib's Streaming API), and the series."""
        p = self.params
        width = p.bollinger_width_sd
        bands, (upper, middle, lower) = stream.BBANDS.open_and_fill(
            close, p.bollinger_window_bars, width, width
        )
        rsi, rsi_values = stream.RSI.open_and_fill(close, timeperiod=p.rsi_window_bars)
        series = {"close": close, "upper": upper, "middle": middle, "lower": lower}
        return _Streams(bands, rsi), series | {"rsi": rsi_values}

    def rule(self, values: Values) -> Opinions:
        """Setups beyond the bands with RSI agreeing; the middle-band crossing as the exit."""
        p = self.params
        close, upper, middle, lower, rsi = (values[k] for k in OUTPUTS)
        prev_close, prev_middle = values["prev_close"], values["prev_middle"]
        n = len(close)
        ready = np.isfinite(np.stack([upper, middle, lower, rsi, prev_close, prev_middle])).all(
            axis=0
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            width = middle - lower
            long_ = ready & (close < lower) & (rsi < p.rsi_oversold)
            short = ready & (close > upper) & (rsi > p.rsi_overbought)
            beyond = np.where(long_, lower - close, close - upper)
            band = np.where(width > 0, beyond / np.where(width > 0, width, 1.0), 1.0)
            rsi_excess = np.where(
                long_,
                (p.rsi_oversold - rsi) / p.rsi_oversold,
                (rsi - p.rsi_overbought) / (100.0 - p.rsi_overbought),
            )
            strength = 0.5 + 0.25 * np.minimum(band, 1.0) + 0.25 * np.minimum(rsi_excess, 1.0)
            was, now = prev_close - prev_middle, close - middle
            crossed = ready & (((was < 0) & (now >= 0)) | ((was > 0) & (now <= 0)))
        crossed &= p.exit_at_middle_band & ~long_ & ~short
        direction = np.full(n, ABSTAIN, dtype=np.int8)
        direction[long_], direction[short], direction[crossed] = LONG, SHORT, FLAT
        confidence = np.where(long_ | short, strength, np.where(crossed, 1.0, 0.0))
        reasons = np.where(ready, BIT[Reason.NO_SETUP], BIT[Reason.WARMUP])
        reasons = np.where(long_, BIT[Reason.BELOW_LOWER_BAND] | BIT[Reason.RSI_OVERSOLD], reasons)
        reasons = np.where(
            short, BIT[Reason.ABOVE_UPPER_BAND] | BIT[Reason.RSI_OVERBOUGHT], reasons
        )
        reasons = np.where(crossed, BIT[Reason.CROSSED_MIDDLE_BAND], reasons)
        return Opinions(direction, confidence, reasons.astype(np.int64))
