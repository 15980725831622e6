"""Rows of the ``model_answers`` table: each model's own answer (or refusal) for a candle."""

from __future__ import annotations

import json
from typing import Any

from tbotd.domain.prediction import Prediction
from tbotd.domain.values import datetime_to_ms, ms_to_datetime

AnswerRow = tuple[Any, ...]


def answer_rows(prediction: Prediction) -> list[AnswerRow]:
    """One row per model that answered and per model whose answer was refused.

    A refused model never overwrites the answer of a model of the same name from this source
    (the first stands, as in the prediction), so refusals are keyed by their given name.
    """
    key = (prediction.symbol, datetime_to_ms(prediction.timestamp), prediction.source.value)
    rows: list[AnswerRow] = []
    for a in prediction.models:
        probabilities = None if a.probabilities is None else json.dumps(list(a.probabilities))
        until = None if a.trained_until is None else datetime_to_ms(a.trained_until)
        rows.append(
            (
                *key,
                a.name.value,
                a.version,
                probabilities,
                a.expected_return,
                a.sd,
                until,
                None,
                None,
            )
        )
    answered = {a.name.value for a in prediction.models}
    rows.extend(
        (*key, r.name, None, None, None, None, None, r.reason.value, r.detail)
        for r in prediction.refused
        if r.name not in answered
    )
    return rows


def answer_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as `/status` and `tbotd status` show it (absent outputs left out)."""
    out: dict[str, Any] = {"source": row["source"], "model": row["model"]}
    if row["refused"] is not None:
        return out | {"refused": row["refused"], "detail": row["detail"] or ""}
    out["version"] = row["version"]
    if row["probabilities"] is not None:
        out["probabilities"] = json.loads(row["probabilities"])
    for key in ("expected_return", "sd"):
        if row[key] is not None:
            out[key] = row[key]
    if row["trained_until"] is not None:
        out["trained_until"] = ms_to_datetime(row["trained_until"]).isoformat()
    return out
