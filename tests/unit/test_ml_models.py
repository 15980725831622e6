"""The modules map raw features to outputs, the forward is batch-invariant, metrics mean what
the report says they mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tbotd.domain.enums import Signal
from tbotd.ml.metrics import backtest, brier, hit_rate, reliability
from tbotd.ml.models import FORWARD_BLOCK, ModelSet, new_models, run_models
from tbotd.ml.signals import SIGNALS, clamp_sd, positions, signal_indices

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models_and_rows() -> tuple[ModelSet, np.ndarray]:
    models = new_models(25, (32, 32), 0.1, seed=0)
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=25), rng.uniform(0.5, 2.0, size=25)
    for module in models.modules():
        module.set_normalisation(mean, std)
        module.eval()
    return models, rng.normal(size=(3 * FORWARD_BLOCK + 7, 25)) * std + mean


def test_forward_is_identical_whatever_the_batch(
    models_and_rows: tuple[ModelSet, np.ndarray],
) -> None:
    """A row's outputs do not depend on how many rows share the call (live batch vs history)."""
    models, rows = models_and_rows
    everything = run_models(models, rows, CPU)
    for start, stop in ((0, 1), (5, 6), (10, 60), (100, 200), (len(rows) - 1, len(rows))):
        part = run_models(models, rows[start:stop], CPU)
        np.testing.assert_array_equal(part.direction, everything.direction[start:stop])
        np.testing.assert_array_equal(part.sd, everything.sd[start:stop])
        np.testing.assert_array_equal(part.regime, everything.regime[start:stop])


def test_normalisation_is_folded_into_the_module(
    models_and_rows: tuple[ModelSet, np.ndarray],
) -> None:
    """module(raw) == softmax(body((raw - mean) / std)): the weights file is the whole model."""
    models, rows = models_and_rows
    direction = models.direction
    x = torch.as_tensor(rows[:10], dtype=torch.float32)
    with torch.no_grad():
        manual = torch.softmax(
            direction.body((x - direction.feature_mean) / direction.feature_std), -1
        )
        np.testing.assert_allclose(direction(x).numpy(), manual.numpy(), rtol=1e-6)
    names = set(direction.state_dict())
    assert {"feature_mean", "feature_std", "temperature"} <= names


def test_volatility_outputs_are_fractions(models_and_rows: tuple[ModelSet, np.ndarray]) -> None:
    """The volatility model returns a mean and a positive sd scaled by the return scale."""
    models, rows = models_and_rows
    out = run_models(models, rows, CPU)
    assert (out.sd > 0).all()
    assert out.ret_mean.shape == out.sd.shape == (len(rows),)
    assert (clamp_sd(np.array([0.0, 2.0])) > 0).all()
    assert (clamp_sd(np.array([0.0, 2.0])) < 1).all()


def test_signal_rule_is_argmax_with_its_probability() -> None:
    """short/neutral/long is the most probable class; positions honour a confidence threshold."""
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.2, 0.4]])
    assert [SIGNALS[i] for i in signal_indices(probs)] == [
        Signal.SHORT,
        Signal.NEUTRAL,
        Signal.LONG,
        Signal.SHORT,  # ties go to the first class
    ]
    assert positions(probs).tolist() == [-1, 0, 1, -1]
    assert positions(probs, threshold=0.55).tolist() == [0, 0, 1, 0]


def test_hit_rate_counts_only_directional_calls() -> None:
    """Neutral calls and zero returns are left out of the hit rate."""
    calls = np.array([1, -1, 0, 1, -1, 1])
    fwd = np.array([0.01, 0.02, 0.03, -0.01, -0.01, 0.0])
    rate, n = hit_rate(calls, fwd)
    assert n == 4
    assert rate == pytest.approx(0.5)
    assert hit_rate(np.zeros(3, dtype=np.int64), fwd[:3]) == (None, 0)


def test_brier_and_reliability_of_perfect_and_uniform_forecasts() -> None:
    """A certain, right forecast scores 0; a uniform one scores 2/3 at 1/3 confidence."""
    labels = np.array([0, 1, 2, 2])
    assert brier(np.eye(3)[labels], labels) == 0.0
    uniform = np.full((4, 3), 1 / 3)
    assert brier(uniform, labels) == pytest.approx(2 / 3)
    curve, ece = reliability(uniform, labels)
    assert len(curve) == 1
    assert curve[0]["mean_confidence"] == pytest.approx(1 / 3)
    assert ece == pytest.approx(abs(1 / 3 - 0.25))


def test_backtest_charges_fees_per_unit_of_position_change() -> None:
    """Entering pays one fee, a flip pays two; returns compound; drawdown is peak to trough."""
    pos = np.array([1, 1, -1, -1, 0])
    ret = np.array([0.01, -0.02, -0.01, 0.03, 0.05])
    summary, equity = backtest(pos, ret, fee_bps=10, bars_per_year=105_120)
    fee = 0.001
    expected = np.cumprod(1 + np.array([0.01 - fee, -0.02, 0.01 - 2 * fee, -0.03, -fee]))
    np.testing.assert_allclose(equity, expected)
    assert summary["fees"] == pytest.approx(4 * fee)
    assert summary["n_trades"] == 3
    assert summary["total_return"] == pytest.approx(expected[-1] - 1)
    assert summary["max_drawdown"] == pytest.approx(1 - expected[-1] / expected[0])
