"""The one reader of candle CSV files: ``tbotd train``, ``tbotd backtest`` and ``tbotd sim`` all
read ``timestamp,open,high,low,close,volume`` (plain or gzipped) through :func:`read_candle_csv`,
so a file one of them accepts, the others accept, with the same messages for the same faults
(bad rows by line number: :func:`tbotd.ml.data.validate_frame`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tbotd.domain.errors import InvalidDataError
from tbotd.marketdata.cells import parse_floats
from tbotd.ml.data import CSV_COLUMNS, CandleData, validate_frame

_OLD_PANDAS = tuple(int(x) for x in pd.__version__.split(".")[:2]) < (3, 1)


def read_csv_fast(path: Path, dtypes: dict[str, str]) -> pd.DataFrame | None:
    """The CSV with numeric columns parsed by pandas' C reader, or None if a cell is not a number
    (the caller then reads it as text to name the bad lines).

    The round-trip converter (before pandas 3.1 asked for by name; from 3.1 pandas' only one)
    parses like Python's ``float()``, so a price reads back (``repr``) as the exact decimal text
    in the file; tests/unit/test_backtest_inputs.py checks that on awkward inputs.
    """
    extra = {"float_precision": "round_trip"} if _OLD_PANDAS else {}
    try:
        frame = pd.read_csv(path, dtype=dtypes, skip_blank_lines=False, **extra)
    except ValueError:
        return None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_candle_csv(path: Path) -> CandleData:
    """Candles checked row by row, with the numbers parsed exactly as Python's ``float()`` does:
    prices must read back as the decimal text the exchange wrote, since exits and fills are
    computed from them in Decimal. Bad input raises :class:`InvalidDataError` (exit 2)."""
    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file")
    try:
        numeric = read_csv_fast(path, dict.fromkeys(CSV_COLUMNS, "float64"))
        if numeric is None:
            raw = pd.read_csv(path, dtype=str, skip_blank_lines=False, keep_default_na=False)
            raw.columns = [str(c).strip() for c in raw.columns]
            cells = {c: raw[c].to_numpy(dtype=str) for c in CSV_COLUMNS if c in raw.columns}
            numeric = pd.DataFrame({c: parse_floats(v)[0] for c, v in cells.items()})
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise InvalidDataError(f"{path}: not a readable CSV ({e})") from e
    return validate_frame(numeric, str(path))
