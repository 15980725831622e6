"""Checking the cells of untrusted CSVs (predictions, funding): times and numbers, each problem
kept with its line so a bad file is named line by line."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.domain.values import ms_to_datetime

MAX_LISTED = 20


def listing(source: str, problems: list[str], what: str = "bad row(s)") -> str:
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  … and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{source}: {len(problems)} {what}:\n  {listed}{more}"


_WIDTH = 16  # epoch milliseconds have 13 digits; 16 is years beyond 2200 in microseconds
_POWERS = 10 ** np.arange(_WIDTH - 1, -1, -1, dtype=np.int64)
_EIGHT = 10.0 ** np.arange(_WIDTH // 2 - 1, -1, -1)


def plain_times(column: pd.Series) -> NDArray[np.int64] | None:
    """Integer epoch ms when every cell is 1-16 plain ASCII digits (what tbotd and exchanges
    write), checked and converted on the bytes at numpy speed (the column may already be those
    bytes: :func:`~tbotd.backtest.read_predictions_csv` has pandas read it so, sparing a Python
    string per cell); None sends the column to
    :func:`parse_times` (ISO-8601, spaces, and naming the bad lines), which gives the same
    numbers for these."""
    try:  # one byte more than allowed: a longer cell leaves its 17th byte set (cut there or not)
        text = np.array(column.to_numpy(), dtype=f"S{_WIDTH + 1}")
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
    if len(text) == 0:
        return None
    code = text.view(np.uint8).reshape(len(text), _WIDTH + 1)
    if code[:, _WIDTH].any():
        return None
    code = code[:, :_WIDTH]
    digit = (code >= 48) & (code <= 57)
    padded = (digit | (code == 0)).all() and digit[:, 0].all()
    if not padded or (np.diff(digit.astype(np.int8), axis=1) > 0).any():  # a digit after a NUL
        return None
    # read left-aligned (NUL padding as 0: a digit's low four bits are its value, a NUL's are 0),
    # eight digits at a time (exact in float64, so the product runs in BLAS), then drop the
    # padding's powers of ten exactly in int64; the digits are a prefix, so their count is the
    # length without the NUL padding
    d = (code & 15).astype(np.float64)
    half = _WIDTH // 2
    high = (d[:, :half] @ _EIGHT).astype(np.int64)
    low = (d[:, half:] @ _EIGHT).astype(np.int64)
    left = high * 10**half + low
    return np.asarray(left // _POWERS[np.char.str_len(text) - 1], dtype=np.int64)


def parse_times(
    values: NDArray[np.str_], lines: NDArray[np.int64]
) -> tuple[NDArray[np.int64], list[tuple[int, str]]]:
    """Integer epoch milliseconds or ISO-8601 with a time zone → ms; problems as (line, text)."""
    text = np.char.strip(values.astype(str))
    ascii_ = np.fromiter((t.isascii() for t in text.tolist()), dtype=bool, count=len(text))
    # str.isdigit is true for '²' and other Unicode digits int() refuses: ASCII only
    digits = ascii_ & np.char.isdigit(text) & (np.char.str_len(text) <= 16)
    out = np.zeros(len(text), dtype=np.int64)
    if digits.any():
        out[digits] = text[digits].astype(np.int64)
    problems: list[tuple[int, str]] = []
    for j in np.flatnonzero(~digits):
        value = str(text[j])
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            problems.append(
                (int(lines[j]), f"timestamp {value!r} is neither integer ms nor ISO-8601")
            )
            continue
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            problems.append(
                (int(lines[j]), f"timestamp {value!r} has no time zone (use Z or +00:00)")
            )
            continue
        delta = parsed - ms_to_datetime(0)
        out[j] = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return out, problems


def parse_floats(values: NDArray[np.str_]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Decimal text → float64 (exactly as Python's float() rounds it); empty → NaN.

    Returns the values and a mask of non-empty cells that are not numbers.
    """
    text = np.char.strip(values.astype(str))
    empty = text == ""
    out = np.full(len(text), np.nan)
    bad = np.zeros(len(text), dtype=bool)
    filled = np.flatnonzero(~empty)
    try:
        out[filled] = text[filled].astype(np.float64)
    except ValueError:
        for j in filled:
            try:
                out[j] = float(text[j])
            except ValueError:
                bad[j] = True
    return out, bad
