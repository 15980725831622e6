"""Grading stored predictions at each close, after the cycle's orders (ARCHITECTURE: monitoring).

:func:`score_pending` is the scoring pass: every ungraded prediction whose horizon has passed is
graded from stored candles (``monitoring.outcomes.score``) and written once per prediction, in
bounded batches, each batch with the cursor in one transaction — so a restart, a crash in the
middle or days of downtime only mean the next pass continues where the last one stopped.
:class:`ModelMonitor` runs it for the daemon and keeps the rolling metrics in memory (the newest
scored predictions per model and the additive "since live" tally the store keeps with each
batch), for `/status`; a start reads only those (:func:`load_saved`), never the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tbotd.daemon.model_health import HealthKeeper
from tbotd.domain.market import Candle
from tbotd.domain.values import timeframe_delta
from tbotd.ml.errors import ModelLoadError
from tbotd.ml.labels import LabelSpec
from tbotd.ml.manifest import read_manifest
from tbotd.monitoring.drift import ErrorChange
from tbotd.monitoring.live import Key, Live, by_model, live_of, newest
from tbotd.monitoring.metrics import WINDOWS, Graded, ModelMetrics, model_metrics
from tbotd.monitoring.outcomes import (
    LabelOrigin,
    LabelRule,
    Outcome,
    StoredPrediction,
    due_time,
    score,
)
from tbotd.ops.logs import get_logger
from tbotd.store import Store
from tbotd.store.outcomes import CURSOR_KEY

log = get_logger(__name__)
BATCH = 500
MAX_BATCHES = 4  # per pass: a long catch-up spreads over several closes
GIVE_UP_AFTER = timedelta(days=7)  # candle T+h still missing this long after it was due


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Which horizon and band grade a model's predictions: its manifest's label definition when
    the model directory is known, else ``default`` (recorded as such in every outcome)."""

    default: LabelRule
    by_model: Mapping[str, LabelRule] = field(default_factory=dict)

    def rule_for(self, model: str) -> LabelRule:
        """The rule for ``model`` (a prediction's ``model_version``)."""
        return self.by_model.get(model, self.default)

    def merged(self, newer: RuleBook) -> RuleBook:
        """``newer``'s rules, keeping the models only this one knows (after a model swap, the old
        model's predictions still waiting for their horizon are graded as it was trained)."""
        return RuleBook(newer.default, {**self.by_model, **newer.by_model})


def rule_book(models_dir: Path | None, taker_fee_bps: float) -> RuleBook:
    """The local models' label definition, and defaults for every other source: the training
    default horizon and a band of the round-trip taker fee configured for execution."""
    spec = LabelSpec()
    default = LabelRule(spec.horizon, 2 * taker_fee_bps / 10_000, LabelOrigin.DEFAULT)
    if models_dir is None:
        return RuleBook(default)
    try:
        manifest = read_manifest(models_dir, check_weights=False)
    except ModelLoadError as e:
        log.warning("no manifest to grade predictions with; using defaults", error=str(e))
        return RuleBook(default)
    label = manifest.label
    rule = LabelRule(int(label["horizon"]), float(label["band"]), LabelOrigin.MANIFEST)
    return RuleBook(default, {manifest.model_version: rule})


def _bars_for(
    store: Store, timeframe: str, batch: Sequence[StoredPrediction], rules: RuleBook
) -> dict[str, dict[datetime, Candle]]:
    """Each symbol's candles that the batch's grading reads, by open time (one query each)."""
    bar = timeframe_delta(timeframe)
    reach = max(rules.rule_for(p.model).horizon for p in batch) * bar
    out: dict[str, dict[datetime, Candle]] = {}
    for symbol in sorted({p.symbol for p in batch}):
        times = [p.candle_time for p in batch if p.symbol == symbol]
        candles = store.candles_between(symbol, timeframe, min(times) - reach, max(times) + reach)
        out[symbol] = {c.open_time: c for c in candles}
    return out


def _graded(batch: Sequence[StoredPrediction], outcomes: Sequence[Outcome]) -> list[Graded]:
    by_id = {p.id: p for p in batch}
    return [Graded(by_id[o.prediction_id], o) for o in outcomes]


def _grade_batch(
    store: Store, timeframe: str, batch: Sequence[StoredPrediction], rules: RuleBook, now: datetime
) -> tuple[list[Outcome], int | None]:
    """Outcomes of the batch's due predictions, and the id of the first one not due (if any)."""
    bar = timeframe_delta(timeframe)
    bars = _bars_for(store, timeframe, batch, rules)
    newest = {s: store.last_candle_time(s, timeframe) for s in bars}
    outcomes: list[Outcome] = []
    first_waiting: int | None = None
    for p in batch:
        rule = rules.rule_for(p.model)
        due, last = due_time(p, rule, bar), newest[p.symbol]
        if (last is not None and last >= due) or now - due > GIVE_UP_AFTER:
            outcomes.append(score(p, rule, bars[p.symbol], bar))
        elif first_waiting is None:
            first_waiting = p.id
    return outcomes, first_waiting


