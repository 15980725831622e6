"""Does a notification target that hangs delay the cycle? Decision latency with and without.

    .venv/bin/python benchmarks/notify_bench.py [--cycles 40] [--speed 300] [--rounds 2] [--json]

Two arms, alternated ``--rounds`` times (the noise of a shared machine shows between rounds of
the same arm), each a fresh `tbotd sim` (same seed), the oracle ML service (confident signals on
most candles, so entries, stops, targets and flips keep the notifier busy) and a live
`tbotd run` process against them:

* ``off`` — no notification target;
* ``hanging`` — two targets on a loopback webhook receiver, every kind of notice to both: one
  answers at once, the other accepts each request and never answers (a dead Slack, a
  firewalled SMTP server), with the default 10 s timeout and 2 retries.

Figures from each cycle's own log line (``ms.total``: from the cycle's start to its last order
recorded; ``ms["decide+execute"]``), the first 3 cycles left out as warm-up; the notices the
working target received and the requests the hanging one was holding; how long SIGTERM took
(the hanging target costs ``notify.stop_flush_s`` at the stop, by design).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.oracle import Oracle  # noqa: E402 - after the path set-up
from benchmarks.reliability.procs import (  # noqa: E402
    DaemonProcess,
    SimProcess,
    daemon_env,
    free_port,
    wait_for,
    write_daemon_config,
)
from benchmarks.reliability.webhook import Receiver, receiver  # noqa: E402

TOKEN = "notify-bench-token-5c1d"  # noqa: S105 - a throwaway token for the local oracle
WARMUP = 3


def cycle_lines(log: Path) -> list[dict[str, Any]]:
    """The daemon's ``cycle`` log lines so far."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "cycle":
            found.append(event)
    return found


async def arm(name: str, cycles: int, speed: float, workdir: Path) -> dict[str, Any]:
    """One run of ``cycles`` cycles; its figures."""
    oracle = Oracle(TOKEN)
    sim = SimProcess(workdir, speed=speed, seed=11)
    async with receiver() as rx:
        rx.modes["hang"] = "hang"
        await oracle.start()
        await sim.start()
        env = daemon_env(TOKEN)
        if name == "hanging":
            env["TBOTD_NOTIFY__URLS"] = f"{rx.url('ok', 'ok')} {rx.url('hang', 'hang')}"
        port = free_port()
        config = write_daemon_config(
            workdir / "bench.toml",
            sim_url=sim.url,
            oracle_url=oracle.url,
            db=workdir / "bench.sqlite",
            ops_port=port,
            speed=speed,
            instance=f"notify-{name}",
            extra='\n[notify]\nmax_per_hour = 3600\ndaily_summary_utc = ""\n',
        )
        log = workdir / "daemon.log"
        daemon = DaemonProcess(config, env, port, log)
        try:
            daemon.start()

            async def done() -> bool:
                return len(cycle_lines(log)) >= cycles + WARMUP

            await wait_for(done, timeout_s=cycles * 300 / speed * 3 + 120, what="cycles")
            started = time.monotonic()
            code = await daemon.terminate()
            stop_s = time.monotonic() - started
        finally:
            await daemon.kill()
            await sim.stop()
            await oracle.stop()
        return summary(name, cycle_lines(log)[WARMUP:], rx, code, stop_s)


def summary(
    name: str, lines: list[dict[str, Any]], rx: Receiver, code: int, stop_s: float
) -> dict[str, Any]:
    """Percentiles of the cycle timings and what the targets saw."""

    def stats(key: str) -> dict[str, float]:
        values = sorted(float(line["ms"].get(key, 0.0)) for line in lines)
        return {
            "p50": round(statistics.median(values), 2),
            "p95": round(values[max(0, int(len(values) * 0.95) - 1)], 2),
            "max": round(values[-1], 2),
        }

    actions = sum(len(a) for line in lines for a in line.get("actions", {}).values())
    return {
        "arm": name,
        "cycles": len(lines),
        "actions": actions,
        "total_ms": stats("total"),
        "decide_execute_ms": stats("decide+execute"),
        "notices_delivered": len(rx.of("ok")),
        "requests_held_by_hanging_target": rx.held,
        "exit_code": code,
        "stop_s": round(stop_s, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--speed", type=float, default=300.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for _ in range(args.rounds):
        for name in ("off", "hanging"):
            with tempfile.TemporaryDirectory(prefix=f"notify-bench-{name}-") as tmp:
                results.append(await arm(name, args.cycles, args.speed, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| arm | cycles | total p50 / p95 / max (ms) | decide+execute p50 / p95 (ms) | "
          "notices delivered | held by the hanging target | SIGTERM took |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in results:
        t, d = r["total_ms"], r["decide_execute_ms"]
        print(
            f"| {r['arm']} | {r['cycles']} | {t['p50']} / {t['p95']} / {t['max']} | "
            f"{d['p50']} / {d['p95']} | {r['notices_delivered']} | "
            f"{r['requests_held_by_hanging_target']} | {r['stop_s']} s |"
        )


if __name__ == "__main__":
    asyncio.run(main())
