"""The error hierarchy, named by what the caller should do next.

Adapters (ccxt, HTTP, SQLite) translate their own exceptions into these at the boundary with
``raise ... from e``, so the core never has to know which library failed, only what to do:

* :class:`RetryableError` — nothing happened; the same call may be repeated after a backoff.
* :class:`OutcomeUnknownError` — the request may or may not have taken effect (timeout, 5xx or a
  lost reply on an order). Never resend: look the order up by its client id first.
* :class:`RejectedError` — the venue refused this request; retrying it unchanged is pointless.
* :class:`StorageUnavailableError` — the database cannot be written now (disk full, read-only,
  I/O error): nothing was recorded. Take no new risk, keep every position protected from the
  venue's own state, and try again.
* :class:`FatalError` — stop trading and tell the operator (bad credentials, broken config).
* :class:`InvalidDataError` — an input (candle, prediction, CSV row) is malformed; drop it.
"""

from __future__ import annotations


class TbotdError(Exception):
    """Base of every error tbotd raises on purpose."""


class RetryableError(TbotdError):
    """A transient failure (network, 5xx on a read, rate limit): retry after a backoff."""


class RateLimitedError(RetryableError):
    """The venue asked us to slow down; ``retry_after_s`` says for how long when it said so."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OutcomeUnknownError(TbotdError):
    """The request may have been executed: resolve it by client id before doing anything else."""

    def __init__(self, message: str, client_order_id: str | None = None) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


class RejectedError(TbotdError):
    """The venue (or our own pre-trade checks) refused the request; nothing changed."""


class InsufficientMarginError(RejectedError):
    """Not enough margin for the order (Binance -2019)."""


class BelowMinimumError(RejectedError):
    """The order's quantity or notional is below the market minimum after rounding down."""


class OrderNotFoundError(RejectedError):
    """The venue does not know the order (Binance -2013 / -2011)."""


class StorageUnavailableError(TbotdError):
    """The database refused a write (disk full, read-only, I/O error); nothing was recorded."""


class FatalError(TbotdError):
    """Trading cannot continue safely; stop and alert the operator."""


class AuthError(FatalError):
    """Credentials were refused (bad key, bad signature, revoked token)."""


class ConfigError(FatalError):
    """The configuration is invalid; the message names every problem."""


class InstanceConflictError(ConfigError):
    """Another tbotd already uses this database (or account): the operator must choose one."""


class InvalidDataError(TbotdError, ValueError):
    """An input value is malformed (NaN price, misaligned candle, confidence > 1, ...): drop it."""


class InvalidTransitionError(TbotdError):
    """A state machine was asked for a transition it does not allow: a logic bug, never retried."""
