"""The per-close check of the live broker (README: Protection): each symbol judged on the venue's
snapshot by the strict definition of "protected", off the decision's path.

At every close two requests go out at once for all symbols — the open conditional orders (the
stop-fired safety net needs them first) and the positions with leverage, margin mode and
liquidation price. Each symbol's check then waits for both, takes the symbol's lock and judges:
any difference from our books (a hand change, a missing or out-of-bounds stop, another trader's
orders) is reconciled at once; a venue setting that differs from the config is set back. An
entry waits for its symbol's check, so the leverage is verified before every entry; a check
whose snapshot went stale (we traded the symbol since) leaves the judgement to the next close.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tbotd.domain.errors import OutcomeUnknownError, RetryableError
from tbotd.execution.live_recovery import LiveRecovery
from tbotd.execution.protection import VenueOrder, VenuePosition, Verdict, verdict
from tbotd.execution.reconcile import ReportUnknown
from tbotd.execution.venue_answers import SymbolSettings
from tbotd.ops.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The venue's state at one candle close, for every symbol: two requests in flight."""

    conditional: asyncio.Future[list[VenueOrder]]
    account: asyncio.Future[tuple[dict[str, VenuePosition], dict[str, SymbolSettings]]]


async def known(request: asyncio.Future[T]) -> T | None:
    """A snapshot part's answer, or None when the venue could not give it."""
    try:
        return await asyncio.shield(request)
    except (RetryableError, OutcomeUnknownError):
        return None


def _quiet(request: asyncio.Future[T]) -> asyncio.Future[T]:
    """``request``, its failure marked as seen (whoever needs it sees it through :func:`known`;
    a part nobody awaited must not be reported as a lost exception)."""
    request.add_done_callback(lambda f: f.cancelled() or f.exception())
    return request


class CloseChecks(LiveRecovery):
    """The snapshot of each close and the per-symbol checks against it."""

    _symbols: list[str]
    _locks: dict[str, asyncio.Lock]
    _last: tuple[datetime, Snapshot] | None
    _checks: dict[str, asyncio.Task[None]]
    verdicts: dict[str, Verdict]

    def spawn_check(self, symbol: str, snapshot: Snapshot) -> None:
        """Start ``symbol``'s check of this close (unless the last one is still running)."""
        previous = self._checks.get(symbol)
        if previous is None or previous.done():
            self._checks[symbol] = asyncio.create_task(
                self._check(symbol, snapshot, dict(self._activity))
            )

    async def cancel_checks(self) -> None:
        """Stop every check and the snapshot's requests (shutting down)."""
        pending: list[asyncio.Future[Any]] = [*self._checks.values()]
        if self._last is not None:
            pending += [self._last[1].conditional, self._last[1].account]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _check(self, symbol: str, snapshot: Snapshot, activity: dict[str, int]) -> None:
        """Judge ``symbol`` on the close's snapshot; reconcile it when anything differs."""
        try:
            conditional, account = (
                await known(snapshot.conditional),
                await known(snapshot.account),
            )
            if conditional is None or account is None:
                return  # the venue could not say: the next close (or the repair loop) will
            positions, settings = account
            async with self._locks[symbol]:
                if self._activity.get(symbol, 0) != activity.get(symbol, 0):
                    return  # we traded it since the snapshot: stale, the next close judges
                await self._judge(symbol, positions, settings, conditional)
        except Exception as e:  # noqa: BLE001 - a check must never break a cycle or a task
            log.warning("protection check postponed", symbol=symbol, error=repr(e))
            self.repair_soon.set()

    async def _judge(
        self,
        symbol: str,
        positions: dict[str, VenuePosition],
        settings: dict[str, SymbolSettings],
        conditional: list[VenueOrder],
    ) -> None:
        position = positions.get(symbol)
        if position is None:
            self.verdicts.pop(symbol, None)
        else:
            self.verdicts[symbol] = verdict(position, conditional, self.stop_bounds(symbol))
        await self.check_settings(
            symbol, settings.get(symbol, SymbolSettings(None, None)), position is None
        )
        fixes = self.position_fixes([symbol], positions, conditional)
        if any(not isinstance(f, ReportUnknown) for f in fixes):
            log.warning("venue differs at the close; reconciling", symbol=symbol, fixes=len(fixes))
            await self.reconcile_symbols([symbol])

    async def checked(self, symbol: str) -> None:
        """Wait for ``symbol``'s check of the last close (an entry goes after it)."""
        check = self._checks.get(symbol)
        if check is not None and not check.done():
            await asyncio.shield(check)

    def _snapshot(self, close_time: datetime) -> Snapshot:
        """The venue's state at ``close_time``, requested once for all symbols."""
        if self._last is None or self._last[0] != close_time:
            self._last = (
                close_time,
                Snapshot(
                    _quiet(asyncio.ensure_future(self._venue.open_conditional(self._symbols))),
                    _quiet(asyncio.ensure_future(self._venue.account(self._symbols))),
                ),
            )
        return self._last[1]
