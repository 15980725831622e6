"""Rolling metrics of scored predictions beside baselines on the same bars (pure).

For each model and source, over its last 50 / 200 / 1,000 scored predictions and since it went
live (its first scored prediction):

* **hit rate** on long/short calls on bars that moved (the training report's definition), with
  its binomial standard error ``sqrt(p (1 - p) / n)``;
* **baselines on exactly those bars**: *always long* (hit when the bar went up) and
  *contrarian* (bets against the previous ``horizon`` bars' move; bars with no such move are
  left out, so its ``n`` may be smaller);
* **Brier score** and **expected calibration error** of ``confidence``, the probability the model
  gave its predicted class (top-label, 10 equal bins, as ``ml/metrics.reliability``): a single
  stored prediction carries no other class probabilities, so the Brier score is the binary one
  ``mean((confidence - correct)^2)``;
* **sd band coverage**: the share of predictions with ``sd`` whose horizon return stayed inside
  ±1 sd (about 68 % for a well-calibrated normal ``sd``), and the share whose path stayed inside;
* **by regime** (most probable regime at prediction time): hit rate since live.

Every window is computed from a :class:`Tally` (additive counts and sums), so "since live" is kept
up to date by adding each newly scored batch, never by re-reading history.

A number that cannot be trusted yet is never shown as 0: a window not yet full, or fewer than
:data:`MIN_N` cases behind a number, gives a :class:`Stat` whose ``value`` is None and whose
``status`` is ``"n too small"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tbotd.domain.enums import PredictionSource
from tbotd.monitoring.outcomes import Outcome, OutcomeKind, StoredPrediction

WINDOWS = (50, 200, 1000)
LIVE = "live"
MIN_N = 30  # fewer cases behind a number than this: "n too small"
ECE_BINS = 10
OK = "ok"
TOO_SMALL = "n too small"


@dataclass(frozen=True, slots=True)
class Graded:
    """A prediction and its (scored) outcome."""

    prediction: StoredPrediction
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Stat:
    """One number with the count behind it; ``value`` None (never 0) when ``n`` is too small."""

    n: int
    value: float | None
    se: float | None = None

    @property
    def status(self) -> str:
        """``"ok"`` or ``"n too small"``."""
        return OK if self.value is not None else TOO_SMALL


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """Every metric over one window (``"50"``, ``"200"``, ``"1000"`` or ``"live"``)."""

    window: str
    n: int
    full: bool
    hit_rate: Stat
    always_long: Stat
    contrarian: Stat
    brier: Stat
    ece: Stat
    sd_coverage: Stat
    sd_path_coverage: Stat


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """A model's metrics from one source."""

    model: str
    source: str
    n_scored: int
    live_since: datetime | None
    windows: tuple[WindowMetrics, ...]
    by_regime: tuple[tuple[str, Stat], ...]


def proportion(successes: int, n: int, usable: bool = True) -> Stat:
    """A share with its standard error; no value below :data:`MIN_N` or when not ``usable``."""
    if n < MIN_N or not usable:
        return Stat(n, None)
    p = successes / n
    return Stat(n, p, math.sqrt(p * (1 - p) / n))


_ZERO_BINS = ((0, 0.0, 0),) * ECE_BINS


@dataclass(frozen=True, slots=True)
class Tally:
    """Additive counts and sums behind every metric of a set of scored predictions."""

    n: int = 0
    calls: int = 0  # long/short calls on bars that moved
    hits: int = 0
    ups: int = 0  # of those bars, how many went up (the always-long baseline's hits)
    against: int = 0  # of those bars, how many had a previous move to bet against
    against_hits: int = 0
    brier_sum: float = 0.0
    brier_sq: float = 0.0
    bins: tuple[tuple[int, float, int], ...] = _ZERO_BINS  # (count, confidence sum, correct)
    with_sd: int = 0
    inside_sd: int = 0
    on_path: int = 0
    stayed: int = 0
    regimes: tuple[tuple[str, int, int], ...] = field(default=())  # (regime, calls, hits)

    def __add__(self, other: Tally) -> Tally:
        """Both sets together: how "since live" grows by each newly graded batch."""
        regimes: dict[str, tuple[int, int]] = {}
        for name, calls, hits in (*self.regimes, *other.regimes):
            c, h = regimes.get(name, (0, 0))
            regimes[name] = (c + calls, h + hits)
        summed = {f: getattr(self, f) + getattr(other, f) for f in SUMMED}
        return replace(
            self,
            **summed,
            bins=tuple(_add_bin(x, y) for x, y in zip(self.bins, other.bins, strict=True)),
            regimes=tuple(sorted((k, c, h) for k, (c, h) in regimes.items())),
        )


SUMMED = (  # the additive scalar fields of a Tally, in the order facts gives them
    *("n", "calls", "hits", "ups", "against", "against_hits", "brier_sum", "brier_sq"),
    *("with_sd", "inside_sd", "on_path", "stayed"),
)


