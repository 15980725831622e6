"""`tbotd models report --out DIR`: one PNG per model and source — its rolling hit rate beside
the always-long and contrarian baselines over time, its reliability diagram, and the PSI of its
most drifted input features over time (from the drift history the daemon keeps)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tbotd.monitoring.history import rolling
from tbotd.monitoring.metrics import Graded

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tbotd.store import Store

WINDOW = 200
MAX_ROWS = 200_000  # a year of 20 symbols' 5-minute predictions is ~2 M: the newest 200 k
RELIABILITY_ROWS = 5_000


def write_report(store: Store, out: Path) -> list[Path]:
    """Write ``out/<model>__<source>.png`` for every graded model; returns the paths."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model, source in sorted(store.live_tallies()):
        rows = store.recent_graded(model, source, MAX_ROWS)
        if not rows:
            continue
        fig, axes = plt.subplots(3, 1, figsize=(11, 12))
        _rolling_panel(axes[0], rows)
        _reliability_panel(axes[1], rows[-RELIABILITY_ROWS:])
        _psi_panel(axes[2], store.drift_history(model, source))
        fig.suptitle(f"tbotd model {model} ({source}) — {len(rows):,} graded predictions")
        fig.tight_layout()
        path = out / f"{_safe(model)}__{_safe(source)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100]


def _rolling_panel(ax: Axes, rows: list[Graded]) -> None:
    series = rolling(rows, WINDOW)
    for values, label, style in (
        (series.hit_rate, "model hit rate", "-"),
        (series.always_long, "always long", ":"),
        (series.contrarian, "contrarian", "--"),
    ):
        ax.plot(np.array(series.times), 100 * values, style, label=label, lw=1.2)
    ax.axhline(50, color="k", lw=0.6)
    ax.set_title(f"Rolling {WINDOW} graded calls: hit rate vs baselines on the same bars")
    ax.set_ylabel("%")
    ax.legend(fontsize=8)


def _reliability_panel(ax: Axes, rows: list[Graded]) -> None:
    conf = np.array([g.prediction.confidence for g in rows])
    right = np.array([bool(g.outcome.correct) for g in rows], dtype=np.float64)
    edges = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, 9)
    xs, ys, ns = [], [], []
    for b in range(10):
        mask = which == b
        if mask.sum() >= 30:
            xs.append(conf[mask].mean())
            ys.append(right[mask].mean())
            ns.append(int(mask.sum()))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.plot(xs, ys, "o-")
    for x, y, n in zip(xs, ys, ns, strict=True):
        ax.annotate(f"{n}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(f"Reliability of the newest {len(rows):,} (bins with ≥ 30 calls)")
    ax.set_xlabel("confidence")
    ax.set_ylabel("observed frequency right")


def _psi_panel(ax: Axes, history: list[tuple[datetime, dict[str, float]]]) -> None:
    features = sorted({f for _, psi in history for f in psi})
    for name in features[:8]:
        times = np.array([t for t, _ in history])
        ax.plot(times, [psi.get(name, np.nan) for _, psi in history], label=name)
    ax.axhline(0.25, color="r", lw=0.8, ls="--", label="drifting (0.25)")
    title = "PSI of the most drifted input features (hourly)"
    ax.set_title(title if history else title + ": no drift history (local models only)")
    if history:
        ax.legend(fontsize=7, ncol=3)
