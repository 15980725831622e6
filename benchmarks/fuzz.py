"""The long fuzz campaign: every hypothesis test, new random examples each round, for N minutes.

    python benchmarks/fuzz.py --minutes 30            # all property tests, random seeds
    python benchmarks/fuzz.py --minutes 5 -k fuzz     # only the input fuzzers

`pytest` alone is deterministic (the same examples every run); this draws fresh ones
(``HYPOTHESIS_PROFILE=fuzz``) round after round until the time is up, and stops at the first
failure, printing hypothesis' falsifying example and its reproduction blob. Add what it finds to
the test as an ``@example(...)`` so the deterministic suite keeps it: a regression example.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run rounds until ``--minutes`` have passed or one fails; exit 1 on a failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("-k", default="", help="pytest -k expression (default: every test)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    env = os.environ | {"HYPOTHESIS_PROFILE": "fuzz"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    command += ["-m", "not slow", "tests/unit", "tests/reliability"]
    if args.k:
        command += ["-k", args.k]
    rounds = 0
    while time.monotonic() < deadline:
        done = subprocess.run(command, cwd=REPO, env=env, check=False)
        rounds += 1
        if done.returncode not in (0, 5):  # 5: nothing selected
            print(f"fuzz: round {rounds} failed; add the falsifying example above as @example")
            return 1
    print(f"fuzz: {rounds} rounds of fresh examples in {args.minutes:g} min, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
