"""The risk guard: loss limits, cooldowns, exposure caps and the kill switch, as pure functions.

The daemon's cycle and the backtest call the same two functions at every candle close, for the
whole portfolio (every symbol of one wallet):

- :func:`observe` after the candle is settled (stops, targets, funding) and before anything is
  decided: it takes the equity at that moment and the trades closed since the last close, and
  trips or resets rules — a drawdown from the equity peak beyond ``max_drawdown``, a loss since
  the UTC day's first close beyond ``daily_loss``, ``stop_loss_streak`` stop-losses in a row
  (overall, and per symbol) — or the operator's halt;
- :func:`tbotd.risk.gate.gate` on each symbol's actions, in symbol order: while a rule is
  tripped (or the operator halted) an entry becomes a :class:`~tbotd.domain.actions.Hold` of
  kind ``risk_halted``; an entry that would break the gross or per-symbol exposure cap or the
  entries-per-day limit becomes one of kind ``risk_limit``. Closes and stop moves pass: a
  halted book keeps its positions and their protection. With ``on_trip = flatten`` a new
  equity trip (or a halt with flatten) also asks for every position to be closed — and keeps
  asking at every close (:class:`Flatten`) until the caller reports the book flat
  (:func:`after_flatten`): a close that failed, or a position that appeared since, is closed
  at the next close, not left to its stop.

Every rule is off unless set. How a trip resets: drawdown only by the operator (``tbotd
resume``, which also takes the current equity as the new peak); daily loss at the next UTC day;
a stop-loss streak when its cooldown ends. A pending flatten ends when the book is reported flat,
with a resume, or when nothing refuses entries on the whole book any more. The state is a frozen
value the daemon persists after every change, so a trip (and a pending flatten) survives restarts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

DAY_MS = 86_400_000


class OnTrip(StrEnum):
    """What a tripped equity rule does besides refusing entries."""

    HALT = "halt"  # no new entries; positions keep their exchange-side TP/SL
    FLATTEN = "flatten"  # also close every position


class RiskRule(StrEnum):
    """The rule behind a trip."""

    MAX_DRAWDOWN = "max_drawdown"
    DAILY_LOSS = "daily_loss"
    STOP_LOSS_STREAK = "stop_loss_streak"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The ``[risk]`` section as fractions and milliseconds; ``None`` switches a rule off."""

    max_drawdown: Decimal | None = None  # fraction of the equity peak
    daily_loss: Decimal | None = None  # fraction of the UTC day's first equity
    stop_loss_streak: int | None = None
    cooldown_ms: int = 0
    max_gross_exposure: Decimal | None = None  # sum of notionals / equity
    max_symbol_exposure: Decimal | None = None  # one entry's notional / equity
    max_entries_per_day: int | None = None  # over every symbol, per UTC day
    on_trip: OnTrip = OnTrip.HALT

    @property
    def active(self) -> bool:
        """Some rule is set (the kill switch works either way)."""
        return any(
            v is not None
            for v in (
                self.max_drawdown,
                self.daily_loss,
                self.stop_loss_streak,
                self.max_gross_exposure,
                self.max_symbol_exposure,
                self.max_entries_per_day,
            )
        )

    @property
    def watches_equity(self) -> bool:
        """A rule reads the equity at every close (drawdown or daily loss)."""
        return self.max_drawdown is not None or self.daily_loss is not None

    @property
    def daily(self) -> bool:
        """A rule whose state turns over at each UTC midnight."""
        return self.daily_loss is not None or self.max_entries_per_day is not None


@dataclass(frozen=True, slots=True)
class Trip:
    """A tripped rule: for the whole book (``symbol`` None) or one symbol, since ``at_ms``,
    until ``until_ms`` (None: until its rule or the operator resets it)."""

    rule: RiskRule
    at_ms: int
    detail: str
    symbol: str | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Halt:
    """The operator's kill switch: ``seq`` orders commands; ``flatten`` closes every position
    (asked until the book is flat, see :class:`Flatten`)."""

    seq: int
    at_ms: int
    flatten: bool = False
    # written over a resume the daemon had not applied: its number, applied first if it still
    # is not (a daemon that read the resume just before this was written has applied it)
    resume_seq: int = 0


