"""Malformed input never crashes tbotd: it is accepted, or refused with an error that says what is
wrong — and nothing is written on the way.

Hypothesis feeds the config loader (TOML text and ``TBOTD_*`` variables), the candle validator
(exchange rows, the feed's assembler), the prediction parser, and the backtest's CSV readers with
random and mutated input. The ops HTTP endpoint has its own file (test_fuzz_ops.py). Example
counts are fixed (``max_examples``) so a run's coverage is a figure: see docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import math
import tempfile
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tbotd.backtest.predictions_csv import read_predictions_csv
from tbotd.config import ConfigInvalidError, Settings, load_settings
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction, parse_prediction
from tbotd.marketdata.assembler import CandleAssembler
from tbotd.marketdata.candle_csv import read_candle_csv
from tbotd.marketdata.funding_csv import read_funding

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = "PLANTED-fuzz-secret-9d41c7"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=16)
    | st.sampled_from(["NaN", "inf", "-1", "1e400", "", " ", "0x10", "1_000", "é", "\x00"])
)
json_values = st.recursive(
    scalars.filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(call: Callable[[], Any], *errors: type[Exception]) -> Any:
    """``call()``'s result, or the exception (one of ``errors``) it raised; others propagate."""
    try:
        return call()
    except errors as e:
        return e


VALID_CONFIG = """instance = "fuzz"
[exchange]
market_type = "linear"
symbols = ["BTC/USDT:USDT"]
[strategy]
mode = "ml_usdt_directional"
share_class = "USDT"
initial_capital = "10000"
threshold = 0.7
[ml]
deadline_s = 3.0
[execution]
leverage = 1
[daemon]
grace_s = 3.0
"""
KEYS = [
    "instance",
    "exchange.symbols",
    "exchange.market_type",
    "exchange.timeframe",
    "exchange.base_url",
    "exchange.api_key",
    "strategy.threshold",
    "strategy.initial_capital",
    "ml.remote_url",
    "ml.token",
    "ml.deadline_s",
    "execution.mode",
    "execution.leverage",
    "ops.host",
    "ops.port",
    "ops.token",
    "daemon.time_scale",
    "log.level",
    "nonsense.key",
]


def toml_value(value: Any) -> str:
    """A TOML literal for ``value`` (JSON strings are TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def toml_text(config: dict[str, Any]) -> str:
    """``config`` (top-level keys and one level of tables) as TOML."""
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, table in config.items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A config text (a valid one with keys replaced or added, maybe garbled) and an
    environment that also carries planted secrets."""
    config: dict[str, Any] = tomllib.loads(VALID_CONFIG)
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        section, _, name = key.rpartition(".")
        table = config.setdefault(section, {}) if section else config
        table[name] = draw(scalars | st.lists(scalars, max_size=3))
    text = toml_text(config)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=8)) + text[at + draw(st.integers(0, 5)) :]
    environ = {"TBOTD_EXCHANGE__API_KEY": SECRET, "BASIS_ML_API_TOKEN": SECRET + "-ml"}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        environ["TBOTD_" + key.replace(".", "__").upper()] = draw(st.text(max_size=12))
    return text, environ


@FUZZ
@given(configs())
def test_config_loader_accepts_or_explains_never_crashes(
    case: tuple[str, dict[str, str]],
) -> None:
    """Any TOML text and environment: Settings, or ConfigInvalidError listing each problem with
    its source and key — never another exception, never a secret in the message, the file
    untouched."""
    text, environ = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = path.read_bytes()
        result = outcome(lambda: load_settings(path, environ), ConfigInvalidError)
        if isinstance(result, ConfigInvalidError):
            assert result.problems
            assert all(p.source and p.expected for p in result.problems)
            assert SECRET not in str(result)
        else:
            assert isinstance(result, Settings)
        assert path.read_bytes() == before
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["fuzz.toml"]


row_fields = (
    st.integers(-(10**16), 10**16)
    | st.floats()
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
    | st.sampled_from(["1e999", "-0", "NaN", "40000.5", "1" * 60])
)
ALIGNED = 1_709_276_400_000  # 2024-03-01 07:00 UTC, a 5m boundary


