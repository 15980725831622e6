"""The simulated market of one asset: prices at any market time, the intra-candle path, klines.

Inside each base bar the price walks a fixed path — open → the nearer extreme (at ⅓ of the bar)
→ the other extreme (at ⅔) → close (at the end) — linearly between those points. Between bars
whose close and next open differ, and across missing bars, the price jumps. So the price at any
market time is a pure function of the source and that time, conditional orders trigger exactly
where the path crosses them, and a forming candle grows the way a real one would.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

import numpy as np

from tbotd.sim.sources import Bars, CandleSource

_LOOKBACK_MS = 30 * 86_400_000  # how far back a gap looks for the last known close


@dataclass(frozen=True, slots=True)
class Bar:
    """One base bar with Decimal prices."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle of some interval, possibly still forming (``closed`` is False)."""

    open_ms: int
    close_ms: int  # last millisecond of the candle, as Binance reports it
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool


@dataclass(frozen=True, slots=True)
class Waypoint:
    """A point of the price path; ``jump`` means the price got there discontinuously."""

    time_ms: int
    price: Decimal
    jump: bool = False


class MarketData:
    """Prices of one asset over market time, from a :class:`CandleSource`."""

    def __init__(self, source: CandleSource) -> None:
        self.source = source
        self.base_ms = source.base_ms
        self._bars: OrderedDict[int, Bar | None] = OrderedDict()

    # -- bars ---------------------------------------------------------------------------------

    def _bar(self, bars: Bars, i: int) -> Bar:
        p, v = self.source.price_exp, self.source.volume_exp
        return Bar(
            int(bars.times[i]),
            Decimal(int(bars.open[i])).scaleb(-p),
            Decimal(int(bars.high[i])).scaleb(-p),
            Decimal(int(bars.low[i])).scaleb(-p),
            Decimal(int(bars.close[i])).scaleb(-p),
            Decimal(int(bars.volume[i])).scaleb(-v),
        )

    def bar_at(self, open_ms: int) -> Bar | None:
        """The base bar opening at ``open_ms``, or None in a gap."""
        if open_ms in self._bars:
            self._bars.move_to_end(open_ms)
            return self._bars[open_ms]
        bars = self.source.window(open_ms, open_ms + 1)
        bar = self._bar(bars, 0) if len(bars) else None
        self._bars[open_ms] = bar
        if len(self._bars) > 4096:
            self._bars.popitem(last=False)
        return bar

    def bars(self, start_ms: int, end_ms: int) -> list[Bar]:
        """Base bars opening in ``[start_ms, end_ms)``."""
        window = self.source.window(start_ms, end_ms)
        return [self._bar(window, i) for i in range(len(window))]

    def floor(self, t_ms: int) -> int:
        """Open time of the base bar containing ``t_ms``."""
        return t_ms - t_ms % self.base_ms

    def _last_close_before(self, t_ms: int) -> Decimal:
        window = self.source.window(t_ms - _LOOKBACK_MS, t_ms)
        if len(window):
            return self._bar(window, len(window) - 1).close
        first = self.source.window(self.source.first_ms, self.source.first_ms + 1)
        return self._bar(first, 0).open

    # -- the path -----------------------------------------------------------------------------

    def points(self, bar: Bar) -> list[Waypoint]:
        """The bar's path: open, nearer extreme, other extreme, close."""
        near_high = bar.high - bar.open <= bar.open - bar.low
        first, second = (bar.high, bar.low) if near_high else (bar.low, bar.high)
        third = self.base_ms // 3
        return [
            Waypoint(bar.open_ms, bar.open),
            Waypoint(bar.open_ms + third, first),
            Waypoint(bar.open_ms + 2 * third, second),
            Waypoint(bar.open_ms + self.base_ms, bar.close),
        ]

    def price_at(self, t_ms: int) -> Decimal:
        """The traded (and mark) price at market time ``t_ms``."""
        bar = self.bar_at(self.floor(t_ms))
        if bar is None:
            return self._last_close_before(t_ms)
        return _interpolate(self.points(bar), t_ms)

    def path(self, t0_ms: int, t1_ms: int) -> list[Waypoint]:
        """Waypoints of the price path in ``(t0, t1]``, in time order, ending at ``t1``."""
        out: list[Waypoint] = []
        previous = self.price_at(t0_ms)
        for bar in self.bars(self.floor(t0_ms), t1_ms + 1):
            points = self.points(bar)
            if points[0].time_ms > t0_ms and bar.open != previous:
                out.append(Waypoint(bar.open_ms, bar.open, jump=True))
            out.extend(p for p in points[1:] if t0_ms < p.time_ms <= t1_ms)
            previous = bar.close
        end_price = self.price_at(t1_ms)
        if not out or out[-1].time_ms != t1_ms or out[-1].price != end_price:
            jump = bool(out) and out[-1].time_ms == t1_ms
            out.append(Waypoint(t1_ms, end_price, jump=jump))
        return out

    def partial(self, bar: Bar, t_ms: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(high, low, close, volume) of ``bar`` as seen at ``t_ms`` inside it."""
        points = self.points(bar)
        seen = [p.price for p in points if p.time_ms <= t_ms]
        close = _interpolate(points, t_ms)
        seen.append(close)
        fraction = Decimal(t_ms - bar.open_ms) / Decimal(self.base_ms)
        return max(seen), min(seen), close, (bar.volume * fraction).quantize(Decimal("0.001"))

    # -- klines -------------------------------------------------------------------------------

    def klines(
        self,
        interval_ms: int,
        now_ms: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Kline]:
        """Candles of ``interval_ms`` (a multiple of the base) as Binance's klines returns them.

        ``start_ms``/``end_ms`` bound the open time (inclusive); with neither, the latest
        ``limit`` candles. Never a candle that opens after ``now_ms``; the last may be forming.
        """
        last_open = now_ms - now_ms % interval_ms
        if end_ms is not None:
            last_open = min(last_open, end_ms - end_ms % interval_ms)
        if start_ms is not None:
            first_open = -(-start_ms // interval_ms) * interval_ms
            last_open = min(last_open, first_open + (limit - 1) * interval_ms)
        else:
            first_open = last_open - (limit - 1) * interval_ms
        if last_open < first_open:
            return []
        window = self.source.window(first_open, min(last_open + interval_ms, now_ms + 1))
        return self._aggregate(window, interval_ms, now_ms)

    def candle(self, interval_ms: int, open_ms: int, now_ms: int) -> Kline | None:
        """The candle opening at ``open_ms`` as seen at ``now_ms`` (None in a gap)."""
        window = self.source.window(open_ms, min(open_ms + interval_ms, now_ms + 1))
        rows = self._aggregate(window, interval_ms, now_ms)
        return rows[0] if rows else None

    def _aggregate(self, window: Bars, interval_ms: int, now_ms: int) -> list[Kline]:
        if not len(window):
            return []
        p_exp, v_exp = self.source.price_exp, self.source.volume_exp
        group = (window.times - window.times % interval_ms).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(group)] - 1
        highs = np.maximum.reduceat(window.high, starts)
        lows = np.minimum.reduceat(window.low, starts)
        volumes = np.add.reduceat(window.volume, starts)
        out: list[Kline] = []
        for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            open_ms = int(group[s])
            high = Decimal(int(highs[k])).scaleb(-p_exp)
            low = Decimal(int(lows[k])).scaleb(-p_exp)
            close = Decimal(int(window.close[e])).scaleb(-p_exp)
            volume = Decimal(int(volumes[k])).scaleb(-v_exp)
            last_bar_open = int(window.times[e])
            if last_bar_open + self.base_ms > now_ms:  # the forming base bar: only what was seen
                bar = self._bar(window, e)
                p_high, p_low, close, p_volume = self.partial(bar, now_ms)
                if s == e:
                    high, low = p_high, p_low
                else:
                    high = max(Decimal(int(window.high[s:e].max())).scaleb(-p_exp), p_high)
                    low = min(Decimal(int(window.low[s:e].min())).scaleb(-p_exp), p_low)
                volume = volume - bar.volume + p_volume
            out.append(
                Kline(
                    open_ms=open_ms,
                    close_ms=open_ms + interval_ms - 1,
                    open=Decimal(int(window.open[s])).scaleb(-p_exp),
                    high=high,
                    low=low,
                    close=close,
                    volume=volume,
                    closed=open_ms + interval_ms <= now_ms,
                )
            )
        return out


def _interpolate(points: list[Waypoint], t_ms: int) -> Decimal:
    """The price on a bar's path at ``t_ms`` (linear between waypoints)."""
    for a, b in pairwise(points):
        if a.time_ms <= t_ms < b.time_ms:
            fraction = Decimal(t_ms - a.time_ms) / Decimal(b.time_ms - a.time_ms)
            return a.price + (b.price - a.price) * fraction
    return points[-1].price
