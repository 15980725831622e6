"""Domain constructors refuse bad input; orders follow their state machine; client ids are safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbotd.domain import (
    Candle,
    ExitPlan,
    ExitSource,
    Fill,
    FundingPayment,
    Order,
    OrderRole,
    OrderSide,
    OrderState,
    OrderType,
    Position,
    Prediction,
    PredictionSource,
    Side,
    Signal,
    client_order_id,
    parse_prediction,
)
from tbotd.domain.errors import InvalidDataError, InvalidTransitionError
from tbotd.domain.orders import ALLOWED_TRANSITIONS
from tbotd.domain.values import datetime_to_ms, ms_to_datetime, round_down, timeframe_ms

T0 = datetime(2024, 3, 1, 12, 5, tzinfo=UTC)
SYMBOL = "BTC/USDT:USDT"


def candle(**overrides: object) -> Candle:
    fields: dict[str, object] = {
        "symbol": SYMBOL,
        "timeframe": "5m",
        "open_time": T0,
        "open": "100",
        "high": "110",
        "low": "90",
        "close": "105",
        "volume": "12.5",
    }
    fields.update(overrides)
    return Candle(**fields)  # type: ignore[arg-type]


def test_valid_candle_parses_exchange_strings_exactly() -> None:
    """A candle built from exchange strings keeps every digit."""
    c = candle(open="100.10000000", close="99.3")
    assert c.open == Decimal("100.10000000")
    assert str(c.open) == "100.10000000"
    assert c.close_time == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"open": "NaN"}, "not a finite number"),
        ({"high": float("nan")}, "not a finite number"),
        ({"close": "Infinity"}, "not a finite number"),
        ({"low": float("-inf")}, "not a finite number"),
        ({"high": "80"}, "below low"),
        ({"open": "120"}, "outside"),
        ({"close": "85"}, "outside"),
        ({"volume": "-1"}, "negative"),
        ({"open_time": T0 + timedelta(minutes=1)}, "not aligned"),
        ({"open_time": datetime(2024, 3, 1, 12, 5)}, "time zone"),  # noqa: DTZ001 - the point
        ({"low": "0", "open": "0"}, "positive"),
        ({"timeframe": "5x"}, "timeframe"),
        ({"open": True}, "boolean"),
    ],
)
def test_candle_rejects_bad_input(overrides: dict[str, object], complaint: str) -> None:
    """Every malformed candle is refused with a message saying what is wrong."""
    with pytest.raises(InvalidDataError, match=complaint):
        candle(**overrides)


def test_candle_from_ccxt_row_copies_and_converts_other_zones_to_utc() -> None:
    """A ccxt row becomes a UTC candle; mutating the row afterwards changes nothing."""
    row: list[object] = [datetime_to_ms(T0), 1.5, 2.0, 1.0, 1.25, 3.0]
    c = Candle.from_row(SYMBOL, "5m", row)
    row[4] = 99.0
    assert c.close == Decimal("1.25")
    east = T0.astimezone(timezone(timedelta(hours=3)))
    assert candle(open_time=east).open_time.tzinfo is UTC


def test_candle_from_row_rejects_non_integer_timestamp() -> None:
    """A fractional millisecond timestamp is not a candle open time."""
    with pytest.raises(InvalidDataError, match="integer"):
        Candle.from_row(SYMBOL, "5m", [1.5, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("timestamp", [253_402_300_800_000, -(10**16), 10**30])
def test_candle_from_row_rejects_a_timestamp_beyond_the_calendar(timestamp: int) -> None:
    """A row dated past year 9999 is bad data (regression: OverflowError escaped the feed's
    parser and would have ended the candle stream)."""
    with pytest.raises(InvalidDataError, match="out of range"):
        Candle.from_row(SYMBOL, "5m", [timestamp, 1, 1, 1, 1, 1])


def prediction(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "symbol": SYMBOL,
        "timestamp": "2024-03-01T12:05:00Z",
        "signal": "long",
        "confidence": 0.8,
        "model_version": "dir-1",
        "source": "remote",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    "overrides",
    [
        {"confidence": 1.01},
        {"confidence": -0.1},
        {"confidence": float("nan")},
        {"confidence": "0.8"},
        {"signal": "buy"},
        {"timestamp": "2024-03-01T12:05:00"},
        {"sd": 0.0},
        {"sd": float("inf")},
        {"take_profit": "110"},
        {"take_profit": "-1", "stop_loss": "90"},
        {"take_profit": "110", "stop_loss": "90", "sd": 0.01},
        {"regime": {"trend_up": 0.5, "sideways": 0.1}},
        {"unexpected": 1},
        {"source": "somewhere"},
    ],
)
def test_prediction_rejects_bad_input(overrides: dict[str, object]) -> None:
    """Out-of-range, ambiguous or unknown prediction fields are rejected, not coerced."""
    with pytest.raises(InvalidDataError):
        parse_prediction(prediction(**overrides))


def test_prediction_round_trips_through_json() -> None:
    """A prediction serialised by tbotd parses back to an equal object."""
    p = parse_prediction(prediction(take_profit="110.5", stop_loss="95.25"))
    assert parse_prediction(p.model_dump_json()) == p
    assert p.take_profit == Decimal("110.5")


def test_prediction_for_another_candle_is_rejected() -> None:
    """A prediction is only used for the candle that just closed."""
    p = parse_prediction(prediction())
    assert p.check_for(SYMBOL, T0) is p
    with pytest.raises(InvalidDataError, match="expected the one that just closed"):
        p.check_for(SYMBOL, T0 + timedelta(minutes=5))
    with pytest.raises(InvalidDataError, match="expected"):
        p.check_for("ETH/USDT:USDT", T0)


def test_neutral_prediction_is_marked_as_such() -> None:
    """The fallback prediction says neutral, zero confidence, source neutral."""
    p = Prediction.neutral(SYMBOL, T0, "remote and local failed")
    assert (p.signal, p.confidence, p.source) == (Signal.NEUTRAL, 0.0, PredictionSource.NEUTRAL)


def order(**overrides: object) -> Order:
    fields: dict[str, object] = {
        "client_id": client_order_id("inst", SYMBOL, T0, OrderRole.ENTRY),
        "symbol": SYMBOL,
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "role": OrderRole.ENTRY,
        "qty": "0.010",
        "created_at": T0,
    }
    fields.update(overrides)
    return Order(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"qty": "0"}, "positive"),
        ({"qty": "NaN"}, "finite"),
        ({"client_id": "has space"}, "client id"),
        ({"client_id": "x" * 33}, "client id"),
        ({"type": OrderType.STOP_MARKET}, "trigger_price"),
        ({"type": OrderType.LIMIT}, "price"),
        ({"filled_qty": "1"}, "filled_qty"),
        ({"trigger_price": "-5", "type": OrderType.STOP_MARKET}, "positive"),
    ],
)
def test_order_rejects_bad_input(overrides: dict[str, object], complaint: str) -> None:
    """Malformed orders never exist."""
    with pytest.raises(InvalidDataError, match=complaint):
        order(**overrides)


def test_order_follows_its_state_machine() -> None:
    """Allowed transitions produce a new order; terminal states never change again."""
    sent = order().transition(OrderState.UNKNOWN, T0)
    filled = sent.transition(OrderState.FILLED, T0, filled_qty=Decimal("0.010"))
    assert filled.state is OrderState.FILLED
    assert filled.filled_qty == Decimal("0.010")
    for state in OrderState:
        with pytest.raises(InvalidTransitionError):
            filled.transition(state, T0)
    with pytest.raises(InvalidTransitionError):
        order().transition(OrderState.OPEN, T0).transition(OrderState.PENDING, T0)


def test_every_terminal_state_is_final() -> None:
    """The transition table has no way out of filled, canceled, rejected or expired."""
    for state, targets in ALLOWED_TRANSITIONS.items():
        assert (not targets) == state.is_terminal


@given(
    instance=st.text(min_size=1, max_size=40),
    symbol=st.text(min_size=1, max_size=30),
    minutes=st.integers(min_value=0, max_value=10**7),
    role=st.sampled_from(list(OrderRole)),
    seq=st.integers(min_value=0, max_value=1000),
)
def test_client_ids_are_short_alphanumeric_and_deterministic(
    instance: str, symbol: str, minutes: int, role: OrderRole, seq: int
) -> None:
    """Client ids fit every venue's rules and are the same every time they are derived."""
    when = ms_to_datetime(minutes * 300_000)
    cid = client_order_id(instance, symbol, when, role, seq)
    assert 1 <= len(cid) <= 32
    assert cid.isascii()
    assert cid.isalnum()
    assert cid == client_order_id(instance, symbol, when, role, seq)
    assert cid != client_order_id(instance, symbol, when, role, seq + 1)