@st.composite
def exchange_rows(draw: st.DrawFn) -> list[Any]:
    """A ccxt OHLCV row, valid or with any field replaced, dropped or added."""
    row: list[Any] = [ALIGNED + 300_000 * draw(st.integers(-5, 5)), 40000, 40100, 39900, 40050, 3]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace" and row:
            row[draw(st.integers(0, len(row) - 1))] = draw(row_fields)
        elif action == "drop" and row:
            row.pop(draw(st.integers(0, len(row) - 1)))
        else:
            row.append(draw(row_fields))
    return row


@FUZZ
@given(st.lists(exchange_rows(), max_size=6))
@example([[float("nan"), 1, 1, 1, 1, 1]])  # found by a random-seed run: ValueError escaped
@example([[float("inf"), 1, 1, 1, 1, 1]])  # ... and OverflowError
def test_candle_rows_are_candles_or_named_rejections(rows: list[list[Any]]) -> None:
    """Exchange rows with bad fields: a valid Candle or InvalidDataError naming the candle; the
    feed's assembler turns the same rows into closed candles and rejections, never raising."""
    for row in rows:
        candle = outcome(partial(Candle.from_row, "BTC/USDT:USDT", "5m", row), InvalidDataError)
        if isinstance(candle, Candle):
            assert candle.low <= min(candle.open, candle.close) <= candle.high
        else:
            assert "candle" in str(candle)
    assembler = CandleAssembler("BTC/USDT:USDT", "5m", None)
    streamed = assembler.on_stream(rows)
    rested = assembler.on_rest(rows, datetime(2024, 3, 2, tzinfo=UTC))
    for assembled in (streamed, rested):
        assert all(isinstance(c, Candle) for c in assembled.closed)
        assert all("candle" in reason for reason in assembled.rejected)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_prediction_parser_accepts_or_explains(body: bytes) -> None:
    """Bytes or any JSON: a Prediction or InvalidDataError, nothing else."""
    parsed = outcome(lambda: parse_prediction(body), InvalidDataError)
    if isinstance(parsed, Prediction):
        assert 0 <= parsed.confidence <= 1
    else:
        assert str(parsed).startswith("invalid prediction")


CANDLE_HEADER = "timestamp,open,high,low,close,volume"
FUNDING_HEADER = "timestamp,funding_rate"
PREDICTION_HEADER = "timestamp,signal,confidence,sd"
cells = st.sampled_from(
    ["", "1", "40000", "0", "-1", "nan", "inf", "1e400", "abc", "long", "0.7", '"', "\x00"]
) | st.text(max_size=6)


@st.composite
def csv_texts(draw: st.DrawFn, header: str, good_row: list[str]) -> str:
    """A CSV: the header (maybe damaged), valid rows and rows with random cells."""
    lines = [header if draw(st.integers(0, 5)) else draw(st.text(max_size=30))]
    for i in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            row = list(good_row)
            row[0] = str(int(good_row[0]) + i * 300_000)
        else:
            row = draw(st.lists(cells, min_size=0, max_size=len(good_row) + 2))
        lines.append(",".join(row))
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


def read_or_explain(reader: Any, text: str) -> None:
    """``reader`` on a file holding ``text``: a result, or InvalidDataError naming the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = outcome(lambda: reader(path), InvalidDataError)
        if isinstance(result, InvalidDataError):
            assert str(path) in str(result)
        assert [p.name for p in Path(tmp).iterdir()] == ["input.csv"]


@FILES
@given(csv_texts(CANDLE_HEADER, [str(ALIGNED), "40000", "40100", "39900", "40050", "3"]))
def test_candle_csv_reader_accepts_or_explains(text: str) -> None:
    """The backtest's candle CSV reader: data, or an error naming the file (and lines)."""
    read_or_explain(read_candle_csv, text)


@FILES
@given(csv_texts(FUNDING_HEADER, ["1709251200000", "0.0001"]))
@example("timestamp,funding_rate\n²")  # found by a random-seed run: a Unicode digit crashed int()
def test_funding_csv_reader_accepts_or_explains(text: str) -> None:
    """The funding CSV reader: rates, or an error naming the file (and lines)."""
    read_or_explain(read_funding, text)


@FILES
@given(csv_texts(PREDICTION_HEADER, [str(ALIGNED), "long", "0.8", "0.004"]))
@example("timestamp,signal,confidence,sd\n¹,long,0.8,0.004")  # the same, in predictions
def test_prediction_csv_reader_accepts_or_explains(text: str) -> None:
    """The backtest's predictions CSV reader: a table, or an error naming the file (and lines)."""
    read_or_explain(read_predictions_csv, text)