@dataclass(frozen=True, slots=True)
class Flatten:
    """A flatten asked and not carried out yet: since ``at_ms``, asked ``by`` a rule or the
    operator's halt. It stays until the caller reports the book flat (:func:`after_flatten`),
    so a close that failed (or a position found later) is closed at the next close; ``tries``
    counts the reports that found the book still open, ``left`` the symbols open at the last."""

    at_ms: int
    by: str
    tries: int = 0
    left: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RiskState:
    """Everything the rules remember between closes (persisted by the daemon)."""

    seen_ms: int | None = None  # the close of the last observation
    peak: Decimal | None = None
    day: int | None = None  # UTC day number of the last observation
    day_start: Decimal | None = None  # equity at the day's first observation
    entries_today: int = 0
    streak: int = 0  # stop-losses in a row, every symbol
    streaks: tuple[tuple[str, int], ...] = ()  # per symbol
    trips: tuple[Trip, ...] = ()
    halt: Halt | None = None
    command_seq: int = 0  # the last operator command applied
    flattened_seq: int = 0  # the last halt whose flatten was asked (never asked twice)
    flatten: Flatten | None = None  # a flatten asked, pending until the book is flat

    def blocking(self, symbol: str) -> Trip | Halt | None:
        """What stops new entries on ``symbol`` now, if anything."""
        if self.halt is not None:
            return self.halt
        for trip in self.trips:
            if trip.symbol in (None, symbol):
                return trip
        return None


@dataclass(frozen=True, slots=True)
class Closed:
    """A trade the rules hear of: its symbol, when it closed and why."""

    symbol: str
    closed_ms: int
    exit_reason: str


@dataclass(frozen=True, slots=True)
class Change:
    """A trip (``tripped``) or a reset, for the event log, the metrics and notifications."""

    trip: Trip | Halt
    tripped: bool
    at_ms: int

    @property
    def kind(self) -> str:
        """The event kind the notifier maps: ``risk-trip`` or ``risk-reset``."""
        return "risk-trip" if self.tripped else "risk-reset"

    @property
    def message(self) -> str:
        """In words, for the event log and the operator."""
        what = describe(self.trip)
        return f"{what} tripped" if self.tripped else f"{what} reset"


@dataclass(frozen=True, slots=True)
class Observed:
    """What :func:`observe` decided: the new state, its changes, and whether to flatten now
    (a flatten is pending: asked at this close or before, the book not reported flat since)."""

    state: RiskState
    changes: tuple[Change, ...] = ()
    flatten: bool = False


def describe(trip: Trip | Halt) -> str:
    """One line naming the rule (or the operator's halt) and its detail."""
    if isinstance(trip, Halt):
        return "operator halt" + (" with flatten" if trip.flatten else "")
    where = f" on {trip.symbol}" if trip.symbol else ""
    return f"{trip.rule}{where} ({trip.detail})"


def observe(
    state: RiskState,
    limits: RiskLimits,
    close_ms: int,
    equity: Decimal,
    closed: Sequence[Closed] = (),
) -> Observed:
    """The rules after the candle closing at ``close_ms``: ``equity`` is the book's equity then
    (after the candle's exits and funding), ``closed`` the trades closed since the last call."""
    changes: list[Change] = []
    state = _new_day(state, close_ms, equity)
    state = _expire(state, close_ms, changes)
    if state.seen_ms is not None:
        state = _streaks(state, limits, close_ms, closed, changes)
    before = len(changes)
    state = _equity_rules(state, limits, close_ms, equity, changes)
    if limits.on_trip is OnTrip.FLATTEN and len(changes) > before:
        rules = (c.trip.rule for c in changes[before:] if isinstance(c.trip, Trip))
        state = _ask_flatten(state, close_ms, ", ".join(rules))
    state = _flatten_in_force(state)
    return Observed(state, tuple(changes), state.flatten is not None)


