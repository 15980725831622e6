"""Features are causal, declare their warm-up truthfully, and batch equals incremental exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbotd.domain.errors import InvalidDataError
from tbotd.features import (
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_WARMUPS,
    FEATURES,
    WARMUP,
    bars_from_frame,
    candles_to_frame,
    compute_features,
    latest_features,
    stack_bars,
)
from tbotd.features.primitives import ema, window_std, window_sum
from tests.synthetic import random_walk, to_candles

N = WARMUP + 400


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return random_walk(N, seed=1)


@pytest.fixture(scope="module")
def batch(frame: pd.DataFrame) -> pd.DataFrame:
    return compute_features(frame)


def test_window_sum_is_the_naive_sum() -> None:
    """The doubling window sum equals the textbook sum, with and without decay."""
    x = np.random.default_rng(0).normal(size=300)
    for n, decay in ((1, 1.0), (20, 1.0), (37, 0.9), (128, 13 / 14)):
        got = window_sum(x[None, :], n, decay)[0]
        want = [sum(decay**k * x[t - k] for k in range(n)) for t in range(n - 1, len(x))]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_fir_ema_tracks_pandas_ewm() -> None:
    """The truncated EMA agrees with pandas' EMA to within its 0.03 % truncated weight."""
    x = 100 + np.cumsum(np.random.default_rng(1).normal(size=1000))
    got = ema(x[None, :], 26)[0]
    want = pd.Series(x).ewm(span=26).mean().to_numpy()[26 * 4 - 1 :]
    np.testing.assert_allclose(got, want, rtol=2e-4)


def test_window_std_of_a_constant_is_zero() -> None:
    """A flat window has zero spread, never a negative variance or NaN."""
    assert np.all(window_std(np.full((1, 50), 123.456), 20) == 0.0)


def test_schema_is_ordered_and_hashed() -> None:
    """Names are unique, warm-ups positive, and the schema hash is a sha256 hex digest."""
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == len(FEATURES)
    assert 20 <= len(FEATURE_NAMES) <= 40
    assert all(w >= 1 for w in FEATURE_WARMUPS.values())
    assert max(FEATURE_WARMUPS.values()) == WARMUP
    assert len(FEATURE_SCHEMA_HASH) == 64
    int(FEATURE_SCHEMA_HASH, 16)


def test_each_feature_starts_exactly_at_its_warmup(batch: pd.DataFrame) -> None:
    """A feature is NaN before its declared warm-up and finite from then on (never back-filled)."""
    for name, warmup in FEATURE_WARMUPS.items():
        column = batch[name].to_numpy()
        assert np.isnan(column[: warmup - 1]).all(), name
        assert np.isfinite(column[warmup - 1 :]).all(), name


def test_appending_future_candles_never_changes_past_features(frame: pd.DataFrame) -> None:
    """Features of a prefix are bit-identical to the same rows computed with more bars after."""
    cut = WARMUP + 150
    prefix = compute_features(frame.iloc[:cut]).to_numpy()
    for seed in (2, 3):
        future = random_walk(N - cut, seed=seed, start_ms=int(frame["open_time"].iloc[cut]))
        future[["open", "high", "low", "close"]] *= 1.7  # a very different future
        longer = pd.concat([frame.iloc[:cut], future], ignore_index=True)
        full = compute_features(longer).to_numpy()[:cut]
        np.testing.assert_array_equal(full, prefix)


def test_batch_equals_incremental_exactly(frame: pd.DataFrame, batch: pd.DataFrame) -> None:
    """The live path (newest bar from the newest WARMUP bars) equals the batch row, bit for bit."""
    values = batch.to_numpy()
    for t in range(WARMUP - 1, N):
        bars = bars_from_frame(frame.iloc[max(t + 1 - WARMUP, 0) : t + 1])
        np.testing.assert_array_equal(latest_features(bars)[0], values[t], err_msg=f"bar {t}")


def test_incremental_batches_symbols_exactly(frame: pd.DataFrame) -> None:
    """Several symbols stacked in one call give each symbol's own batch values."""
    frames = [frame, random_walk(N, seed=7), random_walk(N - 50, seed=8)]
    stacked = stack_bars([bars_from_frame(f) for f in frames], WARMUP)
    got = latest_features(stacked)
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(got[i], compute_features(f).to_numpy()[-1])


def test_incremental_needs_the_warmup() -> None:
    """Too few bars for the incremental path is an input error, not a NaN feature."""
    with pytest.raises(InvalidDataError, match=str(WARMUP)):
        latest_features(bars_from_frame(random_walk(WARMUP - 1, seed=0)))


def test_candles_and_datetimes_give_the_same_features(frame: pd.DataFrame) -> None:
    """Candles → frame, and datetime open times, compute the same features as ms frames."""
    small = frame.iloc[: WARMUP + 20].reset_index(drop=True)
    from_candles = candles_to_frame(to_candles(small))
    pd.testing.assert_frame_equal(from_candles, small)
    as_datetime = small.assign(open_time=pd.to_datetime(small["open_time"], unit="ms", utc=True))
    np.testing.assert_array_equal(
        compute_features(as_datetime).to_numpy(), compute_features(small).to_numpy()
    )


def test_simple_indicator_values() -> None:
    """RSI of a rising series is 100; a flat bar's close location is 0.5; returns are ratios."""
    n = WARMUP + 5
    close = 100.0 + np.arange(n, dtype=np.float64)
    flat = pd.DataFrame(
        {
            "open_time": 1_700_000_100_000 + np.arange(n, dtype=np.int64) * 300_000,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.ones(n),
        }
    )
    row = compute_features(flat).iloc[-1]
    assert row["rsi_14"] == 100.0
    assert row["close_loc"] == 0.5
    assert row["ret_1"] == pytest.approx(close[-1] / close[-2] - 1)
    assert row["volume_z_288"] == 0.0
    assert row["range_hl"] == 0.0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(1, 200),
    scale=st.floats(0.01, 100.0),
)
def test_changing_any_later_bar_never_changes_earlier_features(
    seed: int, cut: int, scale: float
) -> None:
    """Rewriting every bar after t (prices scaled, volumes shuffled) leaves rows ≤ t unchanged."""
    frame = random_walk(WARMUP + 220, seed=seed)
    t = WARMUP + cut - 1
    changed = frame.copy()
    for name in ("open", "high", "low", "close"):
        changed.loc[t + 1 :, name] *= scale
    changed.loc[t + 1 :, "volume"] = changed.loc[t + 1 :, "volume"].to_numpy()[::-1]
    np.testing.assert_array_equal(
        compute_features(changed).to_numpy()[: t + 1], compute_features(frame).to_numpy()[: t + 1]
    )
