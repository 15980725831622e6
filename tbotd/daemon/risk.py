"""The risk guard in the daemon: its state and the operator's commands kept in the database.

:class:`RiskKeeper` runs the pure guard (:mod:`tbotd.risk.guard`) once per cycle and persists
its state in the ``meta`` table after every observation, so a trip, a halt or a cooldown
survives restarts. ``tbotd halt`` and ``tbotd resume`` write a numbered command under
``risk_command`` in the same database (the daemon need not be running); the daemon applies a
command it has not applied yet at its next close — a halt stops new entries within one cycle
and stays until resumed. Every trip and reset is an audit event (``risk-trip`` /
``risk-reset``, which the notifier turns into messages) and a metric.

A flatten (a trip with ``on_trip = flatten``, ``tbotd halt --flatten``) is asked at every close
until the cycle reports the managed book flat (:meth:`RiskKeeper.flatten_reported`): a retry is
a ``flatten-retry`` event, the end a ``flatten-done`` one (not ``risk-*``: the backtest, whose
closes never fail, records neither, and its risk events must equal the daemon's).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from tbotd.domain.actions import Action, OpenPosition
from tbotd.domain.market import MarketSpec
from tbotd.domain.positions import notional
from tbotd.domain.values import ms_to_datetime
from tbotd.ops.metrics import DAEMON_METRICS, DaemonMetrics
from tbotd.risk import guard
from tbotd.risk.codec import halt_data, halt_from, state_data, state_from
from tbotd.risk.gate import Exposure, Gated, gate
from tbotd.risk.guard import Closed, Flatten, Halt, Observed, RiskLimits, RiskState, Trip
from tbotd.store import Store

META_STATE = "risk_state"
META_COMMAND = "risk_command"


@dataclass(frozen=True, slots=True)
class Command:
    """The operator's latest command: ``halt`` (None: resume) and its sequence number."""

    seq: int
    halt: Halt | None


def read_command(store: Store) -> Command | None:
    """The command ``tbotd halt`` / ``tbotd resume`` left, if any."""
    return command_from(store.meta(META_COMMAND))


def command_from(raw: str | None) -> Command | None:
    """The command stored under ``risk_command`` (its JSON), if any."""
    if not raw:
        return None
    data = json.loads(raw)
    return Command(int(data["seq"]), halt_from(data.get("halt")))


def write_command(store: Store, *, halt: bool, flatten: bool, at: datetime) -> Command:
    """Record a halt (optionally flattening) or a resume for the daemon to apply."""
    at_ms = int(at.timestamp() * 1000)
    # The last command is read inside a transaction that holds the write lock from its start:
    # two halts or resumes at once take consecutive numbers, never the same one.
    with store.transaction(immediate=True):
        last = read_command(store)
        seq = (last.seq if last is not None else 0) + 1
        resume_seq = 0
        if halt and last is not None and last.seq > load_state(store).command_seq:
            # the daemon applies only the latest command: one written over a command it has not
            # applied yet keeps what that one asked — a halt's flatten, a resume's reset (which
            # also cancels a pending flatten the operator no longer wants)
            if last.halt is None:
                resume_seq = last.seq
            else:
                flatten = flatten or last.halt.flatten
                resume_seq = last.halt.resume_seq
        command = Command(seq, Halt(seq, at_ms, flatten, resume_seq) if halt else None)
        store.set_meta(META_COMMAND, json.dumps({"seq": seq, "halt": halt_data(command.halt)}))
    return command


def load_state(store: Store) -> RiskState:
    """The guard's state as last persisted (a fresh one for a new database)."""
    raw = store.meta(META_STATE)
    return RiskState() if not raw else state_from(json.loads(raw))


