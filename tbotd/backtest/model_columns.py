"""Each model's own answer in a backtest's prediction table (README: Backtesting, Input files).

A predictions CSV may carry, besides the combined call, what each model said: the direction
model's ``p_down,p_neutral,p_up``, the regime model's ``regime_down,regime_sideways,regime_up``
(or the older spelling ``p_trend_down,p_sideways,p_trend_up``; one spelling per file) and the
price model's ``expected_return`` (with the row's ``sd``: that model answers both). An absent
column, or an empty cell, is that model absent on that row — never a default. ``--models``
tables carry all three, computed as the daemon's predictor computes them. Rows are arrays, like
the rest of the table; :meth:`ModelColumns.answers` builds one row's
:class:`~tbotd.domain.answers.ModelAnswer` tuple, :meth:`ModelColumns.arrays` what the strategies
read of every bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.domain.answers import PROBABILITY_SUM_TOLERANCE, ModelAnswer, ModelName
from tbotd.strategy.model_inputs import ModelArrays

DIRECTION_COLUMNS = ("p_down", "p_neutral", "p_up")
REGIME_COLUMNS = ("regime_down", "regime_sideways", "regime_up")
LEGACY_REGIME_COLUMNS = ("p_trend_down", "p_sideways", "p_trend_up")
RETURN_COLUMN = "expected_return"
MODEL_COLUMNS = (*DIRECTION_COLUMNS, *REGIME_COLUMNS, *LEGACY_REGIME_COLUMNS, RETURN_COLUMN)

Numbers = Callable[[str], tuple[NDArray[np.float64], NDArray[np.bool_]]]
Flag = Callable[[NDArray[np.bool_], str], None]


def _three(values: NDArray[np.float64]) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


@dataclass(frozen=True)
class ModelColumns:
    """Per row: the direction model's P(down, neutral, up) and the regime model's
    P(trend_down, sideways, trend_up) ([N, 3], NaN rows: no answer; None: no such column), the
    price model's expected return ([N], NaN: no answer; its ``sd`` is the table's)."""

    direction: NDArray[np.float64] | None = None
    expected_return: NDArray[np.float64] | None = None
    regime: NDArray[np.float64] | None = None

    def keep(self, mask: NDArray[np.bool_]) -> ModelColumns:
        """Only the rows in ``mask``."""

        def kept(values: NDArray[Any] | None) -> Any:
            return None if values is None else values[mask]

        return ModelColumns(kept(self.direction), kept(self.expected_return), kept(self.regime))

    def answers(self, k: int, sd: NDArray[np.float64], version: str) -> tuple[ModelAnswer, ...]:
        """Row ``k``'s answers, in the order the local models give them."""
        out = []
        if self.direction is not None and np.isfinite(self.direction[k]).all():
            out.append(
                ModelAnswer(
                    name=ModelName.DIRECTION,
                    version=version,
                    probabilities=_three(self.direction[k]),
                )
            )
        if self.expected_return is not None and np.isfinite(self.expected_return[k]):
            out.append(
                ModelAnswer(
                    name=ModelName.VOLATILITY,
                    version=version,
                    expected_return=float(self.expected_return[k]),
                    sd=float(sd[k]),
                )
            )
        if self.regime is not None and np.isfinite(self.regime[k]).all():
            out.append(
                ModelAnswer(
                    name=ModelName.REGIME, version=version, probabilities=_three(self.regime[k])
                )
            )
        return tuple(out)

    def arrays(
        self, k: NDArray[np.int64], use: NDArray[np.bool_], sd: NDArray[np.float64]
    ) -> ModelArrays:
        """What the strategies see on each bar: row ``k[i]`` where ``use[i]``, nothing elsewhere."""
        out = ModelArrays.none(len(k))
        rows = k[use]
        if self.direction is not None:
            out.direction[use] = self.direction[rows]
        if self.regime is not None:
            out.regime[use] = self.regime[rows]
        if self.expected_return is not None:
            ret = self.expected_return[rows]
            out.expected_return[use] = ret
            out.sd[use] = np.where(np.isfinite(ret), sd[rows], np.nan)
        return out


def header_problems(columns: list[str]) -> list[str]:
    """What is wrong with the model columns of a header (three-column groups come whole, the
    regime model in one spelling)."""
    problems = []
    for group, what in (
        (DIRECTION_COLUMNS, "direction probabilities"),
        (REGIME_COLUMNS, "regime probabilities"),
        (LEGACY_REGIME_COLUMNS, "regime probabilities"),
    ):
        found = [c for c in group if c in columns]
        if found and len(found) < len(group):
            problems.append(f"{what} need all of {', '.join(group)}")
    if any(c in columns for c in REGIME_COLUMNS) and any(
        c in columns for c in LEGACY_REGIME_COLUMNS
    ):
        problems.append(
            f"regime probabilities are given twice: use {','.join(REGIME_COLUMNS)} or "
            f"{','.join(LEGACY_REGIME_COLUMNS)}, not both"
        )
    return problems


def probabilities(
    raw: pd.DataFrame, names: tuple[str, ...], what: str, numbers: Numbers, flag: Flag
) -> NDArray[np.float64] | None:
    """Three probability columns as [n, 3] (NaN where a row has none), bad rows flagged."""
    if names[0] not in raw.columns:
        return None
    parts = [numbers(name) for name in names]
    values = np.stack([v for v, _ in parts], axis=1)
    bad = np.asarray(np.any([b for _, b in parts], axis=0), dtype=bool)
    with np.errstate(invalid="ignore"):
        outside = np.asarray(((values < 0) | (values > 1)).any(axis=1), dtype=bool)
        total = values.sum(axis=1)
    given = np.isfinite(values)
    some = np.asarray(given.any(axis=1), dtype=bool)
    every = np.asarray(given.all(axis=1), dtype=bool)
    flag(bad | (some & ~every), f"{what} come together")
    flag(outside, f"{what} must lie in [0, 1]")
    flag(every & (np.abs(total - 1) > PROBABILITY_SUM_TOLERANCE), f"{what} must sum to 1")
    return values


def model_columns(
    raw: pd.DataFrame, numbers: Numbers, flag: Flag, sd: NDArray[np.float64]
) -> tuple[ModelColumns, NDArray[np.float64] | None]:
    """The model columns of a CSV frame, and the regime probabilities (either spelling) that
    also stand for the combined prediction's ``regime``."""
    direction = probabilities(raw, DIRECTION_COLUMNS, "direction probabilities", numbers, flag)
    names = REGIME_COLUMNS if REGIME_COLUMNS[0] in raw.columns else LEGACY_REGIME_COLUMNS
    regime = probabilities(raw, names, "regime probabilities", numbers, flag)
    ret = None
    if RETURN_COLUMN in raw.columns:
        ret, bad = numbers(RETURN_COLUMN)
        flag(bad | np.isinf(ret), "expected_return is not a finite number")
        with np.errstate(invalid="ignore"):
            flag((ret <= -1) | (ret >= 1), "expected_return must lie strictly between -1 and 1")
        flag(
            np.isfinite(ret) & ~np.isfinite(sd),
            "expected_return needs the row's sd (the price model answers both)",
        )
    return ModelColumns(direction, ret, regime), regime
