"""Backtest inputs read back exactly: prices as the file's decimals, times in UTC, rates exact."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbotd.backtest import read_funding, read_predictions_csv
from tbotd.backtest.engine import dec
from tbotd.backtest.predictions_csv import NUMERIC_DTYPES, prediction_table
from tbotd.domain.errors import InvalidDataError
from tbotd.marketdata.candle_csv import read_candle_csv, read_csv_fast
from tbotd.marketdata.cells import parse_times, plain_times

START = 1_709_510_400_000  # 2024-03-04 00:00 UTC

# decimal prices of up to 15 significant digits, as exchanges write them
PRICE = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal(999999), places=5).map(
    lambda d: d.normalize()
)


@settings(max_examples=25, deadline=None)
@given(prices=st.lists(PRICE, min_size=2, max_size=60))
def test_candle_prices_read_back_as_the_decimals_in_the_file(
    tmp_path_factory: pytest.TempPathFactory, prices: list[Decimal]
) -> None:
    """Whatever pandas' C reader does, every price turns back into exactly the file's decimal
    (the exact step computes fills and exits from it)."""
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    for i, p in enumerate(prices):
        lines.append(f"{START + i * 300_000},{p},{p},{p},{p},{p}")
    path.write_text("\n".join(lines) + "\n")
    data = read_candle_csv(path)
    assert [dec(x) for x in data.frame["close"]] == prices


def test_prediction_times_in_ms_or_iso_with_any_offset_are_utc(tmp_path: Path) -> None:
    """Integer ms, `Z`, `+00:00` and `+02:00` all name the same instants in UTC."""
    path = tmp_path / "p.csv"
    path.write_text(
        "timestamp,signal,confidence,stop_loss,take_profit\n"
        f"{START},long,0.8,19000.5,21000.25\n"
        "2024-03-04T00:05:00Z,hold,,,\n"
        "2024-03-04T00:10:00+00:00,short,0.1,,\n"
        "2024-03-04T02:15:00+02:00,neutral,1,,\n"
    )
    table = read_predictions_csv(path)
    assert table.time_ms.tolist() == [START + k * 300_000 for k in range(4)]
    first = table.prediction(0, "BTC/USDT:USDT")
    assert first is not None
    assert (first.stop_loss, first.take_profit) == (Decimal("19000.5"), Decimal("21000.25"))
    assert table.prediction(1, "BTC/USDT:USDT") is None  # hold
    assert table.counts() == {"short": 1, "neutral": 1, "long": 1, "hold": 1}
    assert table.counts(0.7) == {"short": 0, "neutral": 1, "long": 1}


def test_funding_rates_are_exact_decimals(tmp_path: Path) -> None:
    """Rates keep every digit of the file."""
    path = tmp_path / "f.csv"
    pd.DataFrame(
        {"timestamp": [START, START + 28_800_000], "funding_rate": ["0.00010000", "-0.00012232"]}
    ).to_csv(path, index=False)
    assert read_funding(path) == {
        START: Decimal("0.0001"),
        START + 28_800_000: Decimal("-0.00012232"),
    }
    assert np.array_equal(np.array(list(read_funding(path))), np.array([START, START + 28_800_000]))


CELL = st.one_of(
    st.integers(min_value=0, max_value=10**17).map(str),
    st.text(alphabet="0123456789 +-.e²٣T:Z", min_size=0, max_size=18),
)


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(CELL, min_size=1, max_size=20))
def test_the_fast_timestamp_path_agrees_with_the_strict_parser(cells: list[str]) -> None:
    """The bytes-level reader of plain-digit times either declines (the strict parser then names
    the bad lines) or gives exactly the strict parser's numbers, never a third answer."""
    fast = plain_times(pd.Series(cells, dtype="str"))
    if fast is None:
        return
    slow, problems = parse_times(np.array(cells), np.arange(len(cells), dtype=np.int64))
    assert problems == []
    assert fast.tolist() == slow.tolist()
    assert all(c.isascii() and c.isdigit() and len(c) <= 16 for c in cells)


def _fields(value: object) -> list[object]:
    """A dataclass flattened to comparable values (arrays as dtype, shape and NaN-aware list)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [_fields(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, np.ndarray):
        cells = value.astype(str) if value.dtype.kind == "f" else value  # NaN == NaN as "nan"
        return [value.dtype.str, value.shape, cells.tolist()]
    return [value]


def test_integer_and_iso_times_give_the_same_table(tmp_path: Path) -> None:
    """A predictions file reads the same whether its times are integer ms (the fast reader) or
    ISO-8601 (the text reader): same times, signals, confidences, sd and exits."""
    rows = [
        ("long", "0.8", "", "19000.5", "21000.25"),
        ("hold", "", "", "", ""),
        ("Short", "0.1", "0.004", "", ""),
        ("neutral", "1", "", "", ""),
    ]
    tables = []
    for kind in ("ms", "iso"):
        path = tmp_path / kind / "p.csv"
        path.parent.mkdir()
        lines = ["timestamp,signal,confidence,sd,stop_loss,take_profit"]
        for k, row in enumerate(rows):
            ms = START + k * 300_000
            iso = pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
            lines.append(",".join((str(ms) if kind == "ms" else iso, *row)))
        path.write_text("\n".join(lines) + "\n")
        tables.append(read_predictions_csv(path))
    fast, text = tables
    assert fast.time_ms.tolist() == [START + k * 300_000 for k in range(4)]
    assert _fields(replace(fast, origin="", model_version="")) == _fields(
        replace(text, origin="", model_version="")
    )


ODD_TIME = st.one_of(
    st.integers(min_value=START, max_value=START + 10**9).map(str),
    st.sampled_from(["+" + str(START), "0" * 4 + str(START), f" {START}", "", "NA", "1e12"]),
    st.text(alphabet="0123456789 +-.e²٣T:Z", min_size=0, max_size=18),
)
ODD_SIGNAL = st.sampled_from(["long", " Short ", "HOLD", "neutral", "", "NA", "nan", "1", "x"])


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(ODD_TIME, ODD_SIGNAL), min_size=1, max_size=12))
def test_the_fast_reader_answers_as_the_text_reader(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    """Odd timestamp and signal cells (signs, spaces, leading zeros, blanks, NA) get exactly the
    table or the error, naming the same lines, that reading every cell as text gives."""
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    body = "".join(f"{t},{s},0.5\n" for t, s in rows)
    path.write_text("timestamp,signal,confidence\n" + body)
    text = read_csv_fast(path, NUMERIC_DTYPES)
    assert text is not None
    try:
        expected: object = _fields(prediction_table(text, str(path)))
    except InvalidDataError as e:
        expected = str(e)
    try:
        got: object = _fields(read_predictions_csv(path))
    except InvalidDataError as e:
        got = str(e)
    assert got == expected