def score_pending(
    store: Store,
    timeframe: str,
    rules: RuleBook,
    now: datetime,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> list[Graded]:
    """Grade up to ``batch * max_batches`` due predictions, oldest first; returns them.

    The cursor in ``meta`` moves past every graded prediction up to the first one still waiting
    for its candles, so the next pass starts there; grading is idempotent either way. Each batch's
    outcomes, the models' "since live" tallies and the cursor commit together: a crash between
    batches loses nothing and counts nothing twice.
    """
    cursor = int(store.meta(CURSOR_KEY) or 0)
    after, waiting = cursor, False
    graded: list[Graded] = []
    for _ in range(max_batches):
        pending = store.unscored_predictions(after, batch)
        if not pending:
            break
        outcomes, first_waiting = _grade_batch(store, timeframe, pending, rules, now)
        if not waiting:
            cursor = pending[-1].id if first_waiting is None else first_waiting - 1
            waiting = first_waiting is not None
        with store.transaction():
            fresh = _graded(pending, store.new_outcomes(outcomes))
            store.record_outcomes([g.outcome for g in fresh], now)
            store.add_live(live_of(fresh))
            store.set_meta(CURSOR_KEY, str(cursor))
        graded.extend(fresh)
        after = pending[-1].id
    return graded


@dataclass(frozen=True, slots=True)
class Saved:
    """What the store holds for the metrics: each model's live tally and newest scored rows."""

    live: dict[Key, Live]
    recent: dict[Key, list[Graded]]

    def metrics(self) -> list[ModelMetrics]:
        """Every model's rolling metrics, by model and source."""
        return [
            model_metrics(m, s, self.recent.get((m, s), []), live.tally, live.since)
            for (m, s), live in self.live.items()
        ]


def load_saved(store: Store) -> Saved:
    """One row per model and its newest ``max(WINDOWS)`` rows: bounded however long the history
    (a restarted daemon and ``tbotd models`` read this, never every graded prediction)."""
    live = store.live_tallies()
    return Saved(live, {key: store.recent_graded(*key, max(WINDOWS)) for key in live})


class ModelMonitor:
    """The daemon's scoring pass and the in-memory rolling metrics it keeps up to date."""

    def __init__(
        self, store: Store, timeframe: str, rules: RuleBook, trade_when_degraded: bool = False
    ) -> None:
        self.store, self.timeframe, self.rules = store, timeframe, rules
        self._saved: Saved | None = None
        self.changes: dict[Key, ErrorChange] = {}
        self.health = HealthKeeper(store, trade_when_degraded)

    def run(self, now: datetime, sources: Mapping[str, Any] | None = None) -> int:
        """Grade what is due and fold it into the metrics, then assess each model's health
        (``sources``: the prediction chain's status — failures, expiry, drift); returns how many
        predictions were graded."""
        graded = self._grade(now)
        if sources is not None:
            self.health.update(now, self.metrics(), self.changes, sources)
            self.store.save_model_health(now, self.snapshot(sources))
        return graded

    def snapshot(
        self, sources: Mapping[str, Any], graded: Sequence[Key] = ()
    ) -> list[dict[str, Any]]:
        """Each assessed model's state, reasons, drift and error-change test (what `/status`
        shows and `tbotd models status` reads back); ``graded`` adds models graded but not yet
        assessed (healthy until they are)."""
        drift = {(d["model"], d["source"]): d for d in sources.get("drift", [])}
        states = self.health.states
        return [
            {
                "model": key[0],
                "source": key[1],
                "state": states[key].state.value if key in states else "healthy",
                "reasons": list(states[key].reasons) if key in states else [],
                "drift": drift.get(key, {"available": False}),
                "error_change": self.changes.get(key, ErrorChange()).to_json(),
            }
            for key in dict.fromkeys([*states, *graded])
        ]

    def _grade(self, now: datetime) -> int:
        if self._saved is None:  # once a start: bounded, see load_saved
            self._saved = load_saved(self.store)
            for rows in self._saved.recent.values():  # the change test resumes on them
                self._watch(rows)
        graded = score_pending(self.store, self.timeframe, self.rules, now)
        if graded:
            self._saved = self._fold(self._saved, graded)
            self._watch(graded)
        return len(graded)

    def _watch(self, rows: Sequence[Graded]) -> None:
        """Feed graded directional calls, oldest first, to each model's error-change test."""
        for row in sorted(rows, key=lambda r: r.prediction.id):
            key = (row.prediction.model, row.prediction.source)
            change = self.changes.get(key, ErrorChange())
            self.changes[key] = change.update(row.outcome.hit, row.prediction.candle_time)

    def _fold(self, saved: Saved, rows: Sequence[Graded]) -> Saved:
        """Newly graded rows into each model's newest rows; the live tallies as just committed
        (the store's, so the numbers are the ones a restart would read)."""
        recent = dict(saved.recent)
        for key, group in by_model(rows).items():
            recent[key] = newest(recent.get(key, []), group, max(WINDOWS))
        return Saved(self.store.live_tallies(), recent)

    def metrics(self) -> list[ModelMetrics]:
        """Every model's rolling metrics as of the last pass."""
        return [] if self._saved is None else self._saved.metrics()
