"""The prediction schema (README: Remote predictions): one strict, versioned model for every source.

Remote services, local models and the neutral fallback all produce this type, so the strategy
never cares where a prediction came from. It is strict on purpose: a remote service's bad answer
must be rejected here, never coerced into something tradeable.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tbotd.domain.answers import MAX_MODELS, ModelAnswer, ModelName, ModelRefusal, split_answers
from tbotd.domain.enums import PredictionSource, Regime, Signal
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import require_utc
from tbotd.domain.wire import UtcTime

# the newest schema; bump together with Prediction.schema_version's Literal
PREDICTION_SCHEMA_VERSION: Final = 2
# no per-model answers: still accepted, and what a client that asks for it is sent
LEGACY_SCHEMA_VERSION: Final = 1


Price = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, strict=False)]


class Prediction(BaseModel):
    """What one model run says about ``symbol`` after the candle that opened at ``timestamp``.

    ``timestamp`` is the open time of the candle that just closed; a prediction for any other
    candle is stale or early and is rejected by :meth:`check_for`. Exactly one way to place
    TP/SL may be given: absolute ``take_profit``/``stop_loss`` prices, or ``sd`` (the predicted
    standard deviation of the forward return, as a fraction of price).
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Literal[1, 2] = PREDICTION_SCHEMA_VERSION
    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: UtcTime
    signal: Annotated[Signal, Field(strict=False)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    take_profit: Price | None = None
    stop_loss: Price | None = None
    sd: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    regime: (
        dict[Annotated[Regime, Field(strict=False)], Annotated[float, Field(ge=0, le=1)]] | None
    ) = None
    model_version: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[PredictionSource, Field(strict=False)]
    models: tuple[ModelAnswer, ...] = ()  # each model's own answer (schema 2); () = absent
    refused: tuple[ModelRefusal, ...] = ()  # answers refused one by one, with the reason

    @model_validator(mode="before")
    @classmethod
    def _split_model_answers(cls, data: Any) -> Any:
        """Refuse bad per-model answers one by one instead of the whole prediction."""
        if not isinstance(data, dict) or "models" not in data:
            return data
        raw = data["models"]
        if data.get("schema_version", PREDICTION_SCHEMA_VERSION) == LEGACY_SCHEMA_VERSION:
            raise ValueError("schema_version 1 predictions carry no per-model answers")
        if not isinstance(raw, list | tuple) or len(raw) > MAX_MODELS:
            raise ValueError(f"models must be a list of at most {MAX_MODELS} answers")
        answers, refusals = split_answers(raw)
        return {**data, "models": answers, "refused": (*data.get("refused", ()), *refusals)}

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return require_utc(value, "timestamp")

    @field_validator("regime")
    @classmethod
    def _probabilities(cls, value: dict[Regime, float] | None) -> dict[Regime, float] | None:
        if value is not None and value and not math.isclose(sum(value.values()), 1.0, abs_tol=1e-3):
            raise ValueError(f"regime probabilities sum to {sum(value.values()):.4f}, not 1")
        return value

    @model_validator(mode="after")
    def _one_way_to_place_exits(self) -> Prediction:
        if (self.take_profit is None) != (self.stop_loss is None):
            raise ValueError("take_profit and stop_loss come together or not at all")
        if self.take_profit is not None and self.sd is not None:
            raise ValueError("give either absolute take_profit/stop_loss or sd, not both")
        return self

    def answer(self, name: ModelName) -> ModelAnswer | None:
        """This model's own answer, or None when it did not answer (or was refused)."""
        return next((a for a in self.models if a.name is name), None)

    def as_legacy(self) -> Prediction:
        """The schema-1 form, for a client that asked for it: the per-model answers dropped."""
        return self.model_copy(
            update={"schema_version": LEGACY_SCHEMA_VERSION, "models": (), "refused": ()}
        )

    def check_for(self, symbol: str, candle_open_time: datetime) -> Prediction:
        """Return self if it is for ``symbol``'s candle that opened at ``candle_open_time``."""
        if self.symbol != symbol:
            raise InvalidDataError(f"prediction is for {self.symbol!r}, expected {symbol!r}")
        expected = require_utc(candle_open_time, "candle_open_time")
        if self.timestamp != expected:
            raise InvalidDataError(
                f"prediction for {symbol} is for the candle of {self.timestamp.isoformat()}, "
                f"expected the one that just closed ({expected.isoformat()})"
            )
        return self

    @classmethod
    def neutral(cls, symbol: str, candle_open_time: datetime, reason: str) -> Prediction:
        """The "no new risk" prediction used when every model failed."""
        return cls(
            symbol=symbol,
            timestamp=candle_open_time,
            signal=Signal.NEUTRAL,
            confidence=0.0,
            model_version=f"neutral:{reason}"[:128],
            source=PredictionSource.NEUTRAL,
        )


def parse_prediction(raw: str | bytes | dict[str, Any]) -> Prediction:
    """Parse untrusted input into a Prediction or raise :class:`InvalidDataError`, nothing else."""
    try:
        if isinstance(raw, dict):
            return Prediction.model_validate(raw)
        return Prediction.model_validate_json(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()
        )
        raise InvalidDataError(f"invalid prediction: {problems}") from e
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise InvalidDataError(f"invalid prediction: {e}") from e