def _new_day(state: RiskState, close_ms: int, equity: Decimal) -> RiskState:
    """A new UTC day: its first equity is the daily loss's base; the entry count starts over."""
    day = close_ms // DAY_MS
    if state.day == day:
        return state
    return replace(state, day=day, day_start=equity, entries_today=0)


def _expire(state: RiskState, close_ms: int, changes: list[Change]) -> RiskState:
    """Drop the trips whose time is up (cooldowns; the daily loss at the next UTC day)."""
    kept: list[Trip] = []
    for trip in state.trips:
        if trip.until_ms is not None and trip.until_ms <= close_ms:
            changes.append(Change(trip, tripped=False, at_ms=close_ms))
        else:
            kept.append(trip)
    if len(kept) == len(state.trips):
        return state
    return replace(state, trips=tuple(kept))


def _streaks(
    state: RiskState,
    limits: RiskLimits,
    close_ms: int,
    closed: Sequence[Closed],
    changes: list[Change],
) -> RiskState:
    """Count stop-losses in a row (any other exit ends a run); trip a cooldown at the limit."""
    limit = limits.stop_loss_streak
    if limit is None or not closed:
        return state
    streak, streaks, trips = state.streak, dict(state.streaks), list(state.trips)
    until = close_ms + limits.cooldown_ms
    for trade in sorted(closed, key=lambda t: (t.closed_ms, t.symbol)):
        if trade.exit_reason != "stop_loss":
            streak, streaks[trade.symbol] = 0, 0
            continue
        streak, streaks[trade.symbol] = streak + 1, streaks.get(trade.symbol, 0) + 1
        for symbol, count in ((None, streak), (trade.symbol, streaks[trade.symbol])):
            if count >= limit:
                minutes = limits.cooldown_ms // 60_000
                detail = f"{count} stop-losses in a row, cooling down {minutes} min"
                trip = Trip(RiskRule.STOP_LOSS_STREAK, close_ms, detail, symbol, until)
                trips = [t for t in trips if (t.rule, t.symbol) != (trip.rule, symbol)]
                trips.append(trip)
                changes.append(Change(trip, tripped=True, at_ms=close_ms))
                if symbol is None:
                    streak = 0
                else:
                    streaks[symbol] = 0
    return replace(state, streak=streak, streaks=tuple(sorted(streaks.items())), trips=tuple(trips))


