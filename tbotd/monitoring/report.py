"""Model metrics as JSON and as a text table (pure): one rendering for `/status` and
`tbotd models`, so both say the same, including "n too small" where a number is not yet known."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tbotd.monitoring.metrics import TOO_SMALL, ModelMetrics, Stat, WindowMetrics

_STATS = (
    "hit_rate",
    "always_long",
    "contrarian",
    "brier",
    "ece",
    "sd_coverage",
    "sd_path_coverage",
)


def stat_json(s: Stat) -> dict[str, Any]:
    """``{"value", "se", "n", "status"}``; value and se are null (never 0) when n is too small."""
    return {"value": s.value, "se": s.se, "n": s.n, "status": s.status}


def window_json(w: WindowMetrics) -> dict[str, Any]:
    """One window's metrics."""
    return {"n": w.n, "full": w.full} | {k: stat_json(getattr(w, k)) for k in _STATS}


def model_json(m: ModelMetrics) -> dict[str, Any]:
    """One model and source: its windows under ``rolling`` (``"50"``…``"live"``)."""
    return {
        "name": m.model,
        "source": m.source,
        "n_scored": m.n_scored,
        "live_since": None if m.live_since is None else m.live_since.isoformat(),
        "rolling": {w.window: window_json(w) for w in m.windows},
        "by_regime": {name: stat_json(s) for name, s in m.by_regime},
    }


def models_json(models: Sequence[ModelMetrics]) -> list[dict[str, Any]]:
    """Every model's metrics (the ``models`` field)."""
    return [model_json(m) for m in models]


def _pct(s: Stat, with_se: bool = False) -> str:
    if s.value is None:
        return TOO_SMALL
    text = f"{100 * s.value:.1f}%"
    return f"{text} ± {100 * (s.se or 0.0):.1f}" if with_se else text


def _num(s: Stat) -> str:
    return TOO_SMALL if s.value is None else f"{s.value:.4f}"


HEADER = ("model", "source", "window", "n", "hit rate ± se", "always long", "contrarian",
          "Brier", "ECE", "sd coverage")  # fmt: skip


def table_rows(models: Sequence[ModelMetrics]) -> list[tuple[str, ...]]:
    """One row per model, source and window."""
    return [
        (
            m.model,
            m.source,
            w.window,
            str(w.n),
            _pct(w.hit_rate, with_se=True),
            _pct(w.always_long),
            _pct(w.contrarian),
            _num(w.brier),
            _num(w.ece),
            _pct(w.sd_coverage),
        )
        for m in models
        for w in m.windows
    ]


def table(models: Sequence[ModelMetrics]) -> str:
    """The aligned text table `tbotd models` prints."""
    if not models:
        return "no scored predictions yet (a prediction is scored once its horizon has passed)"
    rows = [HEADER, *table_rows(models)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip
