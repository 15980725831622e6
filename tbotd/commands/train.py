"""`tbotd train --data CSV | --db FILE --out DIR`: fit the local models and report them honestly.

Writes ``DIR/manifest.json`` (last, so an interrupted run leaves no loadable half-directory),
``direction|volatility|regime.safetensors``, ``report.json`` and ``report.png``. Every metric in
the report is walk-forward out-of-sample and sits beside naive baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_FAILURE, EXIT_OK, threads_arg

if TYPE_CHECKING:
    from tbotd.ml.pipeline import ProgressFn


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the train subcommand."""
    p = sub.add_parser(
        "train",
        help="train the local models from candles (walk-forward report, weights, manifest)",
        description="Train the direction, volatility and regime models from closed candles. "
        "Metrics are walk-forward out-of-sample (purged) and shown beside naive baselines. "
        "Exit 0 ok, 2 bad input (bad rows are listed by line), 1 runtime failure.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data",
        type=Path,
        metavar="CSV",
        help="candles: timestamp,open,high,low,close,volume (.csv or .csv.gz)",
    )
    src.add_argument(
        "--db", type=Path, metavar="FILE", help="a tbotd SQLite store (its candles table)"
    )
    p.add_argument("--symbol", default="BTC/USDT:USDT", help="symbol to read with --db")
    p.add_argument("--timeframe", default="5m", help="timeframe to read with --db")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="model directory to write"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    p.add_argument("--horizon", type=_positive, default=12, help="label horizon in bars (12)")
    p.add_argument("--fee-bps", type=float, default=5.0, help="taker fee per side, bps (5)")
    p.add_argument("--neutral-bps", type=float, default=None, help="neutral band, bps (2 × fee)")
    p.add_argument("--regime-window", type=_positive, default=24, help="regime half-window, bars")
    p.add_argument("--epochs", type=_positive, default=10, help="max epochs per fit (10)")
    p.add_argument("--folds", type=_positive, default=4, help="walk-forward test folds (4)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same weights")
    p.add_argument("--max-rows", type=_positive, default=None, help="use only the newest N candles")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the confidence a strategy acts at: coverage and hit rate at it, and the 2nd "
        "backtest (the --config's strategy.threshold, else 0.55)",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="take --threshold from this config")
    p.add_argument(
        "--threads",
        type=threads_arg,
        default=None,
        metavar="auto|N",
        help="torch CPU threads; auto (default): 1 for models this small, which is not slower "
        "when another job holds a core and gives the same weights whatever the load",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument(
        "--meta-label",
        action="store_true",
        help="train the meta-label model of the --config's classic strategy instead: P(its "
        "signal reaches take-profit before stop-loss after fees); --threshold defaults to the "
        "break-even probability",
    )
    p.add_argument(
        "--max-hold-bars",
        type=_positive,
        default=48,
        help="--meta-label: the time barrier, bars a labelled trade may stay open (48)",
    )
    p.set_defaults(handler=run)


def _progress(enabled: bool) -> tuple[ProgressFn | None, Any]:
    """A rich progress bar on a terminal (stderr), else nothing."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("features", total=None)

    def update(what: str, done: int, total: int) -> None:
        bar.update(task, description=what, completed=done, total=total)

    return update, bar


def run(args: argparse.Namespace) -> int:
    """Load and check candles, train, write the model directory, print the summary."""
    from tbotd.domain.errors import InvalidDataError
    from tbotd.marketdata.candle_csv import read_candle_csv
    from tbotd.ml.data import read_store

    data = (
        read_candle_csv(args.data)
        if args.data
        else read_store(args.db, args.symbol, args.timeframe)
    )
    if args.max_rows:
        data = type(data)(
            data.frame.tail(args.max_rows).reset_index(drop=True),
            data.source,
            data.timeframe,
            data.gaps,
        )
    if data.gaps:
        print(
            f"tbotd train: warning: {data.gaps} gap(s) between candles in {data.source}; features "
            "and labels count rows as consecutive bars across them",
            file=sys.stderr,
        )
    if args.meta_label:
        from tbotd.commands.train_meta import run_meta

        return run_meta(args, data)
    if (args.out / "manifest.json").exists() and not args.force:
        raise InvalidDataError(f"{args.out} already holds a model; pass --force to replace it")
    args.threshold = _threshold(args)
    if not 0 <= args.threshold <= 1:
        raise InvalidDataError(f"--threshold must be within [0, 1], not {args.threshold}")
    from tbotd.ml.device import auto_threads, resolve_device, set_threads
    from tbotd.ml.labels import LabelSpec
    from tbotd.ml.pipeline import TrainConfig
    from tbotd.ml.trainer import FitConfig

    device = resolve_device(args.device)
    fit = FitConfig(epochs=args.epochs, seed=args.seed)
    set_threads(args.threads or auto_threads(fit.hidden, fit.batch_size))
    try:
        label = LabelSpec(args.horizon, args.fee_bps, args.neutral_bps, args.regime_window)
    except ValueError as e:
        raise InvalidDataError(str(e)) from e
    cfg = TrainConfig(
        label=label,
        fit=fit,
        folds=args.folds,
        threshold=args.threshold,
        timeframe=data.timeframe,
    )
    progress, bar = _progress(sys.stderr.isatty())
    try:
        if bar is not None:
            bar.start()
        from tbotd.ml.output import write_model_dir

        summary = write_model_dir(data, cfg, device, args.out, progress)
    except (OSError, RuntimeError) as e:
        print(f"tbotd train: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        print(json.dumps(summary))
    else:
        print(_human(summary))
    return EXIT_OK


def _threshold(args: argparse.Namespace) -> float:
    """--threshold, else the config's strategy.threshold, else 0.55 (a bad config: exit 2)."""
    if args.threshold is not None:
        return float(args.threshold)
    if args.config is None:
        return 0.55
    from tbotd.config import load_settings

    return float(load_settings(args.config).strategy.threshold)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _at_threshold(at: dict[str, Any], bars: int) -> str:
    """How often a strategy at this threshold would act, and how often it would be right."""
    return (
        f"{'at confidence ≥ ' + format(at['threshold'], 'g'):26}{_pct(at['hit_rate']):>12}"
        f"   {at['n_calls']:,} of {bars:,} out-of-sample bars call ({_pct(at['coverage'])})"
    )


_BASELINES = (
    ("always_long", "always long", 14),
    ("persistence", "persistence", 14),
    ("contrarian", "contrarian", 13),
    ("coin_flip", "coin flip", 12),
)


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} pts"


