"""Input drift and error-rate changes of a model (pure): is it still seeing the world it learnt?

* **Reference** (:class:`DriftReference`): `tbotd train` stores, per input feature, the decile
  edges of the final model's fitting rows and the 0.1 % / 99.9 % quantiles, in the manifest.
* **PSI** (population stability index) of each feature over the newest :data:`WINDOW` rows the
  model was asked about (:class:`FeatureWindow`, updated incrementally) against those deciles:
  ``sum((live - ref) · ln(live / ref))``; ≥ :data:`DRIFT_PSI` is the usual "the distribution has
  moved" line.
* **Out of distribution** (:func:`out_of_range`): a row with a feature beyond its training range
  widened by :data:`OOD_MARGIN` of that range on each side — the model abstains on it.
* **Page-Hinkley** (:class:`PageHinkley`) on the stream of graded errors (1 for a wrong
  directional call, 0 for a right one): a sustained rise of the error rate is a change; the same
  test as ``river.drift.PageHinkley(mode="up")`` (cross-checked in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

BINS = 10
WINDOW = 1_000  # newest rows in the live distribution
MIN_ROWS = 200  # fewer live rows: PSI is "n too small", never a number
DRIFT_PSI = 0.25
OOD_MARGIN = 0.5
_EPS = 1e-4  # an empty bin's share, so ln() stays finite


@dataclass(frozen=True, slots=True)
class FeatureReference:
    """One feature's training distribution: inner decile edges, each bin's share, the range."""

    name: str
    edges: tuple[float, ...]  # BINS - 1 inner edges, ascending
    shares: tuple[float, ...]  # BINS shares of the training rows
    low: float  # 0.1 % quantile
    high: float  # 99.9 % quantile


@dataclass(frozen=True, slots=True)
class DriftReference:
    """Every input feature's reference, in the models' feature order."""

    features: tuple[FeatureReference, ...]
    rows: int

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``drift_reference``."""
        return {
            "rows": self.rows,
            "bins": BINS,
            "features": [
                {"name": f.name, "edges": list(f.edges), "shares": list(f.shares),
                 "low": f.low, "high": f.high}
                for f in self.features
            ],
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: Any, names: tuple[str, ...]) -> DriftReference | None:
        """The reference a manifest carries, or None (older models, or not for these
        features): drift is then "unavailable", not an error."""
        try:
            features = tuple(
                FeatureReference(
                    str(f["name"]),
                    tuple(float(e) for e in f["edges"]),
                    tuple(float(s) for s in f["shares"]),
                    float(f["low"]),
                    float(f["high"]),
                )
                for f in raw["features"]
            )
            rows = int(raw["rows"])
        except (TypeError, KeyError, ValueError):
            return None
        if tuple(f.name for f in features) != names:
            return None
        if any(len(f.edges) != BINS - 1 or len(f.shares) != BINS for f in features):
            return None
        return cls(features, rows)

    def edge_matrix(self) -> NDArray[np.float64]:
        """[F, BINS - 1] inner edges."""
        return np.array([f.edges for f in self.features], dtype=np.float64)


def reference_from(matrix: NDArray[np.floating], names: tuple[str, ...]) -> DriftReference:
    """The reference of training rows ``matrix`` [N, F] (finite rows only)."""
    x = np.asarray(matrix, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    inner = np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1], axis=0).T  # [F, BINS - 1]
    low, high = np.quantile(x, [0.001, 0.999], axis=0)
    features = []
    for j, name in enumerate(names):
        counts = np.bincount(np.searchsorted(inner[j], x[:, j], side="right"), minlength=BINS)
        shares = counts / max(len(x), 1)
        features.append(
            FeatureReference(
                name,
                tuple(float(e) for e in inner[j]),
                tuple(float(s) for s in shares),
                float(low[j]),
                float(high[j]),
            )
        )
    return DriftReference(tuple(features), len(x))


def psi(reference: NDArray[np.float64], live: NDArray[np.float64]) -> NDArray[np.float64]:
    """PSI per row of bin shares ``reference`` [F, B] vs ``live`` [F, B]."""
    r = np.maximum(reference, _EPS)
    q = np.maximum(live, _EPS)
    out: NDArray[np.float64] = np.sum((q - r) * np.log(q / r), axis=1)
    return out


