"""Soak: one live daemon for thousands of accelerated cycles; RSS and open fds must not grow.

    /work/venv/bin/python benchmarks/soak.py [--cycles 2000] [--speed 2000] [--json]

Runs `tbotd run` (live) against `tbotd sim` at ``--speed`` (2000: a 5-minute candle every
0.15 s, 2,000 cycles ≈ 7 market days in ~5 minutes) with the oracle's predictions, dropping the
websockets every 50 cycles and failing the ML service for 5 cycles every 200, and samples the
daemon's VmRSS and open file descriptors from /proc. Prints start/end/max and the slope per
1,000 cycles of each, the cycle time early and late, and the invariants at the end. See
benchmarks/reliability/soak.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.soak import SoakOptions, run_soak  # noqa: E402 - after the path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=2000, help="cycles to run (2000)")
    parser.add_argument("--speed", type=float, default=2000.0, help="market speed (2000)")
    parser.add_argument("--workdir", type=Path, help="where logs and the database go (temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    options = SoakOptions(cycles=args.cycles, speed=args.speed, workdir=args.workdir)
    figures = asyncio.run(run_soak(options))
    for key, value in figures.items():
        if key not in ("series", "findings"):
            print(f"{key:26} {value}")
    if args.json:
        print(json.dumps(figures))
    return 0 if figures["invariants_ok"] and figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