def _calibration(c: dict[str, Any]) -> str:
    """Calibration in the bins thresholds act on, beside the uncalibrated probabilities."""
    cal, raw = c["calibrated"], c["uncalibrated"]
    high, raw_high = cal["ece_high_confidence"], raw["ece_high_confidence"]
    return (
        f"{'calibration (' + c['final_method'] + ')':26}"
        f"error at confidence ≥ 0.6: {_points(None if high is None else 100 * high)} "
        f"(uncalibrated {_points(None if raw_high is None else 100 * raw_high)})\n"
        f"{'':26}worst bin with ≥ 300 calls {_points(cal['max_gap_points'])} "
        f"(uncalibrated {_points(raw['max_gap_points'])}), target ≤ 5: "
        + ("met" if cal["target_met"] else "NOT met")
    )


def _human(s: dict[str, Any]) -> str:
    d, b, bt = s["direction"], s["baselines"], s["backtest"]
    rows = [
        (
            f"wrote {s['out']} (model {s['model_version']}) "
            f"in {s['train_seconds']:.1f} s on {s['device']}"
        ),
        f"{s['rows']} candles, {s['oos_bars']} out-of-sample bars (walk-forward, purged)",
        "",
        f"{'':26}{'model':>12}" + "".join(f"{title:>{w}}" for _, title, w in _BASELINES),
        f"{'hit rate (non-neutral)':26}{_pct(d['hit_rate']):>12}"
        + "".join(f"{_pct(b[k]['hit_rate']):>{w}}" for k, _, w in _BASELINES),
        f"{'backtest after fees':26}{_pct(bt['total_return']):>12}"
        + "".join(f"{_pct(b[k]['total_return']):>{w}}" for k, _, w in _BASELINES),
        _at_threshold(d["at_threshold"], s["oos_bars"]),
        _calibration(s["calibration"]),
        "",
        (
            f"calls {d['n_calls']}, Brier {d['brier']:.4f} "
            f"(climatology {d['brier_climatology']:.4f}); backtest Sharpe {bt['sharpe']:.2f}, "
            f"max drawdown {_pct(bt['max_drawdown'])}, fees {_pct(bt['fees'])}"
        ),
        "The backtest is a simple vectorised signal test (see report.json), not `tbotd backtest`.",
    ]
    return "\n".join(rows)
