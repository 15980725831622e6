"""Training the meta-label model: the classic strategy's signals → triple-barrier labels →
purged walk-forward fits → an honest out-of-sample report → the final model.

The events are the bars where the classic strategy (built by ``build_strategy``, the one seam)
has a long or short setup, with finite features and a whole time barrier inside the data. The
walk-forward plan is the other models' (:func:`tbotd.ml.dataset.plan_folds`) with the label
look-ahead set to the time barrier, so the purge gap (``max_hold`` + the longest feature
warm-up) keeps every training label's window clear of every evaluated row's features.
Within each fold the model is fitted on the fit slice, early-stopped and Platt-calibrated on the
later calibration slice, and judged only on the test slice. The final model is fitted the same
way on all events; it is never scored on what it saw.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from numpy.typing import NDArray

from tbotd.domain.errors import InvalidDataError
from tbotd.ml.dataset import Dataset, Segment, build_dataset, plan_folds
from tbotd.ml.labels import LabelSpec
from tbotd.ml.meta.labels import Barriers, Exit, Outcomes, triple_barrier
from tbotd.ml.meta.model import META_INPUTS, MetaClassifier, meta_probabilities
from tbotd.ml.models import ModelShape
from tbotd.strategy.signal import LONG, SHORT, Opinions

MIN_FIT_EVENTS, MIN_CAL_EVENTS = 40, 10
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True, slots=True)
class MetaConfig:
    """What a meta-label training run does (stored in its manifest)."""

    folds: int = 4
    min_train_frac: float = 0.5
    cal_frac: float = 0.2
    hidden: tuple[int, ...] = (32,)
    dropout: float = 0.1
    epochs: int = 40
    patience: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-3
    seed: int = 0
    threshold: float | None = None  # None: the break-even probability of the barriers


@dataclass(frozen=True)
class Events:
    """The classic strategy's setups: bar, side (+1/-1), features + side, outcome."""

    rows: NDArray[np.int64]
    side: NDArray[np.int8]
    x: NDArray[np.float32]
    outcome: Outcomes

    def within(self, seg: Segment) -> NDArray[np.bool_]:
        """Which events lie in ``seg``."""
        return (self.rows >= seg.start) & (self.rows < seg.stop)


def signal_events(ds: Dataset, frame: pd.DataFrame, base: Opinions, b: Barriers) -> Events:
    """Every long/short setup of ``base`` that can be labelled and has finite features."""
    d = base.direction
    setup = (d == LONG) | (d == SHORT)
    ok = np.isfinite(ds.features).all(axis=1)
    idx = np.arange(len(d))
    rows = idx[setup & ok & (idx >= ds.first) & (idx < ds.stop)]
    side = np.where(d[rows] == LONG, 1, -1).astype(np.int8)
    arr = {c: np.asarray(frame[c], dtype=np.float64) for c in ("open", "high", "low", "close")}
    outcome = triple_barrier(arr["open"], arr["high"], arr["low"], arr["close"], rows, side, b)
    x = np.concatenate([ds.features[rows].astype(np.float32), side[:, None].astype(np.float32)], 1)
    return Events(rows, side, x, outcome)


