"""How much the local exchange sustains: order round-trips/s and kline messages/s.

    /work/venv/bin/python benchmarks/sim_throughput.py [--json] [--orders 1000] [--seconds 900]

The sim runs as `tbotd sim` in its own process (manual clock, admin routes), as a latency
benchmark would use it; this process is the client. Measured:

* order round-trips/s: market orders placed and answered one after another through ccxt's
  binanceusdm (signing, HTTP, parsing), through ccxt with 8 in flight, and as raw signed aiohttp
  POSTs (no ccxt parsing) — the sim's own cost is the raw figure;
* kline messages/s: websocket clients subscribed to kline streams while the sim's market clock is
  advanced one second per step over the admin route; every message is received and parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET  # noqa: E402 - after the path set-up
from tbotd.sim.client import make_ccxt  # noqa: E402

STREAMS = ["btcusdt@kline_1m", "btcusdt@kline_5m", "ethusdt@kline_1m", "ethusdt@kline_5m"]


def start_sim() -> tuple[subprocess.Popen[str], str]:
    """`tbotd sim` on a free port with a manual clock; returns the process and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tbotd",
            "sim",
            "--port",
            "0",
            "--manual",
            "--admin",
            "--balance",
            "USDT=1000000000,BTC=1000",
            "--start",
            "2024-02-01T00:00:00Z",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        raise RuntimeError("tbotd sim did not start")
    return process, json.loads(line)["url"]


async def ccxt_orders(url: str, count: int, in_flight: int) -> float:
    """Market orders through ccxt, ``in_flight`` at a time; returns round-trips per second."""
    exchange = make_ccxt("binanceusdm", url)
    try:
        await exchange.load_markets()
        per_worker = count // in_flight

        async def worker() -> None:
            for i in range(per_worker):
                side = "buy" if i % 2 == 0 else "sell"
                await exchange.create_order("BTC/USDT:USDT", "market", side, 0.01)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return per_worker * in_flight / (time.perf_counter() - started)
    finally:
        await exchange.close()


async def raw_orders(url: str, count: int) -> float:
    """Signed market-order POSTs with plain aiohttp, one at a time; round-trips per second."""
    headers = {"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for i in range(count):
            side = "BUY" if i % 2 == 0 else "SELL"
            body = (
                f"symbol=BTCUSDT&side={side}&type=MARKET&quantity=0.010"
                f"&newOrderRespType=RESULT&timestamp={int(time.time() * 1000)}"
            )
            signature = hmac.new(DEMO_API_SECRET.encode(), body.encode(), hashlib.sha256)
            data = f"{body}&signature={signature.hexdigest()}"
            async with session.post(url + "/fapi/v1/order", data=data, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"order refused: {await r.text()}")
                await r.read()
        return count / (time.perf_counter() - started)


async def kline_messages(url: str, connections: int, seconds: int) -> tuple[float, int]:
    """Kline messages/s received by ``connections`` clients while market time advances."""
    ws_url = url.replace("http", "ws") + "/fstream/market/ws/0"
    received = 0
    expected = connections * len(STREAMS) * seconds  # at least one message per stream-step
    enough = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(ws_url) for _ in range(connections)]
        for n, ws in enumerate(sockets):
            await ws.send_json({"method": "SUBSCRIBE", "params": STREAMS, "id": n})
            while "result" not in json.loads((await ws.receive()).data):
                pass  # the snapshot candles after the reply are not counted

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received
            async for message in ws:
                json.loads(message.data)
                received += 1
                if received >= expected:
                    enough.set()

        readers = [asyncio.create_task(drain(ws)) for ws in sockets]
        await asyncio.sleep(0.2)  # let the subscription snapshots arrive before counting
        received = 0
        started = time.perf_counter()
        body = {"seconds": seconds, "step_s": 1}
        async with session.post(url + "/sim/advance", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"advance refused: {await response.text()}")
        await enough.wait()
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.2)
        total = received
        for ws in sockets:
            await ws.close()
        for reader in readers:
            reader.cancel()
        return total / elapsed, total


async def main(orders: int, seconds: int) -> dict[str, Any]:
    process, url = start_sim()
    try:
        results: dict[str, Any] = {
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "orders": orders,
            "ccxt_orders_per_s_sequential": round(await ccxt_orders(url, orders, 1), 1),
            "ccxt_orders_per_s_8_in_flight": round(await ccxt_orders(url, orders, 8), 1),
            "raw_orders_per_s_sequential": round(await raw_orders(url, orders), 1),
        }
        for connections in (1, 8):
            rate, total = await kline_messages(url, connections, seconds)
            results[f"kline_msgs_per_s_{connections}_conn_x_{len(STREAMS)}_streams"] = round(rate)
            results[f"kline_msgs_total_{connections}_conn"] = total
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--orders", type=int, default=1000, help="orders per order benchmark")
    parser.add_argument("--seconds", type=int, default=900, help="market seconds of klines")
    args = parser.parse_args()
    figures = asyncio.run(main(args.orders, args.seconds))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:45} {value}")
