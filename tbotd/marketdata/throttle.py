"""Spacing out the gap fills a symbol asks for while its hole stays open (pure; the feed drives it).

While a hole is open the stream asks for a gap fill on every update (Binance pushes one every
250 ms) and the confirmation timer on every tick. If REST keeps failing, or has not served the
hole's candle yet, each ask is another 1000-row klines request: a few symbols could spend the
venue's request weight (429, then a 418 IP ban, and a banned daemon cannot manage its stops).
So after a fill that leaves the symbol behind, the next asked-for one waits a growing interval
on the monotonic clock; a fill that catches up clears it, so the next hole is fetched at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tbotd.ops.retry import Backoff


@dataclass(slots=True)
class FillThrottle:
    """When one symbol's next asked-for gap fill may run, in monotonic (wall) seconds."""

    policy: Backoff  # its ceilings, without jitter, are the waits: a floor on the spacing
    misses: int = 0  # fills in a row that left the symbol behind
    not_before: float = -math.inf
    said: bool = False  # this stretch has been logged (once, not per update)

    def due(self, now: float) -> bool:
        """Whether an asked-for fill may run at monotonic instant ``now``."""
        return now >= self.not_before

    def missed(
        self, now: float, wall_s: Callable[[float], float], retry_after_s: float | None = None
    ) -> float:
        """A fill left the symbol behind: the next waits the policy's next ceiling, or the
        venue's ``Retry-After`` if longer (seconds of the feed's clock, as ``retry`` takes
        them, turned to wall seconds by ``wall_s``: an accelerated run spaces by its own
        candles). Returns the wall wait."""
        wait = wall_s(max(self.policy.ceiling(self.misses), retry_after_s or 0.0))
        self.misses += 1
        self.not_before = now + wait
        return wait

    def caught_up(self) -> bool:
        """The symbol caught up: clear the spacing. True if the stretch had been logged."""
        said = self.said
        self.misses, self.not_before, self.said = 0, -math.inf, False
        return said
