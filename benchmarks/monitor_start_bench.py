"""What a daemon start and a normal grading pass cost the event loop, however long the history.

    .venv/bin/python benchmarks/monitor_start_bench.py [--predictions 200000] [--symbols 20]
        [--rounds 5] [--json]

Builds a database of ``--predictions`` graded predictions of one model (``--symbols`` symbols,
one prediction per symbol and 5-minute candle, written with plain SQL, their since-live tally
stored as the scoring pass would), then times on it:

* **start-up load** — what a new :class:`ModelMonitor` reads before its first pass
  (:func:`load_saved`: the stored tally rows and the newest 1,000 rows per model), each round on
  a freshly opened store;
* **normal pass** — ``ModelMonitor.run`` after a close: one new due prediction per symbol
  (``--symbols`` in all) graded from stored candles, recorded with its tally and the cursor;
* **before** — for comparison, what the first pass read before the tallies were stored: every
  graded prediction (``store.graded()``) folded into tallies and windows;
* **models status** — a whole `tbotd models status --db … --json` process on that database.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tbotd.daemon.monitor import ModelMonitor, RuleBook, load_saved
from tbotd.domain.values import datetime_to_ms
from tbotd.monitoring.live import by_model, live_of
from tbotd.monitoring.metrics import WINDOWS
from tbotd.monitoring.outcomes import LabelOrigin, LabelRule
from tbotd.store import Store
from tbotd.store.outcomes import CURSOR_KEY

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)
RULES = RuleBook(LabelRule(2, 0.001, LabelOrigin.DEFAULT))
SIGNALS = ("long", "short", "neutral")


def _symbols(n: int) -> list[str]:
    return [f"S{i:02d}/USDT:USDT" for i in range(n)]


def build(path: Path, predictions: int, symbols: int) -> tuple[int, float]:
    """The graded history; returns the next free bar index and how long the old fold took."""
    rng = random.Random(7)
    store = Store.open(path)
    names, bars = _symbols(symbols), predictions // symbols
    with store.transaction():
        store.db.conn.executemany(
            """INSERT INTO predictions (id, symbol, candle_time, signal, confidence, sd, regime,
               model_version, source, latency_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
            (
                (k * symbols + i + 1, s, datetime_to_ms(T0 + k * BAR), SIGNALS[(k + i) % 3],
                 0.4 + rng.random() / 2, 0.02, None, "m1", "local-cpu", 1.0,
                 datetime_to_ms(T0 + k * BAR))
                for k in range(bars) for i, s in enumerate(names)
            ),
        )  # fmt: skip
        store.db.conn.executemany(
            """INSERT INTO outcomes (prediction_id, kind, horizon, band, label_origin, fwd_return,
               realised, correct, hit, past_return, inside_sd, stayed_in_sd, scored_at)
               SELECT id, 'scored', 2, 0.001, 'default', ?, 'long', ?, ?, ?, 1, 1, created_at
               FROM predictions WHERE id = ?""",
            (
                (rng.gauss(0, 0.01), b, b, rng.gauss(0, 0.01), pid)
                for pid in range(1, bars * symbols + 1)
                for b in (rng.random() < 0.52,)
            ),
        )
        store.set_meta(CURSOR_KEY, str(bars * symbols))
    start = time.perf_counter()  # the old first pass: every graded row, folded
    groups = by_model(store.graded())
    live = live_of(g for rows in groups.values() for g in rows)
    _ = {k: rows[-max(WINDOWS) :] for k, rows in groups.items()}
    before = time.perf_counter() - start
    with store.transaction():
        store.add_live(live)
    store.close()
    return bars, before


def close(store: Store, symbols: list[str], k: int) -> None:
    """Bar ``k``: a prediction per symbol, and the candles that make bar ``k - 2``'s due."""
    from decimal import Decimal

    from tbotd.domain.market import Candle

    store.record_candles(
        Candle(s, "5m", T0 + j * BAR, *(Decimal(100 + j % 7),) * 4, Decimal(1))
        for s in symbols
        for j in range(k - 4, k + 1)
    )
    with store.transaction():
        for i, s in enumerate(symbols):
            store.db.execute(
                """INSERT INTO predictions (symbol, candle_time, signal, confidence, sd,
                   model_version, source, latency_ms, created_at)
                   VALUES (?,?,?,?,?,?,?,?,?)""",
                (s, datetime_to_ms(T0 + k * BAR), SIGNALS[i % 3], 0.6, 0.02, "m1", "local-cpu",
                 1.0, datetime_to_ms(T0 + k * BAR)),
            )  # fmt: skip


def measure(path: Path, bars: int, symbols: int, rounds: int) -> dict[str, list[float]]:
    """Start-up loads and normal passes, ``rounds`` of each (seconds)."""
    names = _symbols(symbols)
    loads, passes, rows = [], [], []
    for r in range(rounds):
        store = Store.open(path)
        start = time.perf_counter()
        saved = load_saved(store)
        loads.append(time.perf_counter() - start)
        rows.append(float(sum(len(v) for v in saved.recent.values())))
        monitor = ModelMonitor(store, "5m", RULES)
        monitor.run(T0 + (bars + 3 * r) * BAR)  # the start (load) and whatever was waiting
        k = bars + 3 * r + 2
        close(store, names, k - 2)  # a prediction on bar k - 2 ...
        close(store, names, k)  # ... due now that bar k is stored
        start = time.perf_counter()
        graded = monitor.run(T0 + k * BAR)
        passes.append(time.perf_counter() - start)
        if graded < symbols:
            sys.exit(f"expected at least {symbols} graded in the pass, got {graded}")
        store.close()
    return {"load_s": loads, "pass_s": passes, "rows_read": rows}


def models_status_seconds(path: Path) -> float:
    """Wall time of a whole `tbotd models status --db PATH --json` process (imports included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tbotd", "models", "status", "--db", str(path), "--json"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> int:
    """Build, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        t = time.perf_counter()
        bars, before = build(path, args.predictions, args.symbols)
        built = time.perf_counter() - t
        result = measure(path, bars, args.symbols, args.rounds)
        status_s = [models_status_seconds(path) for _ in range(args.rounds)]
    summary = {
        "predictions": bars * args.symbols,
        "symbols": args.symbols,
        "build_s": round(built, 1),
        "before_first_pass_s": round(before, 3),
        "load_ms_median": round(statistics.median(result["load_s"]) * 1000, 2),
        "load_ms_max": round(max(result["load_s"]) * 1000, 2),
        "pass_ms_median": round(statistics.median(result["pass_s"]) * 1000, 2),
        "pass_ms_max": round(max(result["pass_s"]) * 1000, 2),
        "rows_read_at_start": int(max(result["rows_read"])),
        "models_status_s_median": round(statistics.median(status_s), 3),
        "models_status_s_max": round(max(status_s), 3),
    }
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
