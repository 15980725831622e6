"""ccxt's exceptions become tbotd's errors at the boundary, named by what to do next."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from tbotd.domain.errors import (
    AuthError,
    InsufficientMarginError,
    OrderNotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from tbotd.execution.venue import (
    ClockSkewError,
    ImmediateTriggerError,
    ReduceOnlyRejectedError,
    translate,
)


@pytest.mark.parametrize(
    ("raised", "write", "expected"),
    [
        (ccxt.RequestTimeout("t"), True, OutcomeUnknownError),
        (ccxt.RequestTimeout("t"), False, RetryableError),
        (ccxt.ExchangeNotAvailable("503"), True, OutcomeUnknownError),
        (ccxt.NetworkError("closed"), False, RetryableError),
        (ccxt.BadResponse("-1007"), True, OutcomeUnknownError),
        (ccxt.DDoSProtection("429"), True, RateLimitedError),
        (ccxt.RateLimitExceeded("429"), False, RateLimitedError),
        (ccxt.InvalidNonce("-1021"), True, ClockSkewError),
        (ccxt.AuthenticationError("-2015"), False, AuthError),
        (ccxt.InsufficientFunds("-2019"), True, InsufficientMarginError),
        (ccxt.OrderNotFound("-2013"), False, OrderNotFoundError),
        (ccxt.OrderImmediatelyFillable("-2021"), True, ImmediateTriggerError),
        (
            ccxt.InvalidOrder('binanceusdm {"code":-2022,"msg":"ReduceOnly Order is rejected."}'),
            True,
            ReduceOnlyRejectedError,
        ),
        (ccxt.InvalidOrder("-4164 notional"), True, RejectedError),
        (ccxt.ExchangeError("-1111 precision"), True, RejectedError),
    ],
)
def test_ccxt_errors_are_named_by_what_to_do(
    raised: Exception, write: bool, expected: type[Exception]
) -> None:
    """A lost answer to a write is 'unknown outcome', never 'failed'; 429 is 'retry later'."""
    translated = translate(raised, write)
    assert type(translated) is expected
    assert not isinstance(translated, OutcomeUnknownError) or write


def test_a_refused_timestamp_tells_the_operator_to_fix_the_clock() -> None:
    """-1021 says what to do (synchronise the clock), is retryable, and keeps the venue's words."""
    error = translate(ccxt.InvalidNonce('{"code":-1021,"msg":"Timestamp ... ahead"}'), True)
    assert isinstance(error, RetryableError)
    assert "clock synchronised" in str(error)
    assert "-1021" in str(error)
