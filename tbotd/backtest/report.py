"""``report.json``, ``trades.csv``, ``decisions.csv``, ``equity.csv`` and ``equity.png``, written
all or nothing.

Outputs are written into a fresh temporary directory beside the destination and moved into place
only when every file is complete, ``report.json`` last; an interrupted or failed run leaves the
destination as it was, never a partial report that looks complete.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tbotd.backtest.equity_csv import curve_columns, write_columns
from tbotd.backtest.honesty import Span, warnings
from tbotd.backtest.metrics import DEFINITIONS, REPORT_VERSION, curve_metrics, trade_metrics
from tbotd.backtest.plot_market import MarketTrack
from tbotd.backtest.run import BacktestResult, DecisionRecord
from tbotd.config.settings import Settings
from tbotd.domain.actions import Action, ClosePosition, MoveProtection, OpenPosition
from tbotd.domain.values import ms_to_datetime, timeframe_ms
from tbotd.risk.guard import Change, Trip, describe
from tbotd.store.wallet import Trade

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "side",
    "qty",
    "entry_price",
    "exit_price",
    "exit_reason",
    "pnl",
    "fees",
    "funding",
    "stop_loss",
    "take_profit",
)
DECISION_COLUMNS = (
    "time",
    "actions",
    "strategy",
    "provenance",
    *(
        f"{who}_{what}"
        for who in ("base", "ml", "result")
        for what in ("direction", "confidence", "reasons")
    ),
)
OUTPUT_FILES = ("trades.csv", "decisions.csv", "equity.csv", "equity.png", "report.json")


def _iso(ms: int) -> str:
    return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")


def risk_events(changes: Sequence[Change]) -> list[dict[str, Any]]:
    """The guard's trips and resets, for ``report.json`` and ``risk.csv``."""
    return [
        {
            "time": _iso(c.at_ms),
            "event": c.kind,
            "rule": str(c.trip.rule) if isinstance(c.trip, Trip) else "halt",
            "symbol": c.trip.symbol if isinstance(c.trip, Trip) else None,
            "detail": describe(c.trip),
        }
        for c in changes
    ]


def build_report(
    result: BacktestResult,
    settings: Settings,
    inputs: Mapping[str, Any],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The report of one run (see :data:`tbotd.backtest.metrics.DEFINITIONS`)."""
    seconds = float(sum(timings.values()))
    simulate = timings.get("simulate_s", result.seconds)
    m, s, ex = result.market, settings.strategy, settings.execution
    first, last = int(result.equity.open_ms[0]), int(result.equity.open_ms[-1])
    span = Span(ms_to_datetime(first), ms_to_datetime(last + timeframe_ms(result.timeframe)))
    return {
        "report_version": REPORT_VERSION,
        "complete": True,
        "symbol": result.symbol,
        "currency": result.currency,
        "timeframe": result.timeframe,
        "start": _iso(first),
        "end": _iso(last + timeframe_ms(result.timeframe)),
        "bars": result.bars,
        "trades": len(result.trades),
        "strategy": result.strategy,
        "warnings": warnings(len(result.trades), span, _training_span(inputs)),
        **curve_metrics(result),
        **trade_metrics(result),
        "initial_equity": str(result.initial_equity),
        "final_equity": str(result.final_equity),
        "fees": str(result.fees),
        "funding": str(result.funding),
        "funding_payments": result.funding_payments,
        "funding_times_without_rate": result.funding_missing,
        "predictions": {
            **result.predictions,
            "total": sum(result.predictions.values()),
            "bars_without_prediction": result.bars_without_prediction,
        },
        "confident_predictions": result.confident,
        "skipped_orders": result.skipped,
        "decisions": decision_counts(result.decisions),
        "exits_replaced_by_fixed": result.exits_fallback,
        "risk": risk_events(result.risk),
        "exact_steps": result.exact_steps,
        "seconds": seconds,
        "timings": dict(timings),
        "bars_per_second": result.bars / seconds if seconds > 0 else None,
        "simulation_bars_per_second": result.bars / simulate if simulate > 0 else None,
        "market": {
            "symbol": m.symbol,
            "type": str(m.market_type),
            "tick_size": str(m.tick_size),
            "step_size": str(m.step_size),
            "min_qty": str(m.min_qty),
            "min_notional": str(m.min_notional),
            "contract_size": str(m.contract_size),
        },
        "config": {
            "kind": str(s.kind),
            **strategy_params(s),
            "mode": str(s.mode),
            "threshold": s.threshold,
            "on_neutral": str(s.on_neutral),
            "refresh_exits_on_hold": s.refresh_exits_on_hold,
            "k_sl": str(s.k_sl),
            "k_tp": str(s.k_tp),
            "stop_loss_pct": str(s.stop_loss_pct),
            "take_profit_pct": str(s.take_profit_pct),
            "leverage": ex.leverage,
            "position_fraction": str(ex.position_fraction),
            "taker_fee_bps": str(ex.taker_fee_bps),
            "slippage_bps": str(ex.slippage_bps),
            "size_buffer_bps": str(ex.size_buffer_bps),
        },
        "inputs": dict(inputs),
        "definitions": DEFINITIONS,
    }


def _training_span(inputs: Mapping[str, Any]) -> Span | None:
    """The models' training window, when the predictions came from models with a manifest."""
    window = inputs.get("training_window")
    if not window:
        return None
    return Span(datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))


