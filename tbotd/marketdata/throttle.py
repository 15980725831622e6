"""Spacing out the gap fills a symbol asks for while it is behind (pure; the feed drives it).

While a hole is open the stream asks for a gap fill on every update (Binance pushes one every
250 ms) and the confirmation timer on every tick. If REST keeps failing, or has not served the
missing candle yet, each ask is another 1000-row klines request: a few symbols could spend the
venue's request weight (429, then a 418 IP ban, and a banned daemon cannot manage its stops).
So after a fill that leaves the symbol behind, the next asked-for one waits a growing interval.

The spacing is tied to what the symbol is behind on (the next candle it needs): once that
changes, however it changed (a fill, the stream's own roll-over), the stretch is over and the
spacing starts afresh, so an old stretch cannot delay a later candle. And the first fill asked
after each bar boundary runs at once: the just-closed candle, which the cycle waits for, is
never held back by a spacing earned before it closed (its retries start again from the
shortest wait).

A venue's ``Retry-After`` is not read today (``execution/venue.py::translate`` does not set
``RateLimitedError.retry_after_s``): a 429 is spaced like any other failed fill.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from tbotd.ops.retry import Backoff


@dataclass(slots=True)
class FillThrottle:
    """When one symbol's next asked-for gap fill may run. Instants are seconds of a monotonic
    clock: real elapsed seconds, not the time of day (which can step and stall a wait)."""

    policy: Backoff  # its ceilings, without jitter, are the waits: a floor on the spacing
    misses: int = 0  # fills in a row that left the symbol behind on the same candle
    not_before: float = -math.inf
    said: bool = False  # this stretch has been logged (once, not per update)
    running: int = 0  # fills for the symbol in flight: an asked-for one skips while any runs
    behind_on: datetime | None = None  # the candle the symbol needed when the stretch began
    bar: int | None = None  # the bar boundary the last fill started in

    def due(self, now: float, behind_on: datetime | None, bar: int) -> bool:
        """Whether an asked-for fill may run at monotonic instant ``now``, the symbol needing
        ``behind_on`` in bar ``bar``: not while one runs; at once when it needs another candle
        than the stretch began on, or after a bar boundary (the just-closed candle); else
        once the spacing has passed."""
        if self.running:
            return False  # the fill under way fetches the same candles
        if self._track(behind_on):
            return True
        return bar != self.bar or now >= self.not_before

    @contextmanager
    def fill(self, bar: int) -> Iterator[None]:
        """Count a fill in flight for its duration (uncounted even if it is cancelled). The first
        in a new bar also restarts the spacing from its shortest wait: the spacing earned before
        the close must not hold back the retries of the candle the cycle now waits for."""
        if bar != self.bar:
            self.misses = 0  # (the stretch goes on: logged once, not again)
        self.running += 1
        self.bar = bar
        try:
            yield
        finally:
            self.running -= 1

    def missed(
        self, now: float, wall_s: Callable[[float], float], behind_on: datetime | None
    ) -> None:
        """A fill left the symbol behind on ``behind_on``: the next waits the policy's next
        ceiling (seconds of the feed's clock, as ``retry`` takes them, turned to wall seconds
        by ``wall_s``: an accelerated run spaces by its own candles). A fill that brought some
        candles but not all starts a new stretch on the next one, from the shortest wait."""
        self._track(behind_on)
        self.not_before = now + wall_s(self.policy.ceiling(self.misses))
        self.misses += 1

    def first_wait(self) -> bool:
        """True once per stretch: the first ask held back (the feed logs it then)."""
        first, self.said = not self.said, True
        return first

    def caught_up(self) -> bool:
        """The stretch is over: clear the spacing. True if the stretch had been logged."""
        said = self.said
        self.misses, self.not_before, self.said, self.behind_on = 0, -math.inf, False, None
        return said

    def _track(self, behind_on: datetime | None) -> bool:
        """A new stretch if the symbol now needs another candle than this one began on
        (something brought that one: a fill, the stream's roll-over). True if so."""
        if behind_on == self.behind_on:
            return False
        self.caught_up()
        self.behind_on = behind_on
        return True
