"""Every symbol's order before any symbol's bookkeeping, within one cycle's execution.

The cycle sends each symbol's orders from its own task. Fetching an entry's fills and writing
the position and events are bookkeeping: nothing protects a position or opens one. So once a
symbol's orders are answered and its protection is placed, its bookkeeping waits (bounded) until
every other symbol of the round has got as far, or has nothing to send: the last symbol's entry
is never queued behind the first symbol's fills request on the shared connection and loop.

The round travels in a context variable (each task of the cycle inherits it), so the broker
protocol is unchanged and a broker called outside a cycle (start-up, reconciliation, tests)
simply has no round and never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

# a symbol's bookkeeping never waits longer than this for the others (a symbol stuck behind
# a rate limit or a held lock must not hold every other symbol's records back for long)
WAIT_CAP_S = 1.0


class OrderRound:
    """The symbols of one cycle that have not yet sent their orders."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self._pending = set(symbols)
        self._out = asyncio.Event()
        if not self._pending:
            self._out.set()

    def sent(self, symbol: str) -> None:
        """``symbol`` has sent its orders (or has none to send)."""
        self._pending.discard(symbol)
        if not self._pending:
            self._out.set()

    def release(self) -> None:
        """The round is over: nobody waits any more."""
        self._pending.clear()
        self._out.set()

    async def wait(self, cap_s: float = WAIT_CAP_S) -> None:
        """Until every symbol has sent its orders, at most ``cap_s`` wall seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._out.wait(), cap_s)


_ROUND: ContextVar[OrderRound | None] = ContextVar("order_round", default=None)


@contextlib.contextmanager
def order_round(symbols: Iterable[str]) -> Iterator[OrderRound]:
    """Open a round for ``symbols``: tasks created inside inherit it."""
    current = OrderRound(symbols)
    token = _ROUND.set(current)
    try:
        yield current
    finally:
        current.release()
        _ROUND.reset(token)


def orders_sent(symbol: str) -> None:
    """Say that ``symbol``'s orders are out (no-op outside a round)."""
    current = _ROUND.get()
    if current is not None:
        current.sent(symbol)


async def before_bookkeeping(symbol: str) -> None:
    """``symbol``'s orders are out; wait for the other symbols' before booking (bounded)."""
    current = _ROUND.get()
    if current is not None:
        current.sent(symbol)
        await current.wait()
