"""A circuit breaker per remote endpoint: stop calling a service that keeps failing.

States:

* **closed** — calls go through; ``failure_threshold`` consecutive failures open the breaker.
* **open** — calls are refused at once (the caller falls back to the local models) until
  ``cooldown_s`` has passed since it opened.
* **half-open** — after the cooldown one probe call is let through: success closes the breaker,
  failure opens it again for another cooldown.

:meth:`CircuitBreaker.trip` opens it immediately, whatever the count: a refused token (401/403)
or a model whose feature schema differs from ours will not heal by retrying.
Time comes from an injected monotonic function, so tests move it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a cooldown and a single half-open probe."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        cooldown_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._probe_started = 0.0
        self.last_reason = ""

    @property
    def state(self) -> BreakerState:
        """Closed, open (cooling down) or half-open (a probe may go, or is going)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._monotonic() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def is_open(self) -> bool:
        """True unless closed (the gauge reports open and half-open alike)."""
        return self._opened_at is not None

    def allow(self) -> bool:
        """May a call go now? In half-open state only one probe is let through at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        now = self._monotonic()
        stale_probe = self._probing and now - self._probe_started >= self.cooldown_s
        if state is BreakerState.HALF_OPEN and (not self._probing or stale_probe):
            self._probing = True  # a probe that never reported back is replaced after a cooldown
            self._probe_started = now
            return True
        return False

    def retry_in_s(self) -> float:
        """Seconds until a probe is allowed (0 when calls may go now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._monotonic() - self._opened_at))

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self.last_reason = ""

    def record_failure(self, reason: str) -> bool:
        """A call failed; returns True if this opened the breaker (or kept it open)."""
        self._failures += 1
        self.last_reason = reason
        if self._probing or self._failures >= self.failure_threshold:
            self._open()
            return True
        return False

    def release(self) -> None:
        """The call that was allowed never reached the endpoint: free the probe slot."""
        self._probing = False

    def trip(self, reason: str) -> None:
        """Open now, whatever the failure count (auth refused, schema mismatch)."""
        self._failures = max(self._failures, self.failure_threshold)
        self.last_reason = reason
        self._open()

    def _open(self) -> None:
        self._opened_at = self._monotonic()
        self._probing = False
