"""Every model's own answer for a candle (prediction schema 2, README: Remote predictions).

A prediction used to carry one combined call; the pure-ML strategies need each model's output to
gate by regime and to vote. A :class:`ModelAnswer` is one model's output, exactly as that model
gives it:

* ``direction`` → ``probabilities`` = P(down, neutral, up);
* ``volatility`` (the price model) → ``expected_return`` and ``sd`` of the forward return, as
  fractions of price;
* ``regime`` → ``probabilities`` = P(trend_down, sideways, trend_up).

Bad answers are refused one by one (:func:`split_answers`): an unknown model name, probabilities
that do not sum to 1, a negative ``sd`` or a field of the wrong shape make *that* model abstain
with a :class:`RefusalReason`; the other models still vote. A missing model is absent, never filled
with a default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tbotd.domain.wire import UtcTime

PROBABILITY_SUM_TOLERANCE = 1e-3
MAX_MODELS = 16  # per source and candle; more is a malformed answer, not a richer one


class ModelName(StrEnum):
    """The models a prediction can carry an answer from (the local model set's names)."""

    DIRECTION = "direction"
    VOLATILITY = "volatility"
    REGIME = "regime"


class RefusalReason(StrEnum):
    """Why one model's answer was refused (that model abstains; the others still vote)."""

    UNKNOWN_MODEL = "unknown_model"
    BAD_SHAPE = "bad_shape"
    PROBABILITIES_NOT_ONE = "probabilities_not_one"
    NEGATIVE_SD = "negative_sd"
    DUPLICATE_MODEL = "duplicate_model"


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ModelAnswer(BaseModel):
    """One model's output for the candle; which fields it has is fixed by ``name``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    name: Annotated[ModelName, Field(strict=False)]
    version: Annotated[str, Field(min_length=1, max_length=128)]
    probabilities: (
        Annotated[tuple[Probability, Probability, Probability], Field(strict=False)] | None
    ) = None
    expected_return: Annotated[float, Field(gt=-1.0, lt=1.0)] | None = None
    sd: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    trained_until: UtcTime | None = None  # end of the training window, when the model says

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> ModelAnswer:
        if self.name is ModelName.VOLATILITY:
            if self.expected_return is None or self.sd is None or self.probabilities is not None:
                raise ValueError("volatility answers carry expected_return and sd only")
        elif self.probabilities is None or self.expected_return is not None or self.sd is not None:
            raise ValueError(f"{self.name} answers carry probabilities only")
        if self.probabilities is not None and not math.isclose(
            sum(self.probabilities), 1.0, abs_tol=PROBABILITY_SUM_TOLERANCE
        ):
            raise ValueError(f"probabilities sum to {sum(self.probabilities):.4f}, not 1")
        if self.trained_until is not None and self.trained_until.utcoffset() is None:
            raise ValueError("trained_until must carry a time zone (UTC)")
        return self


class ModelRefusal(BaseModel):
    """A model whose answer was refused: its name as given (clipped) and why."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Annotated[str, Field(max_length=64)]
    reason: Annotated[RefusalReason, Field(strict=False)]
    detail: Annotated[str, Field(max_length=200)] = ""


def _refusal(raw: Any, reason: RefusalReason, detail: str) -> ModelRefusal:
    name = raw.get("name") if isinstance(raw, dict) else None
    return ModelRefusal(
        name=str(name)[:64] if name is not None else "?", reason=reason, detail=detail[:200]
    )


def _reason_for(raw: Any, error: ValidationError) -> RefusalReason:
    """The named reason for a refused answer, from what was wrong with it."""
    if isinstance(raw, dict) and raw.get("name") not in tuple(ModelName):
        return RefusalReason.UNKNOWN_MODEL
    text = str(error)
    if "not 1" in text:
        return RefusalReason.PROBABILITIES_NOT_ONE
    sd = raw.get("sd") if isinstance(raw, dict) else None
    if isinstance(sd, int | float) and not isinstance(sd, bool) and sd < 0:
        return RefusalReason.NEGATIVE_SD
    return RefusalReason.BAD_SHAPE


def split_answers(raw: Iterable[Any]) -> tuple[tuple[ModelAnswer, ...], tuple[ModelRefusal, ...]]:
    """Validate each model's answer on its own: the good ones, and a refusal for each bad one.

    A second answer from the same model is refused (the first stands), so a source cannot vote
    twice.
    """
    answers: list[ModelAnswer] = []
    refusals: list[ModelRefusal] = []
    for item in raw:
        if isinstance(item, ModelAnswer):
            answer = item
        elif isinstance(item, ModelRefusal):
            refusals.append(item)
            continue
        else:
            try:
                answer = ModelAnswer.model_validate(item)
            except ValidationError as e:
                refusals.append(_refusal(item, _reason_for(item, e), _first_error(e)))
                continue
        if any(a.name is answer.name for a in answers):
            refusals.append(ModelRefusal(name=answer.name, reason=RefusalReason.DUPLICATE_MODEL))
            continue
        answers.append(answer)
    return tuple(answers), tuple(refusals)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
