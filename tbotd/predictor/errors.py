"""Why a prediction source failed, named by what the fallback chain does about it.

Every remote failure is a :class:`RemoteError` carrying a short ``reason`` label (the value of the
``reason`` label of ``tbotd_prediction_failures_total``). The retry helper retries exactly the
ones that are also :class:`~tbotd.domain.errors.RetryableError` (connect errors, 5xx, 408, 429);
the rest end the remote attempt at once and the chain falls back to the local models.

A :class:`Rejection` is the per-symbol counterpart: the response as a whole was usable, but this
symbol's entry was not (wrong candle, confidence out of range, NaN, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from tbotd.domain.errors import (
    AuthError,
    InvalidDataError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    TbotdError,
)


class RemoteError(TbotdError):
    """The remote source gave no usable answer; ``reason`` labels the failure in metrics."""

    reason = "error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RemoteRetryableError(RemoteError, RetryableError):
    """Connection refused or reset, 5xx, 408: worth another attempt within the deadline."""

    reason = "connect"


class RemoteRateLimitedError(RemoteError, RateLimitedError):
    """429: retried after ``Retry-After`` when that still fits the deadline."""

    reason = "http_429"

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        RemoteError.__init__(self, message)
        self.retry_after_s = retry_after_s


class RemoteTimeoutError(RemoteError):
    """No answer within the request timeout or the cycle's deadline (never retried)."""

    reason = "timeout"


class RemoteAuthError(RemoteError, AuthError):
    """401/403: the token was refused; alert the operator, open the breaker, fall back."""

    reason = "auth"

    def __init__(self, message: str, status: int) -> None:
        RemoteError.__init__(self, message)
        self.status = status


class RemoteHTTPError(RemoteError, RejectedError):
    """Any other non-success status (3xx, 4xx): the request itself is wrong; not retried."""

    reason = "http_4xx"


class InvalidResponseError(RemoteError, InvalidDataError):
    """The body is not what the protocol promises (garbage, wrong shape, wrong id)."""

    reason = "invalid_response"


class SchemaMismatchError(RemoteError):
    """The served model's inputs or feature schema differ from the features tbotd computes."""

    reason = "schema_mismatch"


class RemoteNotReadyError(RemoteError):
    """``GET /v2/health/ready`` (or the model's ready route) did not answer 200."""

    reason = "not_ready"


class BreakerOpenError(RemoteError):
    """The endpoint's circuit breaker is open: the remote was not called at all."""

    reason = "breaker_open"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One symbol's answer was refused: ``reason`` is the metrics label, ``detail`` says why."""

    reason: str
    detail: str
