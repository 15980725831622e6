"""Placing and repairing protection on the live venue (ARCHITECTURE: orders; README: Protection).

The stop goes first: after an entry fills, the stop-loss is sent before the fills are fetched or
anything is written, then the take-profit. A level the venue refuses (the price already crossed
it) closes the position at once; a venue that cannot be reached leaves the position to the
repair loop (:meth:`LiveProtection.repair`), which keeps trying every few seconds — it never
gives up on a bare position and never closes one blindly while the venue is unreachable.

:meth:`LiveProtection.repair` makes one venue position protected by the strict definition of
:mod:`tbotd.execution.protection`: a new stop for the whole quantity where the old one is
missing, partial, out of bounds or beyond the liquidation price (placed before the old ones are
cancelled), and a take-profit for the whole quantity. When no stop can qualify (the venue would
liquidate nearer than the smallest stop allowed) the position is closed, as an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import partial

from tbotd.domain.enums import MarginMode, OrderRole, OrderType, Side
from tbotd.domain.errors import OutcomeUnknownError, RejectedError, RetryableError
from tbotd.domain.orders import Order, OrderState
from tbotd.domain.positions import Position
from tbotd.execution.broker import bounded_prices
from tbotd.execution.live_orders import SEND, LiveOrders
from tbotd.execution.order_round import before_bookkeeping
from tbotd.execution.orders import new_order
from tbotd.execution.protection import StopBounds, VenueOrder, VenuePosition, repair_stop
from tbotd.execution.reconcile import Protect
from tbotd.execution.venue import ReduceOnlyRejectedError
from tbotd.execution.venue_answers import SymbolSettings, VenueOrderState
from tbotd.ops.logs import get_logger
from tbotd.store import Trade
from tbotd.strategy.exits import ExitParams, Protection, fixed_exits

log = get_logger(__name__)
PROTECTION_ATTEMPTS = 3
_KIND = {
    OrderRole.STOP_LOSS: OrderType.STOP_MARKET,
    OrderRole.TAKE_PROFIT: OrderType.TAKE_PROFIT_MARKET,
}
EMERGENCY_SEQ = 7  # the client id seq of a close because protection failed


@dataclass(frozen=True, slots=True)
class Placed:
    """What placing protection did: the orders resting now, and whether the position is gone
    (closed because a level was refused) or still waits for the venue (``failed``)."""

    ids: set[str] = field(default_factory=set)
    closed: bool = False
    failed: str = ""


class LiveProtection(LiveOrders):
    """Protective orders for the live broker: place, repair, check the venue's settings."""

    _fallback: ExitParams
    _leverage: int
    _margin_mode: MarginMode
    repair_soon: asyncio.Event  # set when a position could not be protected: repair now
    entry_blocked: dict[str, str]  # symbol → why the venue's settings refuse new entries
    _seq_floor: dict[tuple[str, OrderRole], int]  # seqs sent this run (recorded or not)
    _retuned: set[str]  # symbols whose leverage a reload changed and the venue has not yet

    def stop_bounds(self, symbol: str) -> StopBounds:
        """Where a stop on ``symbol`` may sit (the strict definition's bounds)."""
        bounds = self._fallback.bounds
        return StopBounds(bounds.min_stop, bounds.max_stop, self._markets[symbol].tick_size)

    async def _protect(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        levels: dict[OrderRole, Decimal],
        candle_time: datetime,
        position: Position | None = None,
    ) -> Placed:
        """Place the stop, then the target, each for ``qty`` (``levels`` says which and where).

        A refused level closes ``position`` (when we hold it); an unreachable venue leaves the
        rest to :meth:`repair`.
        """
        placed: set[str] = set()
        for role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
            if role not in levels:
                continue
            outcome = await self._place(symbol, side, role, qty, levels[role], candle_time)
            if isinstance(outcome, str):
                placed.add(outcome)
                continue
            if isinstance(outcome, RejectedError):
                why = f"{role} refused: {outcome}"
                closed = position is not None and await self._emergency_close(
                    position, candle_time, why
                )
                return Placed(placed, closed=closed, failed="" if closed else why)
            self.repair_soon.set()
            self._event("unprotected", f"{role} not placed yet: {outcome}", symbol, role=role.value)
            return Placed(placed, failed=str(outcome))
        return Placed(placed)

    async def _place(
        self,
        symbol: str,
        side: Side,
        role: OrderRole,
        qty: Decimal,
        trigger: Decimal,
        candle_time: datetime,
    ) -> str | RejectedError | RetryableError:
        """One protective order: its client id once resting, or why it is not."""
        last: RetryableError = RetryableError("not attempted")
        for _attempt in range(PROTECTION_ATTEMPTS):
            order = new_order(
                self._instance,
                symbol,
                side,
                role,
                qty,
                candle_time,
                self._clock.now(),
                trigger_price=trigger,
                seq=self._next_seq(symbol, role),
            )
            self._intent(order)
            try:
                order, _ = await self._send(order, self._conditional(order, _KIND[role]))
            except RejectedError as e:
                return e
            except (RetryableError, OutcomeUnknownError) as e:
                last = e if isinstance(e, RetryableError) else RetryableError(str(e))
                await self._clock.sleep(1.0)
                continue
            return order.client_id
        return last

    def _next_seq(self, symbol: str, role: OrderRole) -> int:
        """The next client id seq of ``role``: never one already sent, even unrecorded."""
        floor = self._seq_floor
        seq = max(self._store.order_count(symbol, role), floor.get((symbol, role), 0))
        floor[(symbol, role)] = seq + 1
        return seq

    def _conditional(
        self, order: Order, kind: OrderType
    ) -> Callable[[], Awaitable[VenueOrderState]]:
        trigger = order.trigger_price or Decimal(0)
        return lambda: self._venue.conditional_order(
            order.symbol, order.side, kind, trigger, order.qty, order.client_id
        )

    async def _emergency_close(self, position: Position, candle_time: datetime, why: str) -> bool:
        """Never leave a position unprotected: close it and say so loudly (False: not closed,
        the venue could not be reached — the repair loop carries on)."""
        log.error("closing unprotectable position", symbol=position.symbol, reason=why)
        self._event("alert", f"position closed, could not protect: {why}", position.symbol)
        try:
            await self._close(position, "unprotectable", candle_time, seq=EMERGENCY_SEQ)
        except (RetryableError, OutcomeUnknownError, RejectedError) as e:
            self.repair_soon.set()
            self._event("unprotected", f"emergency close failed: {e}", position.symbol)
            return False
        return True

    async def _close(
        self, position: Position, reason: str, candle_time: datetime, seq: int = 0
    ) -> Trade | None:
        """Reduce-only market close of ``position``, then its protection cancelled."""
        symbol = position.symbol
        exit_ = new_order(
            self._instance,
            symbol,
            position.side,
            OrderRole.EXIT,
            position.qty,
            candle_time,
            self._clock.now(),
            seq=seq,
            reason=reason,
        )
        self._intent(exit_)
        try:
            exit_, state = await self._send(
                exit_,
                lambda: self._venue.market_order(
                    symbol, exit_.side, position.qty, exit_.client_id, reduce_only=True
                ),
            )
        except ReduceOnlyRejectedError:
            await self.sync(symbol)  # the venue is already flat: a stop or target fired
            return None
        exit_, state = await self._until_final(exit_, state)
        label = "decision" if seq == 0 else reason
        if exit_.state is not OrderState.FILLED:
            return await self._exit_cut_short(position, exit_, state, label)
        await before_bookkeeping(symbol)  # the other symbols' orders first, then the booking
        fills = await self._record_fills(exit_, state)
        trade = self._finish(position, fills, label)
        await self._cancel_protection(symbol)
        return trade

    async def _exit_cut_short(
        self, position: Position, exit_: Order, state: VenueOrderState, label: str
    ) -> Trade | None:
        """An exit that ended without filling whole (expired, or not final after the polls):
        what it closed is booked, and what is still open keeps its stop and target.

        An exit still open is cancelled first, so that nothing it fills later goes unbooked.
        Then its own fills say what it closed: all of it — booked as usual; a part — that part
        booked and the rest kept in the books with the protection it has (reduce-only orders
        for the old size cover a smaller one), the close refused (a flip does not open) and a
        reconciliation started, which also books whatever someone else closed of the rest.
        """
        symbol = position.symbol
        self.repair_soon.set()
        if not exit_.state.is_terminal:
            exit_, state = await self._cancel_exit(exit_, state)
            if not exit_.state.is_terminal:
                why = f"exit {exit_.client_id} is still {exit_.state}; its outcome is unknown"
                self._event("exit-incomplete", f"{why}: nothing booked yet", symbol)
                raise RejectedError(why)
        await before_bookkeeping(symbol)
        fills = await self._record_fills(exit_, state)
        closed = sum((f.qty for f in fills), Decimal(0))
        if closed >= position.qty:
            trade = self._finish(position, fills, label)
            await self._cancel_protection(symbol)
            return trade
        if closed > 0:
            self._finish_part(position, fills, closed)
            with self._recording():
                rest = replace(position, qty=position.qty - closed)
                self._store.save_position(rest, self._clock.now())
        await self.sync(symbol, funding=False)  # a stop or target that fired on the rest
        if symbol not in self._store.positions():
            return None
        why = (
            f"exit {exit_.client_id} ended {exit_.state} with {closed} of {position.qty} "
            "filled; the rest stays open"
        )
        self._event("exit-incomplete", f"{why}, with its stop and target", symbol)
        raise RejectedError(why)

    async def _cancel_exit(
        self, exit_: Order, state: VenueOrderState
    ) -> tuple[Order, VenueOrderState]:
        """Cancel an exit that is not final yet and look up what became of it."""
        symbol = exit_.symbol
        try:
            await self._patiently(
                partial(self._venue.cancel, symbol, exit_.client_id, conditional=False),
                f"cancel {exit_.client_id}",
                SEND,
            )
            found = await self._lookup(symbol, exit_.client_id, conditional=False)
        except (RetryableError, OutcomeUnknownError) as e:
            log.warning("exit not cancelled", client_id=exit_.client_id, error=str(e))
            return exit_, state
        if found is None:
            return exit_, state
        return self._apply(exit_, found), found

    async def sync(
        self, symbol: str, still_open: set[str] | None = None, funding: bool = True
    ) -> None:
        raise NotImplementedError  # provided by LiveRecovery

    async def repair(self, fix: Protect, mine: Iterable[VenueOrder]) -> None:
        """Make ``fix.position`` protected by the strict definition (module docstring).

        ``mine``: our protective orders resting on the symbol (cancelled once replaced).
        """
        theirs, symbol = fix.position, fix.symbol
        ours = self._store.positions().get(symbol)
        held = ours if ours is not None and ours.side is theirs.side else None
        now = self._clock.now()
        levels: dict[OrderRole, Decimal] = {}
        if fix.stop_needed:
            wanted = held.stop_loss if held is not None else None
            if wanted is None:  # found or adopted: the fixed exits' stop, not the tightest one
                wanted = self._fixed_levels(theirs).stop_loss
            stop = repair_stop(theirs, wanted, self.stop_bounds(symbol))
            if stop is None:
                why = (
                    f"no stop lies within the bounds and before the liquidation price "
                    f"{theirs.liquidation_price}"
                )
                if held is not None:
                    await self._emergency_close(held, now, why)
                else:
                    self._event(
                        "alert", f"cannot protect a position that is not ours: {why}", symbol
                    )
                return
            levels[OrderRole.STOP_LOSS] = stop
        if fix.stop_needed or fix.take_profit_missing:
            levels[OrderRole.TAKE_PROFIT] = self._target(theirs, held)
        self._event(
            "protect",
            "position not protected: " + (", ".join(fix.verdict.problems) or "no take-profit"),
            symbol,
            problems=list(fix.verdict.problems),
            levels={str(k): str(v) for k, v in levels.items()},
        )
        placed = await self._protect(symbol, theirs.side, theirs.qty, levels, now, held)
        if placed.closed or placed.failed:
            return
        replaced = [o for o in mine if _role_of(o) in levels and o.client_id not in placed.ids]
        for order in replaced:
            await self._cancel(symbol, order.client_id)
        placed_levels = ", ".join(f"{k} {v}" for k, v in levels.items())
        self._event("protected", f"protected again ({placed_levels})", symbol)
        if held is not None:
            stop = levels.get(OrderRole.STOP_LOSS, held.stop_loss)
            take = levels.get(OrderRole.TAKE_PROFIT, held.take_profit)
            with self._recording():
                self._store.save_position(self._with_exits(held, stop, take), now)

    def _target(self, theirs: VenuePosition, held: Position | None) -> Decimal:
        """The take-profit a repaired position keeps: its own if sane, else the fixed one."""
        entry, sign = theirs.entry_price, theirs.side.sign
        if (
            held is not None
            and held.take_profit is not None
            and sign * (held.take_profit - entry) > 0
        ):
            return held.take_profit
        return self._fixed_levels(theirs).take_profit

    def _fixed_levels(self, theirs: VenuePosition) -> Protection:
        """The config's fixed exits around the venue's entry price (bounded, on the tick)."""
        market, plan = self._markets[theirs.symbol], fixed_exits(self._fallback)
        return bounded_prices(plan, theirs.side, theirs.entry_price, market, self._fallback)

    async def check_settings(self, symbol: str, settings: SymbolSettings, flat: bool) -> None:
        """Leverage and margin mode are checked, not assumed (README: Protection): a difference from
        the config is set back, or new entries on ``symbol`` are refused until it can be."""
        problems = []
        if settings.leverage == self._leverage:
            self._retuned.discard(symbol)
        if settings.leverage is not None and settings.leverage != self._leverage:
            try:
                await self._idempotent(
                    lambda: self._venue.set_leverage(symbol, self._leverage), "set leverage"
                )
                self._leverage_set(symbol, settings.leverage)
            except (RejectedError, RetryableError) as e:
                problems.append(
                    f"venue leverage {settings.leverage}× (config {self._leverage}×): {e}"
                )
        if settings.margin_mode is not None and settings.margin_mode is not self._margin_mode:
            if flat:
                try:
                    await self._idempotent(
                        lambda: self._venue.set_margin_mode(symbol, self._margin_mode),
                        "set margin mode",
                    )
                    self._event(
                        "margin-mode", f"venue margin mode set back to {self._margin_mode}", symbol
                    )
                except (RejectedError, RetryableError) as e:
                    problems.append(f"venue margin mode {settings.margin_mode}: {e}")
            else:
                problems.append(
                    f"venue margin mode {settings.margin_mode} (config {self._margin_mode}) cannot "
                    "change while a position is open"
                )
        self._block(symbol, "; ".join(problems))

    def _leverage_set(self, symbol: str, was: int) -> None:
        """Say why the venue's leverage changed: a reload (routine) or a hand change (warned)."""
        if symbol in self._retuned:
            self._retuned.discard(symbol)
            message = f"venue leverage {was}× set to {self._leverage}× (config reloaded)"
            self._event("leverage-applied", message, symbol, leverage=self._leverage)
            return
        self._event("leverage", f"venue leverage {was}× set back to {self._leverage}×", symbol)

    def _block(self, symbol: str, why: str) -> None:
        """Refuse (or allow again) new entries on ``symbol``, saying so once per change."""
        before = self.entry_blocked.get(symbol, "")
        if why == before:
            return
        if why:
            self.entry_blocked[symbol] = why
            self._event("entries-refused", why, symbol)
        else:
            self.entry_blocked.pop(symbol, None)
            self._event("entries-allowed", f"venue settings agree again ({before})", symbol)

    def _event(self, kind: str, message: str, symbol: str | None = None, **data: object) -> None:
        log.warning(message, kind=kind, symbol=symbol, **data)
        with self._recording():
            self._store.record_event(self._clock.now(), kind, message, symbol, **data)


def _role_of(order: VenueOrder) -> OrderRole | None:
    if order.type is OrderType.STOP_MARKET:
        return OrderRole.STOP_LOSS
    if order.type is OrderType.TAKE_PROFIT_MARKET:
        return OrderRole.TAKE_PROFIT
    return None
