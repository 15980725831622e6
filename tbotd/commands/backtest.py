"""`tbotd backtest`: the daemon's own strategy and fill code over historical candles.

Exit codes: 0 ok, 2 bad input (config, CSV rows — named by file and line —, model directory),
1 runtime failure. Outputs are written all or nothing (see :mod:`tbotd.backtest.report`, and
:mod:`tbotd.backtest.compare_report` for ``--compare``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbotd.commands import EXIT_FAILURE, EXIT_OK
from tbotd.commands.backtest_portfolio import add_portfolio_arguments, read_markets
from tbotd.commands.backtest_summary import print_summary

if TYPE_CHECKING:
    from tbotd.backtest import BacktestResult, PredictionTable
    from tbotd.backtest.plot_market import MarketTrack
    from tbotd.config.settings import Settings
    from tbotd.domain.market import MarketSpec
    from tbotd.ml.data import CandleData


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {number}")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _decimal(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from e
    if not number.is_finite() or number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a non-negative number")
    return number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the backtest subcommand."""
    p = sub.add_parser(
        "backtest",
        help="replay candles (and predictions) through the daemon's strategy and paper fill model",
        description="Backtest with the same strategy (strategy.kind: signal source + position "
        "rules) and fill code (paper model: fees, slippage, funding, liquidation, stop-loss "
        "before take-profit) the daemon runs. Predictions come from a CSV or from local models "
        "(a classic strategy needs none). --compare runs an ml_enhanced config as nine arms "
        "(classic alone, each enhancement mode, ML alone, the pure ML kinds ml_momentum and "
        "ml_mean_reversion, buy and hold) and says whether ML helped. Exit 0 ok, 2 bad input "
        "(bad rows are listed by file and line), 1 runtime "
        "failure.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help="tbotd TOML config")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="CANDLES.csv",
        help="candles: timestamp,open,high,low,close,volume (.csv or .csv.gz); for several "
        "symbols from one wallet repeat SYMBOL=FILE, or give a directory",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--predictions",
        action="append",
        metavar="PRED.csv",
        help="timestamp,signal,confidence plus stop_loss,take_profit or sd, and optionally "
        "p_trend_down,p_sideways,p_trend_up (needed unless strategy.kind is classic)",
    )
    src.add_argument(
        "--models", type=Path, metavar="DIR", help="a model directory written by `tbotd train`"
    )
    p.add_argument(
        "--funding",
        action="append",
        metavar="FUNDING.csv",
        help="timestamp,funding_rate (8-hourly); SYMBOL=FILE or a directory for several",
    )
    add_portfolio_arguments(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="write report.json, trades.csv, ...")
    p.add_argument("--json", action="store_true", help="print the report as one JSON last line")
    p.add_argument("--symbol", help="which configured symbol the candles are (default: first)")
    p.add_argument(
        "--max-prediction-age",
        type=_count,
        default=0,
        metavar="N",
        help="use the newest prediction up to N bars old when a candle has none (default 0: "
        "only the candle's own, as the daemon)",
    )
    p.add_argument(
        "--allow-gaps", action="store_true", help="backtest across missing candles (warns)"
    )
    p.add_argument(
        "--warmup-bars",
        type=_count,
        default=0,
        metavar="N",
        help="the first N candles only warm the indicators up: nothing is decided on them (as "
        "the history a daemon loads before its first cycle)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="for --models (config)")
    p.add_argument(
        "--compare",
        action="store_true",
        help="(an ml_enhanced config) run classic, boost, filter, replace, hybrid, "
        "ml_directional, ml_momentum, ml_mean_reversion and buy_and_hold on the same inputs; "
        "write compare.json, "
        "trades/<arm>.csv, decisions/<arm>.csv, compare.png",
    )
    p.add_argument(
        "--block-bars",
        type=_positive,
        default=288,
        metavar="N",
        help="--compare: bootstrap block length in bars (default 288: one day of 5m bars)",
    )
    p.add_argument(
        "--resamples",
        type=_positive,
        default=2000,
        metavar="N",
        help="--compare: bootstrap resamples (default 2000)",
    )
    p.add_argument("--seed", type=_count, default=0, help="--compare: bootstrap seed (default 0)")
    for name in ("tick-size", "step-size", "min-qty", "min-notional", "contract-size"):
        p.add_argument(f"--{name}", type=_decimal, help=f"override the market's {name}")
    p.set_defaults(handler=run)


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _model_predictions(
    args: argparse.Namespace, settings: Settings, data: CandleData
) -> tuple[PredictionTable, dict[str, Any]]:
    from tbotd.backtest import PredictionTable
    from tbotd.domain.errors import InvalidDataError
    from tbotd.ml.errors import ModelLoadError
    from tbotd.predictor.local import LocalPredictor

    device = args.device or settings.ml.device.value
    try:
        predictor = LocalPredictor.load(args.models, device, threads=os.cpu_count() or 1)
    except ModelLoadError as e:
        raise InvalidDataError(f"{args.models}: {e}") from e
    with predictor:
        if predictor.manifest.timeframe != data.timeframe:
            raise InvalidDataError(
                f"{args.models}: models were trained on {predictor.manifest.timeframe} candles, "
                f"{data.source} has {data.timeframe}"
            )
        if len(data.frame) < predictor.required_history:
            raise InvalidDataError(
                f"{data.source}: {len(data.frame)} candles, the models need "
                f"{predictor.required_history} before their first prediction"
            )
        history = predictor.predict_history(data.frame)
        table = PredictionTable.from_history(
            history,
            data.frame["open_time"].to_numpy(),
            predictor.source,
            predictor.model_version,
        )
        about: dict[str, Any] = {
            "models": str(args.models),
            "model_version": predictor.model_version,
        }
        window = predictor.manifest.training.get("window") or {}
        if window.get("start") and window.get("end"):
            about["training_window"] = {"start": window["start"], "end": window["end"]}
        return table, about | {"device": predictor.device.type}


@dataclass
class LoadedInputs:
    settings: Settings
    market: MarketSpec
    data: CandleData
    funding: dict[int, Decimal]
    table: PredictionTable | None
    about: dict[str, Any]
    timings: dict[str, float]


def _load(args: argparse.Namespace) -> LoadedInputs:
    """Config, market rules, candles, funding and predictions; bad input raises (exit 2)."""
    from tbotd.backtest import read_candles, read_funding, read_predictions_csv
    from tbotd.config.loader import load_settings
    from tbotd.domain.errors import InvalidDataError
    from tbotd.domain.markets import market_spec
    from tbotd.domain.values import timeframe_ms

    clock = time.perf_counter()
    settings = load_settings(args.config)
    symbol = args.symbol or settings.exchange.symbols[0]
    if symbol not in settings.exchange.symbols:
        raise InvalidDataError(f"--symbol {symbol} is not in {args.config}'s exchange.symbols")
    rules = None if args.markets is None else read_markets(args.markets)
    market = market_spec(
        symbol,
        settings.exchange.market_type,
        table=rules,
        tick_size=args.tick_size,
        step_size=args.step_size,
        min_qty=args.min_qty,
        min_notional=args.min_notional,
        contract_size=args.contract_size,
    )
    data, gaps = read_candles(args.data, settings.exchange.timeframe, args.allow_gaps)
    for gap in gaps[:5]:
        print(f"tbotd backtest: warning: {args.data}: {gap}", file=sys.stderr)
    funding = read_funding(args.funding) if args.funding else {}
    if not args.funding:
        print("tbotd backtest: warning: no --funding: funding is not charged", file=sys.stderr)
    about: dict[str, Any] = {
        "data": str(args.data),
        "funding": str(args.funding) if args.funding else None,
        "max_prediction_age": args.max_prediction_age,
        "warmup_bars": args.warmup_bars,
        "gaps": len(gaps),
    }
    table: PredictionTable | None = None
    if not args.predictions and not args.models:
        if args.compare or settings.strategy.kind != "classic":
            need = "--compare" if args.compare else f"strategy.kind {settings.strategy.kind}"
            raise InvalidDataError(f"{need} needs predictions: pass --predictions or --models")
        timings = {"load_s": time.perf_counter() - clock}
    elif args.predictions:
        table = read_predictions_csv(args.predictions)
        about["predictions"] = str(args.predictions)
        if gaps:
            open_ms = data.frame["open_time"].to_numpy()
            table, dropped = table.without_gap_rows(open_ms, timeframe_ms(data.timeframe))
            about["predictions_in_gaps"] = dropped
            if dropped:
                print(
                    f"tbotd backtest: warning: {dropped} prediction(s) for missing candles ignored",
                    file=sys.stderr,
                )
        timings = {"load_s": time.perf_counter() - clock}
    else:
        timings = {"load_s": time.perf_counter() - clock}
        clock = time.perf_counter()
        table, models = _model_predictions(args, settings, data)
        about |= models
        timings["predict_s"] = time.perf_counter() - clock
    return LoadedInputs(settings, market, data, funding, table, about, timings)


def _simulate(args: argparse.Namespace, inp: LoadedInputs) -> BacktestResult:
    """run_backtest, with a progress bar when stderr is a terminal."""
    from tbotd.backtest import run_backtest

    bar = _progress(sys.stderr.isatty())
    progress = None
    if bar is not None:
        bar.start()
        task = bar.add_task("simulating", total=len(inp.data.frame))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

    try:
        return run_backtest(
            inp.data,
            inp.table,
            inp.settings,
            inp.funding,
            inp.market,
            max_prediction_age=args.max_prediction_age,
            progress=progress,
            warmup_bars=args.warmup_bars,
        )
    finally:
        if bar is not None:
            bar.stop()


def run(args: argparse.Namespace) -> int:
    """Load and check the inputs, run the backtest, write the outputs, print the summary."""
    from tbotd.backtest.honesty import buy_and_hold_return
    from tbotd.backtest.report import build_report, clean, write_outputs
    from tbotd.ops.logs import configure_logging

    configure_logging("error", "console", sys.stderr)  # fallbacks are counted in the report
    from tbotd.commands.backtest_portfolio import is_portfolio, run_portfolio_command, single

    if is_portfolio(args):
        return run_portfolio_command(args)
    single(args)
    inp = _load(args)
    if args.compare:
        from tbotd.commands.backtest_compare import run_compare_command

        return run_compare_command(args, inp)
    result = _simulate(args, inp)
    timings = inp.timings | {"simulate_s": result.seconds}
    clock = time.perf_counter()
    report = build_report(result, inp.settings, inp.about, timings)
    frame = inp.data.frame
    report["buy_and_hold_return"] = buy_and_hold_return(
        frame["open"].to_numpy(), frame["close"].to_numpy()
    )
    report["timings"]["report_s"] = time.perf_counter() - clock
    if args.out is not None:
        try:
            write_outputs(args.out, result, report, _track(inp))
        except OSError as e:
            print(f"tbotd backtest: cannot write {args.out}: {e}", file=sys.stderr)
            return EXIT_FAILURE
    else:
        print("tbotd backtest: no --out given: no files written", file=sys.stderr)
    if args.json:
        print(json.dumps(clean(report)))
    else:
        print_summary(report, result, args.out)
    return EXIT_OK


def _track(inp: LoadedInputs) -> MarketTrack:
    """What the plot's market panels show: closes, the predictions' confidence, the threshold."""
    import numpy as np

    from tbotd.backtest.plot_market import MarketTrack

    frame, table = inp.data.frame, inp.table
    times = table.time_ms if table is not None else np.zeros(0, dtype=np.int64)
    confidence = table.confidence if table is not None else np.zeros(0)
    return MarketTrack(
        frame["open_time"].to_numpy(np.int64),
        frame["close"].to_numpy(np.float64),
        times,
        confidence,
        inp.settings.strategy.threshold,
    )
