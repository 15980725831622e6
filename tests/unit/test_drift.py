"""Drift: a shifted input raises PSI for that feature by name, inputs far outside training make
the model abstain, and the error-rate change test is river's Page-Hinkley."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tbotd.monitoring.drift import (
    DRIFT_PSI,
    MIN_ROWS,
    DriftReference,
    ErrorChange,
    FeatureWindow,
    PageHinkley,
    out_of_range,
    outside_mask,
    reference_from,
)

NAMES = ("ret_1", "rv_48", "volume_z")
RNG = np.random.default_rng(11)
TRAIN = RNG.normal(0.0, 1.0, (20_000, 3))


def test_the_same_distribution_does_not_drift_and_a_shifted_feature_does_by_name() -> None:
    """Fresh draws: every PSI small. One feature moved by one sd: only it is named."""
    reference = reference_from(TRAIN, NAMES)
    same = FeatureWindow(reference)
    same.observe(RNG.normal(0.0, 1.0, (1_000, 3)))
    assert same.summary()["drifting"] == []
    shifted = FeatureWindow(reference)
    live = RNG.normal(0.0, 1.0, (1_000, 3))
    live[:, 1] += 1.0
    shifted.observe(live)
    summary = shifted.summary()
    assert summary["drifting"] == ["rv_48"]
    assert summary["top"][0][0] == "rv_48"
    assert summary["top"][0][1] >= DRIFT_PSI


def test_the_window_keeps_only_the_newest_rows() -> None:
    """After the shift passes out of the window, the feature stops drifting."""
    window = FeatureWindow(reference_from(TRAIN, NAMES), window=500)
    shifted = RNG.normal(0.0, 1.0, (500, 3))
    shifted[:, 0] += 2.0
    window.observe(shifted)
    assert window.summary()["drifting"] == ["ret_1"]
    window.observe(RNG.normal(0.0, 1.0, (500, 3)))
    assert window.summary()["drifting"] == []


def test_too_few_rows_say_so_instead_of_a_number() -> None:
    """Below the minimum, PSI is "n too small", never 0."""
    window = FeatureWindow(reference_from(TRAIN, NAMES))
    window.observe(RNG.normal(0.0, 1.0, (MIN_ROWS - 1, 3)))
    assert window.psi() is None
    assert window.summary()["status"] == "n too small"


def test_inputs_far_outside_the_training_range_are_named() -> None:
    """A value well beyond the training range is out of distribution; a tail value is not."""
    reference = reference_from(TRAIN, NAMES)
    assert out_of_range(np.array([0.0, 3.5, 0.0]), reference) == []
    assert out_of_range(np.array([0.0, 0.0, 40.0]), reference) == ["volume_z"]
    rows = np.array([[0.0, 0.0, 0.0], [-50.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    assert outside_mask(rows, reference).tolist() == [False, True, False]


def test_a_manifest_without_a_reference_means_unavailable_not_an_error() -> None:
    """Older models (no reference) or another feature list: no reference, no exception."""
    assert DriftReference.from_json(None, NAMES) is None
    assert DriftReference.from_json({"rows": 1, "features": []}, NAMES) is None
    good = reference_from(TRAIN, NAMES).to_json()
    assert DriftReference.from_json(good, NAMES) == reference_from(TRAIN, NAMES)
    assert DriftReference.from_json(good, ("other", "rv_48", "volume_z")) is None


@pytest.mark.parametrize("seed", range(4))
def test_page_hinkley_detects_where_rivers_does(seed: int) -> None:
    """Same detections, at the same indexes, as river's PageHinkley(mode="up")."""
    drift = pytest.importorskip("river.drift", reason="river (a test-only reference) absent")
    rng = random.Random(seed)
    stream = [float(rng.random() < 0.45) for _ in range(3_000)]
    stream += [float(rng.random() < 0.7) for _ in range(3_000)]
    theirs = drift.PageHinkley(mode="up", threshold=20)
    ours = PageHinkley(threshold=20)
    found_theirs, found_ours = [], []
    for i, x in enumerate(stream):
        theirs.update(x)
        ours = ours.update(x)
        if theirs.drift_detected:
            found_theirs.append(i)
        if ours.detected:
            found_ours.append(i)
    assert found_ours == found_theirs
    assert any(i >= 3_000 for i in found_ours)


def test_a_model_that_turns_random_is_caught_soon_after_and_not_before() -> None:
    """60 % right for 2,000 calls, then a coin: the first change is after the switch."""
    rng = random.Random(3)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    change = ErrorChange()
    detections = []
    for i in range(4_000):
        p = 0.6 if i < 2_000 else 0.5
        change = change.update(rng.random() < p, start + i * timedelta(minutes=5))
        if change.detector.detected:
            detections.append(change.last_change)
    switch = start + 2_000 * timedelta(minutes=5)
    assert detections
    assert switch < detections[0] < switch + timedelta(days=5)
    assert change.update(None, start).calls == change.calls  # neutral calls are not counted
