"""Calibration: confidence that means what it says out of sample, chosen by held-out log-loss,
shipped in the weights; the contrarian baseline sits beside the model in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tbotd.ml.artifacts import with_calibration_defaults
from tbotd.ml.calibration import CalibrationMethod, fit_calibration, softmax
from tbotd.ml.metrics import reliability
from tbotd.ml.models import DirectionClassifier, ModelShape
from tbotd.ml.report import calibration_summary

RNG = np.random.default_rng(5)


def _overconfident(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits twice as sharp as the truth, with a class whose frequency is off by a bias."""
    true_logits = RNG.normal(0.0, 1.0, (n, 3)) + np.array([0.0, 0.4, 0.0])
    p = softmax(true_logits)
    labels = np.array([RNG.choice(3, p=row) for row in p])
    return 2.0 * true_logits - np.array([0.0, 0.8, 0.0]), labels


def test_an_overconfident_model_is_calibrated_on_rows_it_never_saw() -> None:
    """Fitted on one sample, the map brings every well-filled bin of another within 5 points."""
    logits, labels = _overconfident(30_000)
    calibration = fit_calibration(logits[:15_000], labels[:15_000])
    assert calibration.method is not CalibrationMethod.NONE
    raw, _ = reliability(softmax(logits[15_000:]), labels[15_000:])
    fixed, _ = reliability(calibration.apply(logits[15_000:]), labels[15_000:])
    assert calibration_summary(raw)["max_gap_points"] > 5
    assert calibration_summary(fixed)["target_met"]


def test_a_calibrated_model_is_left_alone() -> None:
    """When the raw probabilities are already right, the chosen map changes them little."""
    true_logits = RNG.normal(0.0, 1.0, (20_000, 3))
    labels = np.array([RNG.choice(3, p=row) for row in softmax(true_logits)])
    calibration = fit_calibration(true_logits, labels)
    assert np.abs(calibration.apply(true_logits) - softmax(true_logits)).max() < 0.05
    assert set(calibration.heldout_log_loss) == {m.value for m in CalibrationMethod}


def test_calibration_travels_in_the_weights_and_old_files_still_load(tmp_path: Path) -> None:
    """The map lives in buffers saved with the weights; a file without them answers as before."""
    shape = ModelShape(n_features=4, n_outputs=3)
    model = DirectionClassifier(shape).eval()
    model.class_scale.copy_(torch.tensor([0.5, 0.5, 0.5]))
    model.class_mix.fill_(0.2)
    x = torch.randn(8, 4)
    path = tmp_path / "direction.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    again = DirectionClassifier(shape).eval()
    again.load_state_dict(load_file(str(path)))
    assert torch.equal(again(x), model(x))
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("class_")}
    legacy = DirectionClassifier(shape).eval()
    legacy.load_state_dict(with_calibration_defaults(legacy, old), strict=True)
    with torch.no_grad():
        plain = torch.softmax(legacy.raw(x) / legacy.temperature, dim=-1)
    assert torch.allclose(legacy(x), plain)


def test_a_feature_far_beyond_training_does_not_make_the_classifier_surer(tmp_path: Path) -> None:
    """Clipped at 3 sd, a feature 50 sd out answers as at 3 sd; the clip travels in the weights
    and a file from before clipping answers unclipped, as it did."""
    shape = ModelShape(n_features=4, n_outputs=3)
    model = DirectionClassifier(shape).eval()
    at_edge, far_out = torch.zeros(1, 4), torch.zeros(1, 4)
    at_edge[0, 0], far_out[0, 0] = 3.0, 50.0
    unclipped = model(far_out)
    assert not torch.allclose(unclipped, model(at_edge))
    model.feature_clip.fill_(3.0)
    assert torch.equal(model(far_out), model(at_edge))
    path = tmp_path / "direction.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    again = DirectionClassifier(shape).eval()
    again.load_state_dict(load_file(str(path)))
    assert torch.equal(again(far_out), model(at_edge))
    old = {k: v for k, v in model.state_dict().items() if k != "feature_clip"}
    legacy = DirectionClassifier(shape).eval()
    legacy.load_state_dict(with_calibration_defaults(legacy, old), strict=True)
    assert torch.equal(legacy(far_out), unclipped)