def strategy_params(section: Any) -> dict[str, Any]:
    """The classic strategy's and the enhancement layer's settings, when the kind has them."""
    out = {}
    for name in ("classic", "enhance"):
        part = getattr(section, name, None)
        if part is not None:
            out[name] = part.model_dump(mode="json")
    return out


def decision_counts(records: Sequence[DecisionRecord]) -> dict[str, Any]:
    """Decisions that acted or were refused: how many, by what they did and by provenance."""
    by_action: Counter[str] = Counter()
    by_provenance: Counter[str] = Counter()
    for record in records:
        by_action[_actions(record.actions)] += 1
        provenance = record.trace.provenance
        by_provenance["none" if provenance is None else str(provenance)] += 1
    return {
        "total": len(records),
        "by_actions": dict(by_action),
        "by_provenance": dict(by_provenance),
    }


def _actions(actions: Sequence[Action]) -> str:
    """``close long + open short``, ``open long``, ``refused entry_cap``, ``move exits``."""
    words = []
    for a in actions:
        if isinstance(a, OpenPosition):
            words.append(f"open {a.side}")
        elif isinstance(a, ClosePosition):
            words.append(f"close {a.side}")
        elif isinstance(a, MoveProtection):
            words.append("move exits")
        else:
            words.append(f"refused {a.kind}" if a.kind.refusal else f"hold {a.kind}")
    return " + ".join(words)


def write_decisions(records: Sequence[DecisionRecord], path: Path) -> None:
    """``decisions.csv``: every decision that acted or was refused, with where it came from."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(DECISION_COLUMNS)
        for r in records:
            t = r.trace
            cells: list[object] = [_iso(r.open_ms), _actions(r.actions), t.strategy]
            cells.append("" if t.provenance is None else str(t.provenance))
            for opinion in (t.base, t.ml, t.result):
                if opinion is None:
                    cells.extend(("", "", ""))
                else:
                    reasons = "+".join(str(x) for x in opinion.reasons)
                    cells.extend((str(opinion.direction), f"{opinion.confidence:.6g}", reasons))
            writer.writerow(cells)


def clean(value: Any) -> Any:
    """Strict JSON: NaN/inf → null, numpy scalars → Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def trade_row(t: Trade) -> tuple[object, ...]:
    """One trade in ``TRADE_COLUMNS`` order, money as exact decimals, times in UTC ``Z``."""
    return (
        t.entry_time.isoformat().replace("+00:00", "Z"),
        t.exit_time.isoformat().replace("+00:00", "Z"),
        str(t.side),
        t.qty,
        t.entry_price,
        t.exit_price,
        t.exit_reason,
        t.pnl,
        t.fees,
        t.funding,
        "" if t.stop_loss is None else t.stop_loss,
        "" if t.take_profit is None else t.take_profit,
    )


def write_trades(trades: Sequence[Trade], path: Path) -> None:
    """``trades.csv``: one row per closed trade, money as exact decimals."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(trade_row(t) for t in trades)


def _write_equity(result: BacktestResult, path: Path) -> None:
    write_columns(path, curve_columns(result.equity, float(result.initial_equity)))


def write_outputs(
    out: Path, result: BacktestResult, report: Mapping[str, Any], track: MarketTrack | None = None
) -> list[Path]:
    """Write every output into ``out`` (created if needed), all or nothing; report.json last.
    ``track`` (prices, confidence, threshold) adds the market panels to the plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_trades(result.trades, tmp / "trades.csv")
        write_decisions(result.decisions, tmp / "decisions.csv")
        _write_equity(result, tmp / "equity.csv")
        from tbotd.backtest.plot import plot_equity

        plot_equity(result, tmp / "equity.png", track)
        text = json.dumps(clean(dict(report)), indent=2, sort_keys=False)
        (tmp / "report.json").write_text(text + "\n", encoding="utf-8")
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        out.mkdir(exist_ok=True)
        (out / "report.json").unlink(missing_ok=True)  # no stale report beside new files
        for name in OUTPUT_FILES:
            (tmp / name).replace(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in OUTPUT_FILES]