def _tensor(x: NDArray[np.floating] | NDArray[np.integer], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def fit_meta(
    x: NDArray[np.float32],
    y: NDArray[np.int8],
    x_cal: NDArray[np.float32],
    y_cal: NDArray[np.int8],
    cfg: MetaConfig,
    device: torch.device,
) -> MetaClassifier:
    """Fit on (x, y), early-stop and Platt-calibrate on the later (x_cal, y_cal)."""
    torch.manual_seed(cfg.seed)
    model = MetaClassifier(ModelShape(len(META_INPUTS), 1, cfg.hidden, cfg.dropout))
    model.set_normalisation(x.mean(axis=0).astype(np.float64), x.std(axis=0).astype(np.float64))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt = _tensor(x, device), _tensor(y, device)
    xc, yc = _tensor(x_cal, device), _tensor(y_cal, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model.logit(xt[idx]), yt[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        model.eval()
        with torch.no_grad():
            held = float(F.binary_cross_entropy_with_logits(model.logit(xc), yc))
        if held < best - 1e-6:
            best, best_state, waited = held, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        z = model.logit(xc).double()
    a, b = _platt(z, yc.double())
    model.platt_a.fill_(a)
    model.platt_b.fill_(b)
    return model


def _platt(z: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The scale and bias of σ(a·z + b) of lowest log-loss on the calibration slice."""
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(ab[0] * z + ab[1], y) + 1e-4 * ab[0] ** 2
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    a, b = (float(v) for v in ab.detach())
    return (a, b) if np.isfinite([a, b]).all() else (1.0, 0.0)


@dataclass(frozen=True)
class MetaRun:
    """The final model, the walk-forward out-of-sample predictions and the report."""

    model: MetaClassifier
    events: Events
    oos: NDArray[np.bool_]  # which events were predicted out of sample
    p: NDArray[np.float64]  # their P(take-profit first) (NaN elsewhere)
    prior: NDArray[np.float64]  # the fold's fit base rate (climatology)
    threshold: float
    report: dict[str, object]


def _fit_segments(
    ev: Events, fit: Segment, cal: Segment, cfg: MetaConfig, device: torch.device
) -> tuple[MetaClassifier, float]:
    f, c = ev.within(fit), ev.within(cal)
    if f.sum() < MIN_FIT_EVENTS or c.sum() < MIN_CAL_EVENTS:
        raise InvalidDataError(
            f"only {int(f.sum())} signals to fit and {int(c.sum())} to calibrate on in rows "
            f"{fit.start}-{cal.stop}: the meta-label model needs at least {MIN_FIT_EVENTS} and "
            f"{MIN_CAL_EVENTS}; give more candles or fewer --folds"
        )
    y = ev.outcome.label
    model = fit_meta(ev.x[f], y[f], ev.x[c], y[c], cfg, device)
    return model, float(y[f].mean())


def train_meta(
    frame: pd.DataFrame, base: Opinions, b: Barriers, cfg: MetaConfig, device: torch.device
) -> MetaRun:
    """Walk-forward evaluation and the deployable model for one candle frame and its signals."""
    label = LabelSpec(horizon=b.max_hold, fee_bps=0.0, regime_window=1)
    ds = build_dataset(frame, label)
    ev = signal_events(ds, frame, base, b)
    folds, final = plan_folds(ds, label, cfg.folds, cfg.min_train_frac, cfg.cal_frac)
    p = np.full(len(ev.rows), np.nan)
    prior = np.full(len(ev.rows), np.nan)
    oos = np.zeros(len(ev.rows), dtype=bool)
    for fold in folds:
        if fold.test is None:
            continue
        model, rate = _fit_segments(ev, fold.fit, fold.cal, cfg, device)
        t = ev.within(fold.test)
        p[t] = meta_probabilities(model, ds.features[ev.rows[t]], device)[
            np.arange(int(t.sum())), np.where(ev.side[t] > 0, 0, 1)
        ]
        prior[t] = rate
        oos |= t
    model, _ = _fit_segments(ev, final.fit, final.cal, cfg, device)
    even = max(b.break_even(1), b.break_even(-1))
    threshold = cfg.threshold if cfg.threshold is not None else even
    report = meta_report(ev, oos, p, prior, threshold)
    return MetaRun(model, ev, oos, p, prior, threshold, report)


def _at(
    ev: Events, oos: NDArray[np.bool_], p: NDArray[np.float64], thr: float
) -> dict[str, object]:
    y, ret = ev.outcome.label[oos], ev.outcome.ret[oos]
    take = p[oos] >= thr
    n = int(take.sum())
    return {
        "threshold": thr,
        "confirmed": n,
        "coverage": float(take.mean()) if len(take) else None,
        "precision": float(y[take].mean()) if n else None,
        "mean_return_confirmed": float(ret[take].mean()) if n else None,
        "sum_return_confirmed": float(ret[take].sum()),
    }


def meta_report(
    ev: Events,
    oos: NDArray[np.bool_],
    p: NDArray[np.float64],
    prior: NDArray[np.float64],
    thr: float,
) -> dict[str, object]:
    """Out-of-sample figures beside the base rate (the share of signals that won)."""
    y, ret, q = ev.outcome.label[oos].astype(np.float64), ev.outcome.ret[oos], p[oos]
    n = int(oos.sum())
    exits = ev.outcome.exit[oos]
    return {
        "signals": len(ev.rows),
        "oos_signals": n,
        "oos_long": int((ev.side[oos] > 0).sum()),
        "base_rate": float(y.mean()) if n else None,
        "exits": {e.name.lower(): int((exits == e).sum()) for e in Exit},
        "brier": float(np.mean((q - y) ** 2)) if n else None,
        "brier_climatology": float(np.mean((prior[oos] - y) ** 2)) if n else None,
        "mean_p": float(q.mean()) if n else None,
        "at_threshold": _at(ev, oos, p, thr),
        "thresholds": [_at(ev, oos, p, t) for t in THRESHOLDS],
        "all_signals": {
            "mean_return": float(ret.mean()) if n else None,
            "sum_return": float(ret.sum()),
        },
        "note": "returns are per signal (one unit each, overlapping trades counted separately), "
        "after the round trip's fee and slippage; `tbotd backtest --compare` runs the gate with "
        "the position rules",
    }
