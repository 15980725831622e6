"""A bounded queue that, when full, drops the least severe message first (and says which).

Sends happen off the cycle through these queues: putting never blocks and never fails. When
a target is slow or hanging its queue fills; a new message then replaces the oldest of the
least severe ones queued if it is more severe than they are, and is dropped itself otherwise.
The caller counts what was dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from tbotd.domain.notices import Severity

T = TypeVar("T")


class SeverityQueue(Generic[T]):
    """FIFO of at most ``maxsize`` items; see the module docstring. Event-loop thread only."""

    def __init__(self, maxsize: int, severity_of: Callable[[T], Severity]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._severity_of = severity_of
        self._items: deque[T] = deque()
        self._nonempty = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> T | None:
        """Enqueue ``item``; returns the item dropped to make room (maybe ``item``), or None."""
        dropped: T | None = None
        if len(self._items) >= self.maxsize:
            victim = min(self._items, key=lambda i: self._severity_of(i).rank)  # oldest lowest
            if self._severity_of(victim).rank >= self._severity_of(item).rank:
                return item
            self._items.remove(victim)
            dropped = victim
        self._items.append(item)
        self._nonempty.set()
        self._empty.clear()
        return dropped

    def pop(self) -> T | None:
        """The oldest item, or None when empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if not self._items:
            self._nonempty.clear()
        return item

    def done(self) -> None:
        """The last popped item is handled: :meth:`drained` may return once nothing is left."""
        if not self._items:
            self._empty.set()

    async def wait(self) -> None:
        """Until something is queued."""
        await self._nonempty.wait()

    async def drained(self) -> None:
        """Until everything queued was popped and handled."""
        await self._empty.wait()
