"""When the local models fail too — a GPU error, a model that hangs, no models on disk — the
chain still ends every symbol's prediction within the deadline, with each failure named."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from tbotd.config import load_settings
from tbotd.daemon.model_health import HealthKeeper
from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.monitoring.health import ModelState
from tbotd.ops.metrics import DaemonMetrics, PredictorMetrics
from tbotd.predictor.fallback import FallbackPredictor
from tbotd.predictor.local import LocalPredictor
from tests.conftest import CONFIGS
from tests.integration.conftest import SYMBOLS, TOKEN
from tests.integration.fallback_support import (
    DEADLINE_S,
    LATE_WAKE_S,
    RESERVE_S,
    Events,
    build_chain,
    closed_port_url,
    count,
    finish,
    timed,
)


class BrokenGpu:
    """A local model on a 'GPU' that fails with a CUDA-style error."""

    source = PredictionSource.LOCAL_GPU
    trained_until = None
    model_version = "fake"

    def drift_summary(self) -> dict[str, object]:
        return {"available": False}

    async def predict_partial(
        self, _histories: dict[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, str]]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def close(self) -> None:
        pass


class HangingModel:
    """A local model that never answers."""

    source = PredictionSource.LOCAL_CPU
    trained_until = None
    model_version = "fake"

    def drift_summary(self) -> dict[str, object]:
        return {"available": False}

    async def predict_partial(
        self, _histories: dict[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, str]]:
        await asyncio.Event().wait()  # never set
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


async def test_a_failing_gpu_falls_back_to_the_cpu_copy(
    local_predictor: LocalPredictor, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """remote down → local-gpu error → local-cpu answers; both failures are recorded."""
    registry = CollectorRegistry()
    chain = build_chain(closed_port_url(), [BrokenGpu(), local_predictor], registry)
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.LOCAL_CPU
        assert outcome.reasons == ("remote: connect", "local-gpu: error")
    assert count(registry, "tbotd_prediction_failures_total", source="local-gpu", reason="error")


async def test_a_hanging_local_model_still_ends_neutral_in_time(
    histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """Even a local model that never returns cannot hold the decision past the deadline."""
    chain = build_chain(closed_port_url(), [HangingModel()], CollectorRegistry())
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S + LATE_WAKE_S
    for outcome in outcomes.values():
        assert outcome.source is PredictionSource.NEUTRAL
        assert outcome.reasons == ("remote: connect", "local-cpu: timeout")


async def test_from_settings_with_missing_models_goes_neutral(
    tmp_path: Path, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """The daemon's constructor: no models on disk and the remote down → neutral, explained."""
    settings = load_settings(
        CONFIGS / "ml_usdt_directional.toml",
        {
            "TBOTD_ML__MODELS_DIR": str(tmp_path / "missing"),
            "TBOTD_ML__REMOTE_URL": closed_port_url(),
            "TBOTD_ML__DEADLINE_S": str(DEADLINE_S),
            "TBOTD_ML__LOCAL_RESERVE_S": str(RESERVE_S),
            "BASIS_ML_API_TOKEN": TOKEN,
        },
    )
    registry = CollectorRegistry()
    chain = FallbackPredictor.from_settings(
        settings, events=Events(), metrics=PredictorMetrics.create(registry)
    )
    try:
        outcomes, elapsed = await timed(chain, histories, candle_time)
    finally:
        await finish(chain)
    assert elapsed < DEADLINE_S
    for symbol, outcome in outcomes.items():
        assert outcome.prediction == Prediction.neutral(
            symbol, candle_time, "remote: connect; local: models_missing"
        )
    assert count(registry, "tbotd_predictions_total", source="neutral") == len(SYMBOLS)
    labels = {"source": "local", "reason": "models_missing"}
    assert count(registry, "tbotd_prediction_failures_total", **labels) == len(SYMBOLS)


async def test_inputs_far_outside_training_make_the_local_model_abstain_for_that_symbol(
    local_predictor: LocalPredictor, histories: dict[str, list[Candle]], candle_time: datetime
) -> None:
    """A 60 % jump in the last candle: that symbol goes neutral as out_of_distribution, naming
    the features; the other symbols keep their local prediction; drift counts the rows."""
    jumped = dict(histories)
    last = jumped[SYMBOLS[0]][-1]
    spike = last.close * Decimal("1.6")
    jumped[SYMBOLS[0]] = [*jumped[SYMBOLS[0]][:-1], replace(last, high=spike, close=spike)]
    chain = build_chain(closed_port_url(), [local_predictor], CollectorRegistry())
    try:
        outcomes, _ = await timed(chain, jumped, candle_time)
    finally:
        await finish(chain)
    assert outcomes[SYMBOLS[0]].source is PredictionSource.NEUTRAL
    assert "local-cpu: out_of_distribution" in outcomes[SYMBOLS[0]].reasons
    failure = next(f for f in outcomes[SYMBOLS[0]].failures if f.reason == "out_of_distribution")
    assert "inputs outside the training range" in failure.detail
    for symbol in SYMBOLS[1:]:
        assert outcomes[symbol].source is PredictionSource.LOCAL_CPU
    assert local_predictor.drift_summary()["n"] >= len(SYMBOLS)


def _rows_like_training(predictor: LocalPredictor, n: int, shifted: int) -> np.ndarray:
    """Rows spread over each feature's training deciles, except feature ``shifted``, always in
    its top decile."""
    reference = predictor.reference
    assert reference is not None
    rng = np.random.default_rng(5)
    rows = np.empty((n, len(reference.features)))
    for j, f in enumerate(reference.features):
        edges = np.array([f.low, *f.edges, f.high])
        bins = np.full(n, len(edges) - 2) if j == shifted else rng.integers(0, len(edges) - 1, n)
        rows[:, j] = edges[bins] + rng.random(n) * (edges[bins + 1] - edges[bins])
    return rows


async def test_a_shifted_input_feature_turns_the_model_drifting_naming_it(models_dir: Path) -> None:
    """The local models saw one feature move: the chain's status names it, and the model's
    health becomes drifting with that feature as the reason."""
    predictor = LocalPredictor.load(models_dir, device="cpu")
    chain = build_chain(closed_port_url(), [predictor], CollectorRegistry())
    try:
        assert predictor.drift is not None
        assert predictor.reference is not None
        name = predictor.reference.features[3].name
        predictor.drift.observe(_rows_like_training(predictor, 1_000, shifted=3))
        status = chain.status()
        (drift,) = status["drift"]
        assert drift["drifting"] == [name]
        keeper = HealthKeeper(Events(), metrics=DaemonMetrics.create(CollectorRegistry()))
        keeper.update(datetime.now(UTC), [], {}, status)
        health = keeper.states[(predictor.model_version, "local-cpu")]
        assert health.state is ModelState.DRIFTING
        assert health.reasons == (f"inputs drifting: {name}",)
    finally:
        await finish(chain)
