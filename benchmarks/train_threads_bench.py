"""`tbotd train` with 1, 2 and auto torch threads, on a quiet box and with one core busy.

    .venv/bin/python benchmarks/train_threads_bench.py [--rows N] [--repeats N] [--json]

Each run is a fresh `python -m tbotd train` process (torch reads its OpenMP settings once, at
import) on the newest ``--rows`` real Binance BTC/USDT 5-minute candles of ``../shared/data``
(default one year, 105,120). "busy" starts a pure-Python busy loop pinned to the first core this
process may use before the run and stops it after. ``2`` runs with tbotd's ``OMP_WAIT_POLICY=
PASSIVE``; ``2, before`` with the variable empty, which libgomp ignores (with a warning): its
default, idle workers spin a while before they sleep, as before this change.
The figure is the `train_seconds` the command reports (wall time of fitting, imports excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSV_NAME = "binance_BTCUSDT_5m_2023-01-01_2024-05-14.csv.gz"

CASES = (("1", {}), ("2", {}), ("2, before", {"OMP_WAIT_POLICY": ""}), ("auto", {}))
BUSY = "import os\nos.sched_setaffinity(0, {%d})\nwhile True:\n    pass\n"


def find_csv(explicit: str | None) -> Path | None:
    """The real candles: --data, else ../shared/data beside the repository, else /work/shared."""
    if explicit:
        return Path(explicit)
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        if (path := base / "shared" / "data" / CSV_NAME).is_file():
            return path
    return None


def train_seconds(csv: Path, rows: int, threads: str, env: dict[str, str]) -> float:
    """One `tbotd train` process; the training time it reports."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "tbotd", "train", "--data", str(csv), "--out", out]
        cmd += [
            "--max-rows",
            str(rows),
            "--threads",
            threads.split(",", maxsplit=1)[0],
            "--json",
            "--force",
        ]
        done = subprocess.run(
            cmd, env=os.environ | env, cwd=REPO, capture_output=True, text=True, check=True
        )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["train_seconds"])


def measure(csv: Path, rows: int, busy: bool, repeats: int) -> dict[str, list[float]]:
    """Every case ``repeats`` times, interleaved, with or without the busy loop."""
    spinner = None
    if busy:
        core = min(os.sched_getaffinity(0))
        spinner = subprocess.Popen([sys.executable, "-c", BUSY % core])
    try:
        times: dict[str, list[float]] = {name: [] for name, _ in CASES}
        for _ in range(repeats):
            for name, env in CASES:
                times[name].append(train_seconds(csv, rows, name, env))
                print(f"{'busy' if busy else 'quiet'} {name}: {times[name][-1]:.1f} s", flush=True)
        return times
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="candles CSV (default: ../shared/data)")
    parser.add_argument("--rows", type=int, default=105_120)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    csv = find_csv(args.data)
    if csv is None:
        sys.exit("no candles: pass --data or put the Binance CSV in ../shared/data")
    print(f"cores {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.2f}", flush=True)
    result = {
        state: measure(csv, args.rows, state == "busy", args.repeats) for state in ("quiet", "busy")
    }
    one_busy = min(result["busy"]["1"])
    for state, times in result.items():
        for name, values in times.items():
            ratio = min(values) / one_busy
            print(f"{state:6}{name:>9}: best {min(values):6.1f} s  ({ratio:.2f} × 1 thread busy)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