class RiskKeeper:
    """The guard's state for one daemon, observed at every close and persisted."""

    def __init__(
        self, store: Store, limits: RiskLimits, metrics: DaemonMetrics = DAEMON_METRICS
    ) -> None:
        self.store, self.limits, self.metrics = store, limits, metrics
        self.state = load_state(store)
        self._heard = store.newest_trade_id()  # trades before the start: heard by their time
        self._publish()

    def observe(self, close_ms: int, equity: Decimal) -> Observed:
        """The rules at the close ``close_ms`` with the book's ``equity`` then, and the operator's
        latest command; records every change and persists the state."""
        state = self.state
        closed: list[Closed] = []
        heard = self._heard
        if state.seen_ms is not None:
            rows, heard = self.store.exits_heard(state.seen_ms, close_ms, self._heard)
            closed = [Closed(*row) for row in rows]
        seen = guard.observe(state, self.limits, close_ms, equity, closed)
        changes = list(seen.changes)
        command = read_command(self.store)
        if command is not None:
            done = guard.command(seen.state, command.halt, command.seq, close_ms, equity)
            changes.extend(done.changes)
            seen = Observed(done.state)
        at = ms_to_datetime(close_ms)
        if changes or replace(seen.state, seen_ms=state.seen_ms) != state:
            with self.store.transaction():  # kept only once recorded: a failed write is redone
                for change in changes:
                    trip = change.trip
                    symbol = trip.symbol if isinstance(trip, Trip) else None
                    rule = str(trip.rule) if isinstance(trip, Trip) else "halt"
                    self.store.record_event(at, change.kind, change.message, symbol, rule=rule)
                if state.flatten is not None and seen.state.flatten is None:
                    resumed = command is not None and guard.resumes(
                        command.halt, command.seq, state
                    )
                    message = _ended(state.flatten, resumed=resumed)
                    self.store.record_event(at, "flatten-ended", message, rule="flatten")
                self._save(seen.state)
        # else only the close seen moved: not written (the trades since the last write are
        # heard again after a restart, and a trade that changed nothing changes nothing again)
        self.state, self._heard = seen.state, heard
        for change in changes:
            if change.tripped:
                self.metrics.risk_trips.labels(_rule(change.trip)).inc()
        self._publish()
        return Observed(self.state, tuple(changes), self.state.flatten is not None)

    def flatten_retry(self, close_ms: int, held: Collection[str]) -> None:
        """Before a close flattens ``held`` again (a close of an earlier try failed or was cut
        short, or a position appeared since): an event, so the operator sees it is still
        asked (one per close at most; the notifier says it once per de-duplication window)."""
        pending = self.state.flatten
        if pending is None or pending.tries == 0 or not held:
            return
        message = (
            f"flatten asked by {pending.by} retried (try {pending.tries + 1}): "
            f"{len(held)} position(s) still open: {', '.join(sorted(held))}"
        )
        self.store.record_event(ms_to_datetime(close_ms), "flatten-retry", message, rule="flatten")

    def flatten_reported(self, close_ms: int, left: Collection[str]) -> None:
        """After the cycle's flatten: ``left`` the managed symbols still held. None: the flatten
        is done (a ``flatten-done`` event); else it is asked again at the next close. Persisted
        with its event, so a restart goes on where this left off."""
        pending = self.state.flatten
        if pending is None:
            return
        state = guard.after_flatten(self.state, left)
        with self.store.transaction():
            if state.flatten is None:
                message = (
                    f"the book is flat: the flatten asked by {pending.by} at "
                    f"{ms_to_datetime(pending.at_ms).isoformat()} is done "
                    f"(after {pending.tries + 1} close(s))"
                )
                at = ms_to_datetime(close_ms)
                self.store.record_event(at, "flatten-done", message, rule="flatten")
            self._save(state)
        self.state = state

    def gate(
        self, actions: list[Action], exposure: Exposure, market: MarketSpec, mark: Decimal
    ) -> Gated:
        """One symbol's actions as the guard lets them through (entries counted, persisted)."""
        entry = next((a for a in actions if isinstance(a, OpenPosition)), None)
        value = Decimal(0)
        if entry is not None:
            value = notional(market.market_type, entry.qty, market.contract_size, mark)
        gated = gate(self.state, self.limits, actions, exposure, value)
        if gated.state != self.state:  # (the cycle writes it with the decision's record)
            self._save(gated.state)
            self.state = gated.state
        return gated

    def _save(self, state: RiskState) -> None:
        """Persist ``state`` (inside the caller's transaction)."""
        self.store.set_meta(META_STATE, json.dumps(state_data(state)))

    def _publish(self) -> None:
        """The tripped gauge: 1 for every rule (or the halt) stopping entries now."""
        active = {_rule(t) for t in self.state.trips}
        if self.state.halt is not None:
            active.add("halt")
        for rule in (*(str(r) for r in guard.RiskRule), "halt"):
            self.metrics.risk_tripped.labels(rule).set(1 if rule in active else 0)

    def status(self) -> dict[str, Any]:
        """The `/status` field (see :func:`risk_status`)."""
        return risk_status(self.state, read_command(self.store))


def risk_status(s: RiskState, command: Command | None = None) -> dict[str, Any]:
    """What stops entries now, the operator's command not applied yet (``pending``: it applies
    at the daemon's next close), a flatten asked until the book is flat (``flatten``), and the
    rules' counters (`/status`, `tbotd status`, the dashboard)."""
    pending = None
    if command is not None and command.seq > s.command_seq:
        flatten = command.halt is not None and command.halt.flatten
        what = "resume" if command.halt is None else "halt" + (" with flatten" if flatten else "")
        pending = {"seq": command.seq, "command": what}
    return {
        "halted": s.halt is not None,
        "halt": halt_data(s.halt),
        "pending": pending,
        "flatten": _flatten_status(s.flatten),
        "trips": [
            {
                "rule": str(t.rule),
                "symbol": t.symbol,
                "since": ms_to_datetime(t.at_ms).isoformat(),
                "until": None if t.until_ms is None else ms_to_datetime(t.until_ms).isoformat(),
                "detail": t.detail,
            }
            for t in s.trips
        ],
        "peak_equity": None if s.peak is None else str(s.peak),
        "day_start_equity": None if s.day_start is None else str(s.day_start),
        "entries_today": s.entries_today,
        "stop_loss_streak": s.streak,
    }


def _flatten_status(pending: Flatten | None) -> dict[str, Any] | None:
    """A pending flatten: since when, asked by what, how many closes found positions still
    open, and which (none yet before the first close that tried it)."""
    if pending is None:
        return None
    return {
        "since": ms_to_datetime(pending.at_ms).isoformat(),
        "by": pending.by,
        "tries": pending.tries,
        "open": list(pending.left),
    }


def _rule(trip: Trip | Halt) -> str:
    return "halt" if isinstance(trip, Halt) else str(trip.rule)


def _ended(pending: Flatten, *, resumed: bool) -> str:
    """Why a flatten not done yet is no longer asked: the operator resumed, or the rule that
    asked it reset (a daily loss at the new UTC day) — its positions stay, with their stops."""
    why = "the operator resumed" if resumed else "nothing refuses entries any more"
    still = f"; still open: {', '.join(pending.left)}" if pending.left else ""
    return f"the flatten asked by {pending.by} is no longer asked ({why}){still}"
