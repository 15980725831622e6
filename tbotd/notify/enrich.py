"""An entry's provenance, read from the records of the decision that opened it.

The broker knows the fill; the decision's records know why: the prediction (signal,
confidence, source, model) and, where the strategy records one, the decision's provenance
(classic only, ML-confirmed, boosted, …, README: Strategies). Read at send time, off the cycle.
"""

from __future__ import annotations

from datetime import datetime

from tbotd.domain.notices import Notice, NoticeKind
from tbotd.domain.values import datetime_to_ms
from tbotd.notify.summary import Records


def provenance_fields(
    prediction: dict[str, object] | None, decision: dict[str, object] | None
) -> tuple[tuple[str, str], ...]:
    """``prediction`` and ``provenance``/``strategy`` fields from the two rows (pure)."""
    fields: list[tuple[str, str]] = []
    if prediction is not None:
        text = f"{prediction.get('signal')} {float(str(prediction.get('confidence'))):.2f}"
        text += f" from {prediction.get('source')}"
        if prediction.get("model_version"):
            text += f" ({prediction['model_version']})"
        fields.append(("prediction", text))
    if decision is not None:
        fields.extend(
            (name, str(decision[name])) for name in ("provenance", "strategy") if decision.get(name)
        )
    return tuple(fields)


def enrich(notice: Notice, records: Records) -> Notice:
    """An entry notice with its provenance when its decision's records are there."""
    candle = dict(notice.fields).get("candle_time")
    if notice.kind is not NoticeKind.ENTRY or not candle or notice.symbol is None:
        return notice
    key = (notice.symbol, datetime_to_ms(datetime.fromisoformat(candle)))
    where = "WHERE symbol = ? AND candle_time = ?"
    predictions = records.query(f"SELECT * FROM predictions {where}", key)  # noqa: S608
    decisions = records.query(f"SELECT * FROM decisions {where} ORDER BY id DESC", key)  # noqa: S608
    extra = provenance_fields(
        predictions[0] if predictions else None, decisions[0] if decisions else None
    )
    return notice.with_fields(*extra) if extra else notice
