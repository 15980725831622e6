"""`ml.max_model_age_days`: a model past its shelf life abstains, with one event, and a fresh
one trades; remote answers are held to their own training date the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from tbotd.domain.enums import PredictionSource, Signal
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction, parse_prediction
from tbotd.ops.clock import ManualClock
from tbotd.predictor.expiry import expired_answer, expiry_of
from tbotd.predictor.fallback import FallbackPredictor
from tests.integration.fallback_support import Events

NOW = datetime(2024, 6, 1, tzinfo=UTC)
CANDLE = datetime(2024, 6, 1, tzinfo=UTC) - timedelta(minutes=5)
SYMBOL = "BTC/USDT:USDT"


class DatedModel:
    """A local model that always says long, trained until ``trained_until``."""

    source = PredictionSource.LOCAL_CPU

    model_version = "dated"

    def __init__(self, trained_until: datetime | None) -> None:
        self.trained_until = trained_until

    def drift_summary(self) -> dict[str, object]:
        return {"available": False}

    async def predict_partial(
        self, histories: Mapping[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, str]]:
        return {
            s: Prediction(
                symbol=s,
                timestamp=CANDLE,
                signal=Signal.LONG,
                confidence=0.9,
                model_version="m",
                source=PredictionSource.LOCAL_CPU,
            )
            for s in histories
        }, {}

    def close(self) -> None:
        pass


def _chain(model: DatedModel, events: Events, max_age: float | None) -> FallbackPredictor:
    return FallbackPredictor(
        remote=None,
        local=[model],
        events=events,
        clock=ManualClock(NOW),
        max_model_age_days=max_age,
    )


async def test_an_expired_local_model_abstains_with_one_event() -> None:
    """40 days old with a 30-day shelf life: neutral every cycle, one model-expired event."""
    events = Events()
    chain = _chain(DatedModel(NOW - timedelta(days=40)), events, 30)
    for _ in range(2):
        outcome = (await chain.predict({SYMBOL: []}, CANDLE))[SYMBOL]
        assert outcome.source is PredictionSource.NEUTRAL
        assert outcome.reasons == ("local-cpu: expired",)
    expired = [r for r in events.alerts if r[1] == "model-expired"]
    assert len(expired) == 1
    assert "40.0 days old" in expired[0][2]
    await chain.close()


async def test_a_model_inside_its_shelf_life_or_without_a_limit_trades() -> None:
    """20 days old against 30, or any age with no limit set: the model's call stands."""
    for model, limit in (
        (DatedModel(NOW - timedelta(days=20)), 30.0),
        (DatedModel(NOW - timedelta(days=400)), None),
    ):
        chain = _chain(model, Events(), limit)
        outcome = (await chain.predict({SYMBOL: []}, CANDLE))[SYMBOL]
        assert outcome.prediction.signal is Signal.LONG
        await chain.close()


def test_a_remote_answer_is_held_to_its_own_training_date() -> None:
    """The first answer whose trained_until is too old names the model; undated ones pass."""
    body = {
        "schema_version": 2,
        "symbol": SYMBOL,
        "timestamp": CANDLE.isoformat(),
        "signal": "long",
        "confidence": 0.8,
        "model_version": "r",
        "source": "remote",
        "models": [
            {"name": "direction", "version": "d1", "probabilities": [0.1, 0.1, 0.8]},
            {
                "name": "regime",
                "version": "g2",
                "probabilities": [0.2, 0.3, 0.5],
                "trained_until": (NOW - timedelta(days=31)).isoformat(),
            },
        ],
    }
    expiry = expired_answer(parse_prediction(body), NOW, 30)
    assert expiry is not None
    assert expiry.model == "regime@g2"
    assert expired_answer(parse_prediction(body), NOW, 45) is None
    assert expiry_of("m", None, NOW, 1) is None
