"""Chaos: SIGKILL `tbotd run` (live, against an accelerated `tbotd sim`) at random instants.

    /work/venv/bin/python benchmarks/chaos.py --kills 50 [--seed 1] [--speed 300] [--json]

Kills the daemon N times — at random instants, inside cycles, and right after the sim executed
an order whose reply it was told to lose — restarting it each time, and checks the database
against the exchange's own records after every restart and at the end: no duplicate entry for
any decision, every position's stop-loss on the exchange within seconds of restart, no order the
daemon does not know, positions/orders/fills/funding/balance equal, ``PRAGMA integrity_check`` ok.
See benchmarks/reliability/chaos.py. With ``--json`` the last line is one summary object
(``kills``, ``decisions``, ``duplicate_orders``, ``unprotected_positions``, ``mismatches``,
``integrity_ok``, ...). Exit 0 when every invariant held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.chaos import ChaosOptions, run_chaos  # noqa: E402 - after the path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed (printed; default 1)")
    parser.add_argument("--speed", type=float, default=300.0, help="market speed (default 300)")
    parser.add_argument("--workdir", type=Path, help="where logs and the database go (temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary last")
    args = parser.parse_args()
    print(f"chaos: {args.kills} kills, seed {args.seed}, speed {args.speed}", file=sys.stderr)
    options = ChaosOptions(kills=args.kills, seed=args.seed, speed=args.speed, workdir=args.workdir)
    summary = asyncio.run(run_chaos(options)).summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:24} {value}")
    clean = (
        summary["duplicate_orders"] == 0
        and summary["unprotected_positions"] == 0
        and summary["mismatches"] == 0
        and summary["integrity_ok"]
        and summary["final_exit_code"] == 0
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
