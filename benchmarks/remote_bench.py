"""Remote prediction benchmark: round trips through `tbotd serve`, and throughput under load.

    /work/venv/bin/python benchmarks/remote_bench.py [--json] [--models DIR] [--rounds N]

* Starts `tbotd serve` as its own process on 127.0.0.1 (bearer token, default micro-batching),
  with the models of ``--models`` or, by default, small models trained here in a few seconds
  (model size does not depend on the data, so latency does not either).
* Round trip: the daemon's remote client (:class:`tbotd.predictor.remote.RemotePredictor`)
  predicting 1 and 50 symbols, in both wire formats — candles (or features) out, validated
  Predictions back, everything the daemon pays for. Each symbol has 600 closed 5m candles; as in
  live use the candle objects persist between cycles. p50/p99 in milliseconds.
* Throughput: N simulated daemons (each its own client and HTTP session, 50 symbols per request,
  back to back) against the one server, for N = 1, 4, 16; requests/s, symbol predictions/s, and
  the server's mean rows per forward pass (micro-batching at work). Client and server share the
  machine, so on a small box this measures the pair, not the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import torch  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from tbotd.config.settings import MLConfig, WireFormat  # noqa: E402
from tbotd.domain.market import Candle  # noqa: E402
from tbotd.ml.data import CandleData  # noqa: E402
from tbotd.ml.labels import LabelSpec  # noqa: E402
from tbotd.ml.output import write_model_dir  # noqa: E402
from tbotd.ml.pipeline import TrainConfig  # noqa: E402
from tbotd.ml.trainer import FitConfig  # noqa: E402
from tbotd.predictor.remote import RemotePredictor  # noqa: E402
from tests.synthetic import random_walk, to_candles  # noqa: E402

TOKEN = "bench-token-not-secret"  # noqa: S105 - a throwaway token for a loopback benchmark
SYMBOLS = 50
CANDLES = 600


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[max(math.ceil(0.99 * len(ms)) - 1, 0)], 2),  # nearest-rank
        "n": len(ms),
    }


def train_small(out: Path) -> None:
    cfg = TrainConfig(
        label=LabelSpec(horizon=3, regime_window=6), fit=FitConfig(epochs=1, seed=0), folds=1
    )
    write_model_dir(
        CandleData(random_walk(4500, seed=21), "synthetic", "5m", 0), cfg, torch.device("cpu"), out
    )


def check(predictions: dict[str, Any], histories: dict[str, list[Candle]]) -> None:
    if len(predictions) != len(histories):
        raise RuntimeError(f"{len(histories) - len(predictions)} symbols were not predicted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(models: Path, port: int) -> subprocess.Popen[bytes]:
    """`tbotd serve` in its own process; returns once it answers /v2/health/ready."""
    env = dict(os.environ, BASIS_ML_API_TOKEN=TOKEN, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tbotd", "serve", "--models", str(models), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("tbotd serve exited before becoming ready")
        time.sleep(0.1)
    raise RuntimeError("tbotd serve did not become ready")


def client(port: int, wire: str) -> RemotePredictor:
    return RemotePredictor(
        MLConfig(
            remote_url=f"http://127.0.0.1:{port}",
            wire_format=WireFormat(wire),
            token=SecretStr(TOKEN),
            remote_timeout_s=30,
            deadline_s=60,
        )
    )


async def round_trips(
    port: int, wire: str, histories: dict[str, list[Candle]], rounds: int
) -> dict[str, float]:
    remote = client(port, wire)
    loop = asyncio.get_running_loop()
    candle_time = next(iter(histories.values()))[-1].open_time
    samples = []
    try:
        for i in range(rounds + 5):
            started = time.perf_counter()
            result = await remote.predict(histories, candle_time, loop.time() + 30)
            if i >= 5:  # the first calls warm caches (and do the OIP handshake)
                samples.append(time.perf_counter() - started)
            check(result.predictions, histories)
    finally:
        await remote.close()
    return percentiles(samples)


async def server_batches(port: int) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r,
    ):
        text = await r.text()
    values = {}
    for line in text.splitlines():
        if line.startswith(("tbotd_serve_batch_rows_sum", "tbotd_serve_batch_rows_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["tbotd_serve_batch_rows_sum"], values["tbotd_serve_batch_rows_count"]


async def throughput(
    port: int, wire: str, histories: dict[str, list[Candle]], daemons: int, seconds: float
) -> dict[str, float]:
    clients = [client(port, wire) for _ in range(daemons)]
    loop = asyncio.get_running_loop()
    candle_time = next(iter(histories.values()))[-1].open_time
    for c in clients:  # warm up (handshake, caches)
        await c.predict(histories, candle_time, loop.time() + 30)
    rows0, batches0 = await server_batches(port)
    done = 0
    stop_at = loop.time() + seconds

    async def daemon(remote: RemotePredictor) -> None:
        nonlocal done
        while loop.time() < stop_at:
            result = await remote.predict(histories, candle_time, loop.time() + 30)
            check(result.predictions, histories)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(daemon(c) for c in clients))
    elapsed = time.perf_counter() - started
    rows1, batches1 = await server_batches(port)
    for c in clients:
        await c.close()
    return {
        "daemons": daemons,
        "requests_per_s": round(done / elapsed, 1),
        "predictions_per_s": round(done * len(histories) / elapsed, 0),
        "mean_rows_per_forward": round((rows1 - rows0) / max(batches1 - batches0, 1), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(args.models) if args.models else Path(tmp) / "models"
        if not args.models:
            train_small(models)
        symbols = [f"S{i:02d}/USDT:USDT" for i in range(SYMBOLS)]
        histories = {s: to_candles(random_walk(CANDLES, seed=i), s) for i, s in enumerate(symbols)}
        one = {symbols[0]: histories[symbols[0]]}
        port = free_port()
        server = start_server(models, port)
        try:
            latency = {
                f"{wire}_{n}": await round_trips(port, wire, h, args.rounds)
                for wire in ("json", "oip")
                for n, h in ((1, one), (SYMBOLS, histories))
            }
            load = {
                wire: [await throughput(port, wire, histories, d, args.seconds) for d in (1, 4, 16)]
                for wire in ("oip", "json")
            }
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "round_trip": latency,
        "throughput": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--models", help="a model directory (default: train small ones)")
    parser.add_argument("--rounds", type=int, default=200, help="round trips per case (200)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput case (5)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(f"{'round trip':24}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in result["round_trip"].items():
        print(f"{name:24}{r['p50_ms']:>10}{r['p99_ms']:>10}")
    print(f"{'throughput':14}{'daemons':>8}{'req/s':>10}{'pred/s':>10}{'rows/forward':>14}")
    for wire, rows in result["throughput"].items():
        for r in rows:
            print(
                f"{wire:14}{r['daemons']:>8}{r['requests_per_s']:>10}"
                f"{r['predictions_per_s']:>10}{r['mean_rows_per_forward']:>14}"
            )


if __name__ == "__main__":
    main()
