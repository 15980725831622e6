"""One champion/challenger round, run by `tbotd models retrain` in its own process.

Blocking and CPU-heavy by design: the daemon never runs this on its event loop, it starts the
command as a low-priority subprocess (:mod:`tbotd.daemon.retrain`). The round: finish any
interrupted switch (:func:`~tbotd.ml.versions.recover`), read the symbol's candles from the
database, train a challenger into a new version directory on all but the newest
``holdout_bars`` candles with the champion's own label definition, score both on those bars
(:mod:`tbotd.ml.challenger`), then switch the live link to the challenger or delete it. Each
step is reported through ``emit`` as an event.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tbotd.config.retrain import RetrainConfig
from tbotd.domain.errors import InvalidDataError
from tbotd.ml import versions
from tbotd.ml.challenger import Decision, Score, Verdict, common_rows, decide, score
from tbotd.ml.errors import ModelLoadError

Emit = Callable[[str, str, dict[str, Any]], None]
PROBS = ("p_down", "p_neutral", "p_up")


@dataclass(frozen=True)
class RetrainJob:
    """What one round works on (from the daemon's config)."""

    live: Path  # ml.models_dir
    db: Path  # store.path
    symbol: str
    timeframe: str
    cfg: RetrainConfig


def run_round(job: RetrainJob, emit: Emit, now: Callable[[], datetime]) -> Decision:
    """Train, evaluate, and promote or keep (see module docstring)."""
    from tbotd.ml.data import read_store
    from tbotd.predictor.local import LocalPredictor

    done = versions.recover(job.live)
    cfg = job.cfg
    emit(
        "retrain-started",
        f"retraining on {job.symbol} {job.timeframe}, newest {cfg.holdout_bars} bars held out",
        {"symbol": job.symbol, "holdout_bars": cfg.holdout_bars, "recovered": done},
    )
    if job.live.is_dir() and not job.live.is_symlink():
        versions.adopt(job.live, f"{now():%Y%m%dT%H%M%SZ}-adopted")
    data = read_store(job.db, job.symbol, job.timeframe)
    champion = _load(job.live)
    try:
        challenger_dir = _train(job, data, champion, now)
        emit(
            "retrain-trained",
            f"challenger trained into {challenger_dir.name}",
            {"version": challenger_dir.name, "rows": len(data.frame) - cfg.holdout_bars},
        )
        versions.kill_point("trained")
        try:
            with LocalPredictor.load(challenger_dir, "cpu", threads=1) as challenger:
                scores = _evaluate(data.frame, champion, challenger, cfg.holdout_bars)
                new_version = challenger.model_version
        except BaseException:  # never linked: nothing points at it
            shutil.rmtree(challenger_dir, ignore_errors=True)
            raise
    finally:
        if champion is not None:
            champion.close()
    old_score, new_score = scores
    old_version = champion.model_version if champion is not None else None
    emit(
        "retrain-evaluated",
        f"held-out log-loss: champion {_fmt(old_score)}, challenger {_fmt(new_score)}",
        {
            "champion": None if old_score is None else old_score.to_json(),
            "challenger": new_score.to_json(),
            "champion_version": old_version,
            "challenger_version": new_version,
        },
    )
    decision = decide(old_score, new_score, cfg.margin, cfg.min_scored)
    if decision.verdict is Verdict.PROMOTE:
        versions.switch(job.live, challenger_dir.name)
        pruned = versions.prune(job.live, cfg.keep_versions)
        emit(
            "retrain-promoted",
            f"challenger {new_version} is live ({decision.reason})",
            {"from": old_version, "to": new_version, "version": challenger_dir.name}
            | {"reason": decision.reason, "pruned": pruned},
        )
    else:
        shutil.rmtree(challenger_dir, ignore_errors=True)
        emit(
            "retrain-kept",
            f"champion {old_version} stays live ({decision.reason})",
            {"champion_version": old_version, "reason": decision.reason},
        )
    return decision


def _fmt(s: Score | None) -> str:
    return "n/a" if s is None else f"{s.log_loss:.5f} over {s.n} bars"


def _load(live: Path) -> Any:
    """The champion, or None when the live directory does not load (any challenger wins)."""
    from tbotd.predictor.local import LocalPredictor

    try:
        return LocalPredictor.load(live, "cpu", threads=1)
    except ModelLoadError:
        return None


def _label(champion: Any) -> Any:
    """The champion's label definition (the challenger must answer the same question)."""
    from tbotd.ml.labels import LabelSpec

    if champion is None:
        return LabelSpec()
    stored = champion.manifest.label
    return LabelSpec(**{f.name: stored[f.name] for f in fields(LabelSpec) if f.name in stored})


def _train(job: RetrainJob, data: Any, champion: Any, now: Callable[[], datetime]) -> Path:
    import torch

    from tbotd.ml.data import CandleData
    from tbotd.ml.output import write_model_dir
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig

    cfg = job.cfg
    frame = data.frame
    if len(frame) <= cfg.holdout_bars + 1_000:
        raise InvalidDataError(
            f"{len(frame)} candles of {job.symbol} stored, more than "
            f"{cfg.holdout_bars + 1_000} needed: lower ml.retrain.holdout_bars or wait"
        )
    train = frame.iloc[: len(frame) - cfg.holdout_bars]
    if cfg.max_train_bars is not None:
        train = train.tail(cfg.max_train_bars)
    train_cfg = TrainConfig(
        label=_label(champion),
        fit=FitConfig(epochs=cfg.epochs, seed=cfg.seed),
        folds=cfg.folds,
        timeframe=job.timeframe,
    )
    out = versions.new_version_dir(job.live, now(), "challenger")
    source = CandleData(train.reset_index(drop=True), data.source, data.timeframe, data.gaps)
    try:
        write_model_dir(source, train_cfg, torch.device("cpu"), out, now=now())
    except BaseException:  # never linked: nothing points at it
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _evaluate(
    frame: pd.DataFrame, champion: Any, challenger: Any, holdout: int
) -> tuple[Score | None, Score]:
    """Both models' scores on the same held-out rows (the frame's tail with each model's
    warm-up before it); labels with the challenger's (= the champion's) label definition."""
    from tbotd.ml.labels import direction_labels, forward_returns

    models = [m for m in (challenger, champion) if m is not None]
    warm = max(m.required_history for m in models)
    tail = frame.tail(holdout + warm).reset_index(drop=True)
    spec = _label(challenger)
    labels = direction_labels(
        forward_returns(tail["close"].to_numpy(float), spec.horizon), spec.band
    )
    answers = [m.predict_history(tail) for m in models]
    ready = tuple(a["ready"].to_numpy(bool) for a in answers)
    rows = common_rows(labels, ready, holdout)
    scores = [score(a[list(PROBS)].to_numpy(np.float64)[rows], labels[rows]) for a in answers]
    return (scores[1] if champion is not None else None), scores[0]