class FeatureWindow:
    """The bins of the newest :data:`WINDOW` rows per feature, with running counts (O(F) per
    row, never recomputed over history)."""

    def __init__(self, reference: DriftReference, window: int = WINDOW) -> None:
        self.reference = reference
        self._edges = reference.edge_matrix()
        f = len(reference.features)
        self._ring = np.zeros((window, f), dtype=np.int8)
        self._counts = np.zeros((f, BINS), dtype=np.int64)
        self._next = 0
        self.n = 0

    def observe(self, rows: NDArray[np.floating]) -> None:
        """Add feature rows [N, F] (non-finite rows are left out)."""
        x = np.asarray(rows, dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        cols = np.arange(self._edges.shape[0])
        for row in x:
            bins = np.array(
                [np.searchsorted(self._edges[j], row[j], side="right") for j in cols],
                dtype=np.int8,
            )
            slot = self._next % len(self._ring)
            if self.n >= len(self._ring):
                self._counts[cols, self._ring[slot]] -= 1
            self._ring[slot] = bins
            self._counts[cols, bins] += 1
            self._next += 1
            self.n = min(self.n + 1, len(self._ring))

    def psi(self) -> NDArray[np.float64] | None:
        """PSI per feature, or None while fewer than :data:`MIN_ROWS` rows were seen."""
        if self.n < MIN_ROWS:
            return None
        shares = np.array([f.shares for f in self.reference.features])
        return psi(shares, self._counts / self.n)

    def summary(self, top: int = 5) -> dict[str, Any]:
        """``{"available", "n", "drifting": [names], "top": [[name, psi], ...]}``."""
        values = self.psi()
        if values is None:
            return {"available": True, "n": self.n, "status": "n too small", "drifting": []}
        names = [f.name for f in self.reference.features]
        order = np.argsort(-values)
        return {
            "available": True,
            "n": self.n,
            "status": "ok",
            "drifting": [names[i] for i in order if values[i] >= DRIFT_PSI],
            "top": [[names[i], round(float(values[i]), 4)] for i in order[:top]],
        }


def _bounds(reference: DriftReference) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    low = np.array([f.low for f in reference.features])
    high = np.array([f.high for f in reference.features])
    span = np.maximum(high - low, 1e-12)
    return low - OOD_MARGIN * span, high + OOD_MARGIN * span


def out_of_range(row: NDArray[np.floating], reference: DriftReference) -> list[str]:
    """The features of ``row`` beyond their training range widened by :data:`OOD_MARGIN`."""
    lo, hi = _bounds(reference)
    x = np.asarray(row, dtype=np.float64)
    outside = ~((x >= lo) & (x <= hi))
    return [f.name for f, bad in zip(reference.features, outside, strict=True) if bad]


def outside_mask(matrix: NDArray[np.floating], reference: DriftReference) -> NDArray[np.bool_]:
    """Per row of ``matrix`` [N, F]: any feature out of range (NaN rows count as inside: the
    warm-up handles those)."""
    lo, hi = _bounds(reference)
    x = np.asarray(matrix, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(((x < lo) | (x > hi)).any(axis=1), dtype=bool)


@dataclass(frozen=True, slots=True)
class PageHinkley:
    """Page-Hinkley test for an increase of a stream's mean (values, e.g. 0/1 errors).

    ``update`` returns the next state; ``detected`` is set on the update that crosses the
    threshold, and the following update starts afresh (as river's detector does).
    """

    min_instances: int = 30
    delta: float = 0.005
    threshold: float = 50.0
    alpha: float = 1 - 0.0001
    n: int = 0
    mean: float = 0.0
    cumulative: float = 0.0
    minimum: float = math.inf
    detected: bool = False

    def update(self, x: float) -> PageHinkley:
        """The state after value ``x``."""
        s = (
            replace(self, n=0, mean=0.0, cumulative=0.0, minimum=math.inf)
            if self.detected
            else self
        )
        n = s.n + 1
        mean = s.mean + (x - s.mean) / n
        cumulative = s.alpha * s.cumulative + (x - mean) - s.delta
        minimum = min(s.minimum, cumulative)
        detected = n >= s.min_instances and cumulative - minimum > s.threshold
        return replace(s, n=n, mean=mean, cumulative=cumulative, minimum=minimum, detected=detected)


@dataclass(frozen=True, slots=True)
class ErrorChange:
    """A model's Page-Hinkley state on its graded directional calls, and the candle time of
    the call at which it last detected a rise in the error rate."""

    detector: PageHinkley = PageHinkley()
    last_change: datetime | None = None
    calls: int = 0
    change_calls: int | None = None  # ``calls`` when it last fired

    def update(self, hit: bool | None, at: datetime) -> ErrorChange:
        """After one graded prediction (``hit`` None: a neutral call, not part of the stream)."""
        if hit is None:
            return self
        detector = self.detector.update(0.0 if hit else 1.0)
        calls = self.calls + 1
        if detector.detected:
            return ErrorChange(detector, at, calls, calls)
        return ErrorChange(detector, self.last_change, calls, self.change_calls)

    def to_json(self) -> dict[str, Any]:
        """``{"test", "calls", "error_rate", "last_change"}`` for `/status`."""
        return {
            "test": "page-hinkley",
            "calls": self.calls,
            "error_rate": round(self.detector.mean, 4) if self.detector.n else None,
            "last_change": None if self.last_change is None else self.last_change.isoformat(),
        }