def test_client_ids_differ_by_role_and_candle() -> None:
    """Entry, stop and take-profit of one candle, and the next candle's entry, never collide."""
    ids = {client_order_id("i", SYMBOL, T0, role) for role in OrderRole}
    ids.add(client_order_id("i", SYMBOL, T0 + timedelta(minutes=5), OrderRole.ENTRY))
    assert len(ids) == len(OrderRole) + 1


@pytest.mark.parametrize(
    ("cls", "fields", "complaint"),
    [
        (Position, {"qty": "0"}, "positive"),
        (Position, {"entry_price": "NaN"}, "finite"),
        (Position, {"opened_at": datetime(2024, 1, 1)}, "time zone"),  # noqa: DTZ001
        (Fill, {"qty": "-1"}, "positive"),
        (Fill, {"price": "Infinity"}, "finite"),
        (FundingPayment, {"mark_price": "0"}, "positive"),
        (FundingPayment, {"rate": "nan"}, "finite"),
    ],
)
def test_trading_records_reject_bad_input(
    cls: type, fields: dict[str, object], complaint: str
) -> None:
    """Positions, fills and funding refuse NaN, infinities, non-positive sizes, naive times."""
    defaults: dict[type, dict[str, object]] = {
        Position: {
            "symbol": SYMBOL,
            "side": Side.LONG,
            "qty": "1",
            "entry_price": "100",
            "opened_at": T0,
        },
        Fill: {
            "trade_id": "1",
            "client_order_id": "a",
            "symbol": SYMBOL,
            "side": OrderSide.BUY,
            "qty": "1",
            "price": "100",
            "fee": "0.05",
            "fee_currency": "USDT",
            "time": T0,
        },
        FundingPayment: {
            "symbol": SYMBOL,
            "time": T0,
            "rate": "0.0001",
            "position_qty": "1",
            "mark_price": "100",
            "amount": "-0.01",
            "currency": "USDT",
        },
    }
    with pytest.raises(InvalidDataError, match=complaint):
        cls(**(defaults[cls] | fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"source": ExitSource.PREDICTION, "sl_distance": "0.01", "tp_distance": "0.02"},
        {"source": ExitSource.VOLATILITY, "stop_loss": "90", "take_profit": "110"},
        {"source": ExitSource.FIXED, "sl_distance": "0.01"},
        {"source": ExitSource.FIXED, "sl_distance": "-0.01", "tp_distance": "0.02"},
    ],
)
def test_exit_plan_needs_exactly_one_consistent_pair(fields: dict[str, object]) -> None:
    """An exit plan is either two absolute prices or two positive distances."""
    with pytest.raises(InvalidDataError):
        ExitPlan(**fields)  # type: ignore[arg-type]


def test_value_helpers() -> None:
    """Timeframes parse, sizes round down, milliseconds convert exactly."""
    assert timeframe_ms("5m") == 300_000
    assert timeframe_ms("1h") == 3_600_000
    assert round_down(Decimal("0.0199"), Decimal("0.001")) == Decimal("0.019")
    assert datetime_to_ms(ms_to_datetime(1_700_000_000_123)) == 1_700_000_000_123


@pytest.mark.parametrize("timestamp", [10**30, -(10**30), 2**63])
def test_absurd_timestamps_are_rejected_not_crashing(timestamp: int) -> None:
    """A huge integer timestamp is a rejection, never an OverflowError escaping to the caller."""
    with pytest.raises(InvalidDataError):
        parse_prediction(prediction(timestamp=timestamp))
