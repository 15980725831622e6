"""The sim's two clocks.

* The **market clock** is simulated time: candle boundaries, klines, ``serverTime`` of
  ``/fapi/v1/time``, event, order, fill and funding times. It starts at ``--start`` and either
  replays — market time advances by elapsed wall time × ``speed`` — or is **manual**: only
  :meth:`SimExchange.advance` moves it, so tests never sleep.
* The **wall clock** is real time: request ``timestamp``/``recvWindow`` checks (ccxt stamps its
  requests with its own local time), websocket keep-alives and listen-key expiry.

Real Binance has one clock; the sim has two because it replays history faster than real time.
A client must therefore not sign requests with market time (ccxt's ``load_time_difference`` /
``adjustForTimeDifference`` would do that): read market time from ``fetch_time()`` instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class WallClock(Protocol):
    """Real time, injectable so signature-window tests need no sleeping."""

    def now_ms(self) -> int:
        """Epoch milliseconds now."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemWallClock:
    """The machine's clock."""

    def now_ms(self) -> int:
        """Epoch milliseconds now."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


@dataclass
class MarketClock:
    """Simulated time. ``now_ms`` is how far the exchange has processed the market.

    In replay mode :meth:`target_ms` says where market time should be now (elapsed wall time ×
    ``speed`` since the anchor); the exchange catches up to it before answering anything. In
    manual mode the target only moves when test code advances it.
    """

    start_ms: int
    speed: float = 1.0
    manual: bool = False
    wall: WallClock = field(default_factory=SystemWallClock)
    now_ms: int = -1

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        self.now_ms = self.start_ms
        self._anchor_market = self.start_ms
        self._anchor_wall = self.wall.monotonic()
        self._paused = self.manual

    @property
    def running(self) -> bool:
        """True when market time follows the wall clock (replay mode, not paused)."""
        return not self._paused

    def target_ms(self) -> int:
        """Where market time should be now."""
        if self._paused:
            return self.now_ms
        elapsed = self.wall.monotonic() - self._anchor_wall
        return max(self.now_ms, self._anchor_market + int(elapsed * 1000 * self.speed))

    def pause(self) -> None:
        """Stop following the wall clock (market time stays where it is)."""
        self._paused = True

    def resume(self, speed: float | None = None) -> None:
        """Follow the wall clock again from the current market time."""
        if speed is not None:
            if speed <= 0:
                raise ValueError(f"speed must be positive, got {speed}")
            self.speed = speed
        self._anchor_market = self.now_ms
        self._anchor_wall = self.wall.monotonic()
        self._paused = False
