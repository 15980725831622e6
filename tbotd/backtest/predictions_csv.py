"""The predictions CSV of ``tbotd backtest --predictions`` (README: Backtesting, Input files): one
strict reader.

``timestamp,signal,confidence``, optionally ``stop_loss,take_profit`` or ``sd``, and each model's
own answer (:mod:`~tbotd.backtest.model_columns`). Every row is checked up front against the
rules of the Prediction schema, so a bad row fails the run at once with its line number instead
of half-way through.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.backtest.model_columns import (
    MODEL_COLUMNS,
    RETURN_COLUMN,
    header_problems,
    model_columns,
)
from tbotd.backtest.predictions import HOLD, SIGNAL_NAMES, PredictionTable
from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import InvalidDataError
from tbotd.marketdata.cells import listing, parse_floats, parse_times, plain_times

REQUIRED_COLUMNS = ("timestamp", "signal", "confidence")
OPTIONAL_COLUMNS = ("stop_loss", "take_profit", "sd", *MODEL_COLUMNS)
NUMERIC_DTYPES = {
    "timestamp": "str",
    "signal": "str",
    "confidence": "float64",
    "sd": "float64",
    "stop_loss": "str",
    "take_profit": "str",
    **dict.fromkeys(MODEL_COLUMNS, "float64"),
}
# the common file (integer ms, a handful of signal words) without a Python string per cell: the
# times as raw bytes for plain_times (17 wide so a longer cell shows, as there), the signal as
# codes of its few distinct words
FAST_DTYPES = {**NUMERIC_DTYPES, "timestamp": "S17", "signal": "category"}


def read_predictions_csv(
    path: Path, source: PredictionSource = PredictionSource.REMOTE
) -> PredictionTable:
    """Read ``timestamp,signal,confidence`` plus ``stop_loss,take_profit`` and/or ``sd``.

    Raises :class:`InvalidDataError` naming the file and every bad line (header is line 1).
    """
    from tbotd.marketdata.candle_csv import read_csv_fast

    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file")
    try:
        raw = read_csv_fast(path, FAST_DTYPES)
        times = None
        if raw is not None and list(raw.columns).count("timestamp") == 1:
            times = plain_times(raw["timestamp"])
        if times is None:  # ISO or odd times, or a bad cell: the text path names the lines
            raw = read_csv_fast(path, NUMERIC_DTYPES)
        if raw is None:  # a cell is not a number: read it as text to name the line
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
            raw.columns = [str(c).strip() for c in raw.columns]
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise InvalidDataError(f"{path}: not a readable CSV ({e})") from e
    return prediction_table(raw, str(path), source, times=times)


def _columns(raw: pd.DataFrame, origin: str) -> None:
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    unknown = [c for c in raw.columns if c not in allowed]
    duplicated = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    half = [c for c in ("stop_loss", "take_profit") if c in raw.columns]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if len(half) == 1:
        partner = "take_profit" if half[0] == "stop_loss" else "stop_loss"
        problems.append(f"{half[0]} needs its partner column {partner}")
    problems.extend(header_problems(list(raw.columns)))
    if problems:
        raise InvalidDataError(
            f"{origin}: line 1 (header): {'; '.join(problems)}. Expected "
            "timestamp,signal,confidence[,stop_loss,take_profit][,sd][,p_down,p_neutral,p_up]"
            f"[,regime_down,regime_sideways,regime_up][,{RETURN_COLUMN}]"
        )
    if raw.empty:
        raise InvalidDataError(f"{origin}: no prediction rows after the header")


def prediction_table(
    raw: pd.DataFrame,
    origin: str,
    source: PredictionSource = PredictionSource.REMOTE,
    first_line: int = 2,
    times: NDArray[np.int64] | None = None,
) -> PredictionTable:
    """Validate a frame of prediction text columns (as read from CSV) into a table.

    ``times``: the timestamp column already converted by :func:`plain_times` (the reader's fast
    path), so it is not converted twice.
    """
    _columns(raw, origin)
    n = len(raw)
    lines = np.arange(n, dtype=np.int64) + first_line
    found: list[tuple[int, str]] = []

    def flag(mask: NDArray[np.bool_], message: str) -> None:
        found.extend((int(x), message) for x in lines[mask])

    def col(name: str) -> NDArray[np.str_]:
        if name not in raw.columns:
            return np.full(n, "", dtype=str)
        return np.char.strip(raw[name].fillna("").to_numpy(dtype=str))

    def numbers(name: str) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Values (NaN where empty) and the cells that are not numbers."""
        if name in raw.columns and pd.api.types.is_float_dtype(raw[name]):
            return raw[name].to_numpy(np.float64, copy=True), np.zeros(n, dtype=bool)
        return parse_floats(col(name))

    if times is None:
        times = plain_times(raw["timestamp"])
    time_problems: list[tuple[int, str]] = []
    if times is None:
        times, time_problems = parse_times(col("timestamp"), lines)
    found.extend(time_problems)
    # a handful of distinct words; an empty cell (NaN) gets code -1, the lookup's last entry
    found_codes, distinct = pd.factorize(raw["signal"])
    known = {name: code for code, name in enumerate(SIGNAL_NAMES)}
    lookup = np.array([known.get(str(w).strip().lower(), -1) for w in distinct] + [-1], np.int8)
    signal = lookup[found_codes]
    flag(signal < 0, "signal must be one of long, short, neutral, hold")
    hold = signal == HOLD
    confidence, bad = numbers("confidence")
    flag(bad | ~hold & ~np.isfinite(confidence), "confidence is not a finite number")
    with np.errstate(invalid="ignore"):
        flag((confidence < 0) | (confidence > 1), "confidence is outside [0, 1]")
    sd, bad = numbers("sd")  # empty or NaN: no sd
    flag(bad | np.isinf(sd), "sd is not a finite number")
    with np.errstate(invalid="ignore"):
        flag((sd <= 0) | (sd >= 1), "sd must be a fraction of price strictly between 0 and 1")
    has_exits = "stop_loss" in raw.columns
    stop, take = col("stop_loss"), col("take_profit")
    if has_exits:
        for name, text in (("stop_loss", stop), ("take_profit", take)):
            value, bad = parse_floats(text)
            with np.errstate(invalid="ignore"):
                flag(
                    bad | (text != "") & ~(np.isfinite(value) & (value > 0)),
                    f"{name} is not a positive price",
                )
        flag((stop == "") != (take == ""), "stop_loss and take_profit come together or not at all")
        flag((stop != "") & np.isfinite(sd), "give either stop_loss/take_profit or sd, not both")
    if not time_problems:
        order = np.diff(times) <= 0
        flag(
            np.concatenate([[False], order]),
            "timestamp is not after the previous row's (duplicate or out of order)",
        )
    models, regime = model_columns(raw, numbers, flag, sd)
    if found:
        found.sort()
        raise InvalidDataError(listing(origin, [f"line {k}: {m}" for k, m in found]))
    confidence[hold] = np.nan
    return PredictionTable(
        time_ms=times,
        signal=signal,
        confidence=confidence,
        sd=sd,
        stop_loss=stop if has_exits else None,
        take_profit=take if has_exits else None,
        regime=regime,
        source=source,
        model_version=f"csv:{Path(origin).name}"[:128],
        origin=origin,
        lines=lines,
        models=models,
    )
