"""What a model's metrics need to survive a restart, and its stored form (pure).

A daemon that restarts must not re-read a model's whole history to show its "since live" metrics:
each (model, source) keeps a :class:`Live` — the additive :class:`Tally` of every scored
prediction and the candle time of its first one — that the store saves with each graded batch
(``store.outcomes``), plus the newest ``max(WINDOWS)`` scored rows that the rolling windows read.
:func:`encode` and :func:`decode` are the only writer and reader of the stored tally, so the
format lives in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tbotd.monitoring.metrics import SUMMED, Graded, Tally, is_model, tally
from tbotd.monitoring.outcomes import OutcomeKind

FORMAT = 1  # bump when the stored tally's fields change; decode refuses other versions

Key = tuple[str, str]  # (model, source)


@dataclass(frozen=True, slots=True)
class Live:
    """A model's tally since it went live, and when that was (its first scored candle)."""

    tally: Tally
    since: datetime

    def __add__(self, other: Live) -> Live:
        """Both together: the live tally grows by each graded batch, ``since`` never moves later."""
        return Live(self.tally + other.tally, min(self.since, other.since))


def order(g: Graded) -> tuple[datetime, int]:
    """Where a scored prediction sits in a model's history: by candle time, then id — the order
    the rolling windows count "newest" in, in memory and in the store's query alike."""
    return (g.prediction.candle_time, g.prediction.id)


def by_model(rows: Iterable[Graded]) -> dict[Key, list[Graded]]:
    """Scored predictions of models (not the neutral fallback) per (model, source), in order."""
    groups: dict[Key, list[Graded]] = {}
    for r in rows:
        if r.outcome.kind is OutcomeKind.SCORED and is_model(r.prediction.source):
            groups.setdefault((r.prediction.model, r.prediction.source), []).append(r)
    return {k: sorted(g, key=order) for k, g in groups.items()}


def live_of(rows: Iterable[Graded]) -> dict[Key, Live]:
    """Each model's :class:`Live` of a graded batch (what the batch adds to the stored ones)."""
    return {k: Live(tally(g), g[0].prediction.candle_time) for k, g in by_model(rows).items()}


def newest(recent: Sequence[Graded], new: Sequence[Graded], size: int) -> list[Graded]:
    """The newest ``size`` of both, oldest first: a late-graded old prediction lands in its place
    (or outside the window), exactly where the store's bounded query would put it."""
    return sorted([*recent, *new], key=order)[-size:]


def encode(t: Tally) -> str:
    """The stored form of a tally: JSON, floats written exactly (``repr`` round-trips)."""
    doc: dict[str, Any] = {"format": FORMAT, **{f: getattr(t, f) for f in SUMMED}}
    doc["bins"] = [list(b) for b in t.bins]
    doc["regimes"] = [list(r) for r in t.regimes]
    return json.dumps(doc, sort_keys=True)


def decode(text: str) -> Tally:
    """The tally :func:`encode` wrote; a ValueError for another format (never a silent zero)."""
    doc = json.loads(text)
    if doc.get("format") != FORMAT:
        raise ValueError(f"stored tally has format {doc.get('format')!r}, expected {FORMAT}")
    counts: dict[str, Any] = {
        f: float(doc[f]) if f.startswith("brier") else int(doc[f]) for f in SUMMED
    }
    return Tally(
        **counts,
        bins=tuple((int(n), float(c), int(k)) for n, c, k in doc["bins"]),
        regimes=tuple((str(r), int(c), int(h)) for r, c, h in doc["regimes"]),
    )
