"""Model shelf life (``ml.max_model_age_days``): a model past it abstains instead of trading.

A model's age is counted from the end of the data it was trained on — the manifest's training
window end for local models, ``trained_until`` in a remote model's answer (prediction schema 2)
— to the injected clock's now. Pure: the chain (:mod:`tbotd.predictor.fallback`) applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tbotd.domain.prediction import Prediction


@dataclass(frozen=True, slots=True)
class Expiry:
    """Why a model is past its shelf life: which model, trained until when, how old it is."""

    model: str
    trained_until: datetime
    age_days: float
    max_age_days: float

    def __str__(self) -> str:
        return (
            f"{self.model} trained until {self.trained_until.isoformat()} is "
            f"{self.age_days:.1f} days old (ml.max_model_age_days = {self.max_age_days:g})"
        )


def expiry_of(
    model: str, trained_until: datetime | None, now: datetime, max_age_days: float | None
) -> Expiry | None:
    """The model's expiry when it is older than ``max_age_days`` (None: no limit, or no date)."""
    if max_age_days is None or trained_until is None:
        return None
    age = (now - trained_until) / timedelta(days=1)
    return Expiry(model, trained_until, age, max_age_days) if age > max_age_days else None


def expired_answer(
    prediction: Prediction, now: datetime, max_age_days: float | None
) -> Expiry | None:
    """The first of a prediction's model answers that is past its shelf life, if any."""
    for answer in prediction.models:
        found = expiry_of(
            f"{answer.name}@{answer.version}", answer.trained_until, now, max_age_days
        )
        if found is not None:
            return found
    return None