def _add_bin(a: tuple[int, float, int], b: tuple[int, float, int]) -> tuple[int, float, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def facts(g: Graded) -> tuple[float, ...]:
    """One scored prediction's contribution to each of :data:`SUMMED`, in that order."""
    o, p = g.outcome, g.prediction
    called = o.hit is not None
    fwd, past = o.fwd_return or 0.0, o.past_return or 0.0
    against = called and past != 0.0
    err = (p.confidence - bool(o.correct)) ** 2
    return (
        *(1, int(called), int(bool(o.hit)), int(called and fwd > 0), int(against)),
        *(int(against and (fwd > 0) != (past > 0)), err, err * err),
        *(int(o.inside_sd is not None), int(bool(o.inside_sd))),
        *(int(o.stayed_in_sd is not None), int(bool(o.stayed_in_sd))),
    )


def tally(rows: Iterable[Graded]) -> Tally:
    """The tally of scored predictions (others are skipped), accumulated in one pass."""
    sums = [0.0] * len(SUMMED)
    in_bin, conf_sum, right = [0] * ECE_BINS, [0.0] * ECE_BINS, [0] * ECE_BINS
    regimes: dict[str, list[int]] = {}
    for g in rows:
        if g.outcome.kind is not OutcomeKind.SCORED:
            continue
        for i, v in enumerate(facts(g)):
            sums[i] += v
        conf = g.prediction.confidence
        b = min(int(conf * ECE_BINS), ECE_BINS - 1)
        in_bin[b], conf_sum[b] = in_bin[b] + 1, conf_sum[b] + conf
        right[b] += int(bool(g.outcome.correct))
        if g.prediction.regime is not None and g.outcome.hit is not None:
            count = regimes.setdefault(g.prediction.regime.value, [0, 0])
            count[0], count[1] = count[0] + 1, count[1] + int(g.outcome.hit)
    counts: dict[str, Any] = {
        f: v if f.startswith("brier") else int(v) for f, v in zip(SUMMED, sums, strict=True)
    }
    return replace(
        Tally(),
        **counts,
        bins=tuple(zip(in_bin, conf_sum, right, strict=True)),
        regimes=tuple(sorted((k, c, h) for k, (c, h) in regimes.items())),
    )


def _brier(t: Tally, usable: bool) -> Stat:
    if t.n < MIN_N or not usable:
        return Stat(t.n, None)
    mean = t.brier_sum / t.n
    var = max(t.brier_sq / t.n - mean * mean, 0.0) * t.n / (t.n - 1)
    return Stat(t.n, mean, math.sqrt(var / t.n))


def _ece(t: Tally, usable: bool) -> Stat:
    """Top-label ECE: per confidence bin, |mean confidence - accuracy| weighted by its share."""
    if t.n < MIN_N or not usable:
        return Stat(t.n, None)
    gaps = (count / t.n * abs(conf / count - ok / count) for count, conf, ok in t.bins if count)
    return Stat(t.n, math.fsum(gaps))


def metrics_of(name: str, t: Tally, full: bool = True) -> WindowMetrics:
    """Every metric of a tally; nothing has a value while the window is not ``full``."""
    return WindowMetrics(
        window=name,
        n=t.n,
        full=full,
        hit_rate=proportion(t.hits, t.calls, full),
        always_long=proportion(t.ups, t.calls, full),
        contrarian=proportion(t.against_hits, t.against, full),
        brier=_brier(t, full),
        ece=_ece(t, full),
        sd_coverage=proportion(t.inside_sd, t.with_sd, full),
        sd_path_coverage=proportion(t.stayed, t.on_path, full),
    )


def window_metrics(name: str, rows: Sequence[Graded], size: int) -> WindowMetrics:
    """Metrics over the newest ``size`` scored predictions of ``rows`` (oldest first)."""
    recent = [r for r in rows if r.outcome.kind is OutcomeKind.SCORED][-size:]
    return metrics_of(name, tally(recent), full=len(recent) >= size)


def by_regime(t: Tally) -> tuple[tuple[str, Stat], ...]:
    """Hit rate per most probable regime at prediction time (regimes that occurred)."""
    return tuple((name, proportion(hits, calls)) for name, calls, hits in t.regimes)


def model_metrics(
    model: str, source: str, recent: Sequence[Graded], live: Tally, since: datetime | None
) -> ModelMetrics:
    """Every window of one model and source: ``recent`` holds at least its newest
    ``max(WINDOWS)`` scored predictions (oldest first), ``live`` the tally since it went live."""
    windows = [window_metrics(str(w), recent, w) for w in WINDOWS]
    windows.append(metrics_of(LIVE, live))
    return ModelMetrics(model, source, live.n, since, tuple(windows), by_regime(live))


def all_models(rows: Iterable[Graded]) -> list[ModelMetrics]:
    """Metrics per (model, source) from every graded row, oldest first: the from-scratch
    reference that the daemon's stored tallies and bounded windows must agree with (tests)."""
    groups: dict[tuple[str, str], list[Graded]] = {}
    for r in rows:
        if is_model(r.prediction.source) and r.outcome.kind is OutcomeKind.SCORED:
            groups.setdefault((r.prediction.model, r.prediction.source), []).append(r)
    return [
        model_metrics(m, s, g[-max(WINDOWS) :], tally(g), g[0].prediction.candle_time)
        for (m, s), g in groups.items()
    ]


def is_model(source: str) -> bool:
    """The neutral fallback is no model: its predictions are scored but get no metrics."""
    return source != PredictionSource.NEUTRAL.value
