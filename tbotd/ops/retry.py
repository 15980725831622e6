"""The one retry helper: capped exponential backoff with full jitter, for retryable errors only.

Only :class:`~tbotd.domain.errors.RetryableError` is retried (a ``Retry-After`` the error
carries is honoured: the remote predictor's 429s carry one, the exchange's do not, since
``execution/venue.py::translate`` does not read it); an
:class:`~tbotd.domain.errors.OutcomeUnknownError` or a rejection is never retried here,
because resending an order whose fate is unknown is how bots double their positions.

An optional ``deadline`` (an instant of ``clock``) bounds the whole retry loop: a backoff that
would end after it is not slept — the last error is raised at once, so a caller with a per-cycle
budget (the remote ML client) falls back instead of sleeping through its budget.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from tbotd.domain.errors import RateLimitedError, RetryableError
from tbotd.ops.clock import Clock, SystemClock
from tbotd.ops.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry policy: ``attempts`` in total, sleeps of random(0, min(cap, base·2ⁿ)) seconds."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """The longest delay before retry number ``attempt`` (0-based): base·2ⁿ, capped. Also
        a spacing with no jitter, for callers who need a floor between tries (a draw can be 0)."""
        # the exponent is bounded: after days of failures 2**n would not fit in a float
        return min(self.cap_s, self.base_s * (2.0 ** min(attempt, 60)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter delay before retry number ``attempt`` (0-based)."""
        return (rng or random).uniform(0, self.ceiling(attempt))


async def retry(
    call: Callable[[], Awaitable[T]],
    what: str,
    policy: Backoff = Backoff(),
    clock: Clock | None = None,
    rng: random.Random | None = None,
    deadline: datetime | None = None,
) -> T:
    """Await ``call()``; on a RetryableError back off and try again, up to ``policy.attempts``.

    With ``deadline``, a retry whose backoff (or ``Retry-After``) would end after that instant
    of ``clock`` is not attempted: the error is raised instead.
    """
    clock = clock or SystemClock()
    for attempt in range(policy.attempts):
        try:
            return await call()
        except RetryableError as e:
            if attempt + 1 >= policy.attempts:
                raise
            delay = policy.delay(attempt, rng)
            if isinstance(e, RateLimitedError) and e.retry_after_s is not None:
                delay = max(delay, e.retry_after_s)
            if deadline is not None and clock.now() + timedelta(seconds=delay) >= deadline:
                log.warning(
                    "not retrying: the backoff would pass the deadline",
                    what=what,
                    attempt=attempt + 1,
                    delay_s=round(delay, 3),
                    error=str(e),
                )
                raise
            log.warning(
                "retrying", what=what, attempt=attempt + 1, delay_s=round(delay, 3), error=str(e)
            )
            await clock.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
