"""Hostile: `tbotd run` (live, against an accelerated `tbotd sim`) under everything an adversarial
user found — hostile predictions, hands on the account, a second daemon, a disk that fills up.

    python benchmarks/hostile.py [--candles 24] [--speed 300] [--no-disk] [--json]

See benchmarks/reliability/hostile.py. With ``--json`` the last line is one summary object
(``duplicate_orders``, ``unprotected_positions`` (intervals beyond the bounded window, by the
strict definition), ``mismatches``, ``unknown_orders``, ``bookkeeping_equal``, ...). Exit 0 when
every invariant held, 1 otherwise. The disk phase mounts a 16 MiB tmpfs (root); without that
permission it is skipped and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.hostile import HostileOptions, run_hostile  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candles", type=int, default=24, help="hostile-prediction candles")
    parser.add_argument("--speed", type=float, default=300.0, help="market speed (default 300)")
    parser.add_argument("--no-disk", action="store_true", help="skip the full-disk phase")
    parser.add_argument("--workdir", type=Path, help="where logs and the database go (temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary last")
    args = parser.parse_args()
    options = HostileOptions(
        candles=args.candles, speed=args.speed, disk=not args.no_disk, workdir=args.workdir
    )
    summary = asyncio.run(run_hostile(options)).summary()
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for key, value in summary.items():
            print(f"{key:28} {value}")
    clean = (
        summary["duplicate_orders"] == 0
        and summary["unprotected_positions"] == 0
        and summary["mismatches"] == 0
        and summary["unknown_orders"] == 0
        and summary["bookkeeping_equal"]
        and not summary["stops_out_of_bounds"]
        and summary["entries_on_absurd_prices"] == 0
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
