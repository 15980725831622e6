"""What the daemon says about its own life: start (or crash-restart), ready, stop (pure).

Crash-only design makes a crash ordinary, but its owner should still hear of it: each run
writes ``running`` in the database's ``meta`` table when it starts and ``stopped`` when it stops
cleanly, so a start that finds ``running`` follows a run that died (SIGKILL, OOM, power loss,
a second stop signal) — and says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tbotd.domain.notices import Notice, NoticeKind, Severity

RUN_KEY = "run"


@dataclass(frozen=True, slots=True)
class RunMark:
    """What a run wrote about itself: ``running`` (since, pid) or ``stopped``."""

    state: str
    pid: int
    at: datetime

    def text(self) -> str:
        """Its form in the ``meta`` table."""
        return json.dumps({"state": self.state, "pid": self.pid, "at": self.at.isoformat()})

    @classmethod
    def parse(cls, text: str | None) -> RunMark | None:
        """A stored mark, or None when absent or unreadable (a first run)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(str(data["state"]), int(data["pid"]), datetime.fromisoformat(data["at"]))
        except (ValueError, KeyError, TypeError):
            return None


def starting(
    at: datetime,
    mode: str,
    symbols: Sequence[str],
    version: str,
    previous: RunMark | None,
) -> Notice:
    """Start-up: a crash-restart when the previous run never stopped cleanly."""
    what = f"{mode}, {', '.join(symbols)}, tbotd {version}"
    if previous is not None and previous.state == "running":
        text = (
            f"restarted after a crash: the previous run (pid {previous.pid}, started "
            f"{previous.at.isoformat()}) never stopped cleanly; recovering ({what})"
        )
        fields = (("previous_pid", str(previous.pid)), ("previous_start", previous.at.isoformat()))
        return Notice(NoticeKind.CRASH, Severity.WARNING, text, at, fields=fields)
    return Notice(NoticeKind.START, Severity.INFO, f"starting: recovering ({what})", at)


def ready(at: datetime, symbols: int, open_positions: int) -> Notice:
    """Recovery done; cycling."""
    text = f"ready: recovered, cycling {symbols} symbol(s); {open_positions} open position(s)"
    return Notice(NoticeKind.READY, Severity.INFO, text, at)


def stopping(at: datetime, cycles: int, failure: str | None) -> Notice:
    """A clean stop, or a stop after a failure (systemd starts it again)."""
    if failure is None:
        text = f"stopped cleanly after {cycles} cycle(s); protective orders stay on the exchange"
        return Notice(NoticeKind.STOP, Severity.INFO, text, at)
    text = (
        f"STOPPING after a failure ({failure}); protective orders stay on the exchange; "
        "systemd restarts it"
    )
    return Notice(NoticeKind.STOP, Severity.CRITICAL, text, at)


def failed_to_start(at: datetime, error: str) -> Notice:
    """Start-up ended before recovery (no cycle runs; systemd tries again)."""
    text = f"COULD NOT START: {error}"
    return Notice(NoticeKind.START, Severity.CRITICAL, text, at)
