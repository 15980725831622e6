"""Which candle closes no cycle decided: while the daemon was down, or because a cycle overran
the next close. They are logged and recorded as a `missed-cycles` event, never replayed (a
decision on an old candle is worse than none), and each is reported once."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from tbotd.domain.errors import StorageUnavailableError
from tbotd.domain.values import floor_time, ms_to_datetime, timeframe_delta
from tbotd.ops.logs import get_logger
from tbotd.store import Store

log = get_logger(__name__)


class MissedCloses:
    """The last candle a cycle ran for, and the report of the ones skipped since."""

    def __init__(self, timeframe: str, grace_s: float) -> None:
        self.timeframe = timeframe
        self.step = timeframe_delta(timeframe)
        self.grace = timedelta(seconds=grace_s)
        self.last_decided: datetime | None = None  # from the database until a cycle runs

    def first_to_decide(self, now: datetime) -> datetime:
        """The candle the first scheduled cycle decides: the scheduler fires at the next
        boundary + grace, so a start within the grace of a close still decides that candle."""
        return floor_time(now - self.grace, self.timeframe)

    def report(self, store: Store, now: datetime, upto: datetime, *, while_down: bool) -> None:
        """Report the closes after the last decided candle and before ``upto``: missed while the
        daemon was down (at start) or because a cycle overran (``while_down`` False) — the
        operator's next step differs, so the event says which."""
        if self.last_decided is None:
            row = store.query("SELECT MAX(candle_time) AS t FROM decisions")[0]["t"]
            if row is None:
                return
            self.last_decided = ms_to_datetime(row)
        missed = int((upto - self.last_decided) / self.step) - 1
        since = self.last_decided + self.step
        self.last_decided = max(self.last_decided, upto - self.step)  # reported once
        if missed <= 0:
            return
        log.warning("missed cycles are not replayed", count=missed, since=since.isoformat())
        with contextlib.suppress(StorageUnavailableError):  # the log line says it anyway
            store.record_event(
                now, "missed-cycles", f"{missed} cycle(s) missed since {since.isoformat()}",
                count=missed, cause="down" if while_down else "overran",
            )  # fmt: skip
