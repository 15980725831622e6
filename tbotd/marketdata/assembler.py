"""Deciding which candles are closed, exactly once each (pure; the feed feeds it).

ccxt drops Binance's "closed" flag, re-delivers the forming candle on every update and mutates the
rows it returned (ccxt and Binance behaviour checked against the venue). So a candle is closed when:

* a newer candle appears on the stream after continuous updates (roll-over), or
* REST, asked at the boundary plus a grace period, returns it with ``open + timeframe <= now``.

Each (symbol, timeframe, open time) is emitted once, in order. A hole in the sequence is never
papered over: the feed must gap-fill from REST first, and what the exchange really lacks is
reported as a gap, not invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import Candle
from tbotd.domain.values import datetime_to_ms, ms_to_datetime, timeframe_ms

Row = Sequence[object]


@dataclass(frozen=True, slots=True)
class Gap:
    """Candles the exchange did not return between two it did (recorded as an event)."""

    symbol: str
    first_missing: datetime
    count: int


@dataclass(slots=True)
class Outcome:
    """What one input produced: closed candles to emit, rows rejected, gaps found."""

    closed: list[Candle] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    needs_gap_fill: bool = False


class CandleAssembler:
    """Turns stream updates and REST pages for one (symbol, timeframe) into closed candles."""

    def __init__(self, symbol: str, timeframe: str, last_closed: datetime | None) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.step_ms = timeframe_ms(timeframe)
        self.last_closed_ms = -1 if last_closed is None else datetime_to_ms(last_closed)
        self._forming: Candle | None = None
        self._forming_trusted = False  # updated since the last (re)connect

    @property
    def last_closed(self) -> datetime | None:
        """Open time of the newest candle emitted (or loaded from the store)."""
        return None if self.last_closed_ms < 0 else ms_to_datetime(self.last_closed_ms)

    @property
    def next_expected(self) -> datetime | None:
        """Open time of the next candle to emit."""
        return (
            None if self.last_closed_ms < 0 else ms_to_datetime(self.last_closed_ms + self.step_ms)
        )

    @property
    def hole_open(self) -> bool:
        """Candles are missing between the last emitted and the stream's forming one: until
        REST brings them (or says the exchange lacks them) nothing after them is emitted."""
        if self._forming is None or self.last_closed_ms < 0:
            return False
        return self._forming.open_time_ms - self.last_closed_ms > self.step_ms

    def stream_lost(self) -> None:
        """The websocket dropped: the candle in flight may be stale and must come from REST."""
        self._forming_trusted = False

    def on_stream(self, rows: Sequence[Row]) -> Outcome:
        """Rows from ``watch_ohlcv`` (copied on parse). Emits the previous candle on roll-over."""
        out = Outcome()
        for row in sorted(rows, key=_ms):
            candle = self._parse(row, out)
            if candle is None:
                continue
            forming = self._forming
            if forming is None or candle.open_time > forming.open_time:
                if forming is not None and self._forming_trusted and self._next(forming):
                    self._emit(forming, out)
                elif forming is not None:  # its last updates, or candles before it, missing:
                    out.needs_gap_fill = True  # REST brings them, in order, or says the gap
                self._forming = candle
                self._forming_trusted = True
            elif candle.open_time == forming.open_time:
                self._forming = candle
                self._forming_trusted = True  # a full cumulative update since any reconnect
        if self.hole_open:
            out.needs_gap_fill = True
        return out

    def on_rest(self, rows: Sequence[Row], server_now: datetime) -> Outcome:
        """Rows from ``fetch_ohlcv``: emit those fully in the past, in order; report real gaps."""
        out = Outcome()
        now_ms = datetime_to_ms(server_now)
        for row in sorted(rows, key=_ms):
            candle = self._parse(row, out)
            if candle is None or candle.open_time_ms + self.step_ms > now_ms:
                continue  # still forming
            self._emit(candle, out)
        return out

    def due_for_confirmation(self, server_now: datetime, grace: timedelta) -> datetime | None:
        """Open time of a candle whose close + grace has passed without being emitted."""
        candidate = self.last_closed_ms + self.step_ms if self.last_closed_ms >= 0 else None
        if candidate is None and self._forming is not None:
            candidate = self._forming.open_time_ms
        if candidate is None:
            return None
        if candidate + self.step_ms + grace.total_seconds() * 1000 <= datetime_to_ms(server_now):
            return ms_to_datetime(candidate)
        return None

    def _next(self, candle: Candle) -> bool:
        """``candle`` follows the last one emitted (or nothing was yet). The stream never emits
        past a hole: only REST may say the exchange lacks candles; until REST answers, the
        candles after the hole wait (the cycle then finds no closed candle and decides
        nothing for that symbol, rather than deciding on a history with a hole)."""
        last = self.last_closed_ms
        return last < 0 or candle.open_time_ms <= last + self.step_ms

    def _emit(self, candle: Candle, out: Outcome) -> None:
        ms = candle.open_time_ms
        if ms <= self.last_closed_ms:
            return  # already emitted: exactly once
        if self.last_closed_ms >= 0 and ms > self.last_closed_ms + self.step_ms:
            missing = (ms - self.last_closed_ms) // self.step_ms - 1
            out.gaps.append(
                Gap(self.symbol, ms_to_datetime(self.last_closed_ms + self.step_ms), missing)
            )
        self.last_closed_ms = ms
        out.closed.append(candle)

    def _parse(self, row: Row, out: Outcome) -> Candle | None:
        try:
            return Candle.from_row(self.symbol, self.timeframe, list(row))
        except InvalidDataError as e:
            out.rejected.append(str(e))
            return None


def _ms(row: Row) -> float:
    value = row[0] if row else 0
    return float(value) if isinstance(value, int | float) else 0.0
