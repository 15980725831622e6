"""`tbotd train --meta-label --config CFG --data CSV --out DIR`: the meta-label model.

The config names the classic strategy (``[strategy.classic]``, through ``build_strategy``), its
exits (``stop_loss_pct``/``take_profit_pct`` with their bounds) and the costs (``[execution]``
``taker_fee_bps`` + ``slippage_bps``, both sides). Writes ``DIR/meta_label.safetensors``,
``DIR/meta_label.json`` (last) and ``DIR/meta_label_report.json``; every figure is walk-forward
out of sample and sits beside the base rate.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from tbotd.commands import EXIT_OK
from tbotd.domain.errors import InvalidDataError
from tbotd.ml.data import CandleData


def run_meta(args: argparse.Namespace, data: CandleData) -> int:
    """Train, write and summarise the meta-label model."""
    from tbotd.config import load_settings
    from tbotd.ml.device import resolve_device, set_threads
    from tbotd.ml.manifest import write_json_atomic
    from tbotd.ml.meta.labels import barrier_distances
    from tbotd.ml.meta.model import META_MANIFEST, save_meta
    from tbotd.ml.meta.train import MetaConfig, train_meta
    from tbotd.strategy.build import build_strategy

    if args.config is None:
        raise InvalidDataError("--meta-label needs --config: the classic strategy it learns")
    if (args.out / META_MANIFEST).exists() and not args.force:
        raise InvalidDataError(f"{args.out} already holds a meta-label model; pass --force")
    settings = load_settings(args.config)
    strategy = build_strategy(settings)
    if strategy.classic is None:
        raise InvalidDataError(
            f"{args.config}: strategy.kind {settings.strategy.kind} has no classic strategy; "
            "--meta-label learns a classic or ml_enhanced config's [strategy.classic] signals"
        )
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise InvalidDataError(f"--threshold must be within (0, 1), not {args.threshold}")
    ex = settings.execution
    cost = float(2 * (ex.taker_fee_bps + ex.slippage_bps) / 10_000)
    barriers = barrier_distances(
        strategy.rules.exits, settings.exchange.market_type, args.max_hold_bars, cost
    )
    frame = data.frame
    base = strategy.base(*(frame[c].to_numpy(dtype=float) for c in ("high", "low", "close")))
    if base is None:  # classic is set, so base is too
        raise InvalidDataError("no classic signal")
    device = resolve_device(args.device)
    set_threads(args.threads or 1)
    cfg = MetaConfig(folds=args.folds, seed=args.seed, threshold=args.threshold)
    run = train_meta(frame, base, barriers, cfg, device)
    times = frame["open_time"]
    window = {"start": _iso(int(times.iloc[0])), "end": _iso(int(times.iloc[-1]))}
    manifest = save_meta(
        run.model,
        args.out,
        {
            "model_version": f"meta-{datetime.now(UTC):%Y%m%dT%H%M%SZ}",
            "created_at": datetime.now(UTC).isoformat(),
            "timeframe": data.timeframe,
            "strategy": strategy.classic.name,
            "config": str(args.config),
            "barriers": barriers.describe(),
            "threshold": run.threshold,
            "training": {
                "window": window,
                "rows": len(frame),
                "folds": cfg.folds,
                "seed": cfg.seed,
            },
            "metrics": run.report,
        },
    )
    summary = {
        "out": str(args.out),
        "model_version": manifest["model_version"],
        "strategy": strategy.classic.name,
        "rows": len(frame),
        "barriers": barriers.describe(),
        "threshold": run.threshold,
        **run.report,
    }
    write_json_atomic(args.out / "meta_label_report.json", summary)
    print(json.dumps(summary) if args.json else _human(summary))
    return EXIT_OK


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _pct(v: object) -> str:
    return "n/a" if v is None else f"{100 * float(v):.2f} %"  # type: ignore[arg-type]


def _human(s: dict[str, Any]) -> str:
    at, all_ = s["at_threshold"], s["all_signals"]
    b = s["barriers"]
    rows = [
        f"wrote {s['out']} (meta-label model {s['model_version']}) for {s['strategy']}",
        (
            f"{s['signals']} signals, {s['oos_signals']} out of sample (walk-forward, purged); "
            f"TP {_pct(b['take_long'])} / SL {_pct(b['stop_long'])}, time barrier "
            f"{b['max_hold']} bars, costs {_pct(b['cost'])}"
        ),
        f"base rate (TP first after fees)   {_pct(s['base_rate'])}",
        (
            f"at P ≥ {at['threshold']:.3f}: precision {_pct(at['precision'])}, coverage "
            f"{_pct(at['coverage'])} ({at['confirmed']} signals confirmed)"
        ),
        f"Brier {s['brier']:.4f} (climatology {s['brier_climatology']:.4f})",
        (
            f"mean return per signal after costs: all {_pct(all_['mean_return'])}, "
            f"confirmed {_pct(at['mean_return_confirmed'])}"
        ),
    ]
    return "\n".join(rows)
