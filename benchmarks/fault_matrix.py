"""The fault matrix: the daemon (live, against `tbotd sim`) through each fault in turn.

    /work/venv/bin/python benchmarks/fault_matrix.py [--cycles 20] [--speed 100] [--json]
        [--fault NAME ...] [--models DIR]

Faults: websocket drops, 10 % REST 5xx, 10 % REST timeouts, 429 bursts, clock skew inside and
beyond the venue's tolerance, the ML service down / slow / answering garbage / refusing the
token. Figures per fault: candles decided on time, missed, prediction sources used, orders,
failed cycles; for the whole run: duplicate orders, unknown orders, database-vs-exchange
mismatches. See benchmarks/reliability/matrix.py. ``--models DIR`` (or ``--train-models DIR``)
gives the daemon local models (the remote → local fallback); without them a failing ML service
falls back to neutral.
Exit 0 when no duplicate, unknown order, mismatch or unprotected position was found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.matrix import (  # noqa: E402 - after the path
    MatrixOptions,
    run_matrix,
    train_models,
)


def table(figures: dict[str, Any]) -> str:
    """The matrix as a Markdown table."""
    header = (
        "| fault | candles | on time | missed | delay p50 / max (ms) | sources | orders "
        "| failed cycles | unprotected after |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for r in figures["faults"]:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items()))
        lines.append(
            f"| {r['fault']} | {r['candles']} | {r['on_time']} | {r['missed']} "
            f"| {r['delay_ms_median']} / {r['delay_ms_max']} | {sources} | {r['orders']} "
            f"| {r['failed_cycles']} | {r['unprotected_after']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="candles per fault (20)")
    parser.add_argument("--speed", type=float, default=100.0, help="market speed (100)")
    parser.add_argument("--fault", action="append", default=[], help="only these (repeatable)")
    parser.add_argument("--models", type=Path, help="local model directory for the daemon")
    parser.add_argument(
        "--train-models",
        type=Path,
        metavar="DIR",
        help="first train small local models on the sim's history into DIR (about a minute)",
    )
    parser.add_argument("--workdir", type=Path, help="where logs and the database go (temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.train_models is not None:
        args.models = train_models(args.train_models)
    options = MatrixOptions(
        cycles=args.cycles,
        speed=args.speed,
        faults=tuple(args.fault),
        models_dir=args.models,
        workdir=args.workdir,
    )
    figures = asyncio.run(run_matrix(options))
    print(table(figures))
    for key in ("duplicate_orders", "unknown_orders", "mismatches", "unprotected_at_end"):
        print(f"{key}: {figures[key]}")
    if args.json:
        print(json.dumps(figures))
    bad = [r for r in figures["faults"] if r["unprotected_after"]]
    clean = not bad and not any(
        figures[k] for k in ("duplicate_orders", "unknown_orders", "mismatches")
    )
    return 0 if clean and figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
