"""Causal features computed from closed candles only (step 2 of the cycle).

Public API (used by the trainer, the local predictor, ``tbotd serve`` and the backtester):

* :data:`FEATURES` — the ordered :class:`FeatureSpec` tuple; :data:`FEATURE_NAMES` (column
  order of every feature matrix), :data:`FEATURE_WARMUPS` (bars each feature needs, the newest
  included), :data:`WARMUP` (the longest), :data:`FEATURE_SCHEMA_HASH` (sha256 of names, order,
  warm-ups, formulas and :data:`FEATURE_DEFINITIONS_VERSION`; model manifests must match it).
* :func:`compute_features(frame) <compute_features>` — batch: a candle DataFrame (``open_time``
  ms or UTC datetimes, float64 ``open, high, low, close, volume``) → a DataFrame of features.
* :func:`latest_features(bars) <latest_features>` — incremental: the newest bar of S symbols from
  :class:`Bars` of shape (S, ≥ WARMUP); identical to the batch values, bit for bit.
* :func:`candles_to_frame`, :func:`bars_from_frame`, :func:`stack_bars`, :func:`feature_matrix`.

Every feature at bar t is a function of bars t-warmup+1 … t only: appending or changing later
candles never changes it (tests/unit/test_features.py proves it).
"""

from tbotd.features.compute import (
    CANDLE_COLUMNS,
    bars_from_frame,
    candles_to_frame,
    compute_features,
    feature_matrix,
    latest_features,
    stack_bars,
)
from tbotd.features.definitions import (
    FEATURE_DEFINITIONS_VERSION,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_WARMUPS,
    FEATURES,
    WARMUP,
    Bars,
    FeatureSpec,
)

__all__ = [
    "CANDLE_COLUMNS",
    "FEATURES",
    "FEATURE_DEFINITIONS_VERSION",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_HASH",
    "FEATURE_WARMUPS",
    "WARMUP",
    "Bars",
    "FeatureSpec",
    "bars_from_frame",
    "candles_to_frame",
    "compute_features",
    "feature_matrix",
    "latest_features",
    "stack_bars",
]