def _equity_rules(
    state: RiskState, limits: RiskLimits, close_ms: int, equity: Decimal, changes: list[Change]
) -> RiskState:
    """The drawdown from the peak and the loss since the day's first close (and the close
    seen: one copy of the state per observation)."""
    peak = equity if state.peak is None or equity > state.peak else state.peak
    state = replace(state, peak=peak, seen_ms=close_ms)
    tripped = {t.rule for t in state.trips if t.symbol is None}
    new: list[Trip] = []
    dd = limits.max_drawdown
    if dd is not None and RiskRule.MAX_DRAWDOWN not in tripped and peak > 0:
        drawdown = (peak - equity) / peak
        if drawdown > dd:
            detail = f"equity {equity} is {pct(drawdown)} below its peak {peak} (limit {pct(dd)})"
            new.append(Trip(RiskRule.MAX_DRAWDOWN, close_ms, detail))
    loss, start = limits.daily_loss, state.day_start
    if loss is not None and RiskRule.DAILY_LOSS not in tripped and start is not None and start > 0:
        lost = (start - equity) / start
        if lost > loss:
            detail = (
                f"equity {equity} is {pct(lost)} below the day's first {start} (limit {pct(loss)})"
            )
            until = (close_ms // DAY_MS + 1) * DAY_MS
            new.append(Trip(RiskRule.DAILY_LOSS, close_ms, detail, until_ms=until))
    if not new:
        return state
    changes.extend(Change(t, tripped=True, at_ms=close_ms) for t in new)
    return replace(state, trips=state.trips + tuple(new))


def pct(fraction: Decimal) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{fraction * 100:.2f} %"


def command(state: RiskState, halt: Halt | None, seq: int, at_ms: int, equity: Decimal) -> Observed:
    """Apply the operator's latest command (``seq`` > ``state.command_seq``): ``halt`` stops
    entries (and with flatten asks for every position to be closed, until the book is flat); a
    resume (``halt`` None) lifts the halt, cancels a pending flatten and resets every tripped
    rule, taking ``equity`` as the new peak and day start. A halt written over a resume the
    daemon had not applied yet (``resume_seq``) applies that resume first, unless it was applied
    meanwhile (a daemon reading the resume while the halt was being written)."""
    if seq <= state.command_seq:
        return Observed(state, flatten=state.flatten is not None)
    changes: list[Change] = []
    if resumes(halt, seq, state):
        state = _resume(state, seq, at_ms, equity, changes)
    if halt is None:
        return Observed(state, tuple(changes))
    state = replace(state, halt=halt, command_seq=seq)
    if halt.flatten and halt.seq > state.flattened_seq:  # once per halt, restarts or not
        state = replace(state, flattened_seq=halt.seq)
        state = _ask_flatten(state, at_ms, f"operator halt #{halt.seq}")
    changes.append(Change(halt, tripped=True, at_ms=at_ms))
    return Observed(state, tuple(changes), state.flatten is not None)


def resumes(halt: Halt | None, seq: int, state: RiskState) -> bool:
    """Command ``seq`` resumes when applied to ``state``: a resume (``halt`` None), or a halt
    written over a resume not applied yet (:attr:`Halt.resume_seq`)."""
    return seq > state.command_seq and (halt is None or halt.resume_seq > state.command_seq)


def _resume(
    state: RiskState, seq: int, at_ms: int, equity: Decimal, changes: list[Change]
) -> RiskState:
    """The operator's resume: the halt lifted, every trip reset (said in ``changes``), a
    pending flatten cancelled, ``equity`` the new peak and day start."""
    if state.halt is not None:
        changes.append(Change(state.halt, tripped=False, at_ms=at_ms))
    changes.extend(Change(t, tripped=False, at_ms=at_ms) for t in state.trips)
    return replace(
        state,
        halt=None,
        trips=(),
        peak=equity,
        day_start=equity,
        streak=0,
        streaks=(),
        command_seq=seq,
        flatten=None,
    )


def after_flatten(state: RiskState, left: Collection[str]) -> RiskState:
    """The caller's report after it flattened (or found nothing to close): ``left`` the symbols
    it still holds. None: the flatten is done. Some: it stays asked for the next close (a close
    failed or was cut short, a position appeared) and the status shows what is left."""
    pending = state.flatten
    if pending is None:
        return state
    if not left:
        return replace(state, flatten=None)
    tried = replace(pending, tries=pending.tries + 1, left=tuple(sorted(left)))
    return replace(state, flatten=tried)


def _ask_flatten(state: RiskState, at_ms: int, by: str) -> RiskState:
    """A flatten asked: pending from now on (one already pending keeps its start and count)."""
    if state.flatten is not None:
        return state
    return replace(state, flatten=Flatten(at_ms, by))


def _flatten_in_force(state: RiskState) -> RiskState:
    """A pending flatten lasts while entries are refused on the whole book (the halt, a
    book-wide trip); once nothing refuses them (the daily loss's new UTC day) closing would
    only fight the entries that follow, so it is dropped."""
    pending = state.flatten
    if pending is None or state.halt is not None or any(t.symbol is None for t in state.trips):
        return state
    return replace(state, flatten=None)
