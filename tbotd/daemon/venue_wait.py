"""Start-up waits for the exchange instead of exiting.

A reboot during network bring-up, an exchange's maintenance window or a `tbotd sim` started a
minute late would otherwise end `tbotd run` in a second — and, under systemd's start limit, leave
the unit failed with nobody managing the positions. So the first request (the venue's clock) is
retried with jittered, capped backoff for as long as it takes; each attempt is one log line with
the URL and the cause, `/readyz` and systemd's STATUS say what is awaited, and a stop signal
ends the wait cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tbotd.config.settings import is_loopback_host
from tbotd.domain.errors import RetryableError
from tbotd.ops.logs import get_logger
from tbotd.ops.retry import Backoff

log = get_logger(__name__)
_MIN_DELAY_S = 0.5  # never hammer: full jitter may draw 0


class StartCancelled(Exception):  # noqa: N818 - an outcome, not a fault: a stop while waiting
    """A stop was requested while waiting for the exchange: exit cleanly (0)."""


@dataclass
class StartupWait:
    """How the daemon waits: its stop event, where each attempt is reported, the backoff cap."""

    stop: asyncio.Event
    report: Callable[[str], None] = field(default=lambda _cause: None)
    cap_s: float = 30.0

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless a stop comes first; True when it did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()


def cause_of(error: BaseException) -> str:
    """The error and what lies under it: ccxt's message names the request but not why it
    failed (connection refused, DNS, TLS, timeout), which sits further down the chain."""
    parts = [str(error)]
    under = error.__cause__ or error.__context__
    for _ in range(5):
        if under is None:
            break
        text = str(under)
        if text and all(text not in p for p in parts):
            parts.append(f"{type(under).__name__}: {text}")
        under = under.__cause__ or under.__context__
    return " ← ".join(parts)


def hint(url: str) -> str:
    """What to check first for this URL."""
    host = urlsplit(url).hostname or ""
    if is_loopback_host(host):
        return "is `tbotd sim` (or the local exchange) running on that port?"
    return "check the network, DNS and the exchange's status page"


async def venue_time(
    fetch: Callable[[], Awaitable[int]], url: str, wait: StartupWait | None
) -> int:
    """The venue's time in epoch ms, waiting (see the module docstring) until it answers."""
    policy = Backoff(attempts=1, base_s=1.0, cap_s=wait.cap_s if wait else 30.0)
    attempt = 0
    while True:
        try:
            return int(await fetch())
        except RetryableError as e:
            if wait is None:
                raise
            cause = cause_of(e)
            delay = max(_MIN_DELAY_S, policy.delay(attempt))
            attempt += 1
            log.warning(
                "exchange unreachable at start; waiting",
                url=url, cause=cause, attempt=attempt, retry_in_s=round(delay, 1), hint=hint(url),
            )  # fmt: skip
            wait.report(cause)
            if await wait.pause(delay):
                raise StartCancelled(f"stopped while waiting for {url}") from e
