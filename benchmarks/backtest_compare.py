"""`tbotd backtest` side by side with backtesting.py and vectorbt: same bars, signals and fees.

    python benchmarks/backtest_compare.py [--runs 3] [--json]

The bars: the newest 105,120 real Binance BTC/USDT 5-minute candles of ``../shared/data`` (one
year). The signals: the sparse predictions of ``backtest_report_bench.py`` (a seeded 0.2 % of
bars confident at 0.75, the rest 0.3–0.6, ``sd`` 0.004). The rule every engine runs, as
``configs/ml_usdt_directional.toml`` has it: a confident (≥ 0.70) long or short enters at the
next bar's open with all the equity (an opposite position is closed first), a confident neutral
closes, otherwise nothing; stop-loss 1.5 × sd = 0.6 % and take-profit 2 × sd = 0.8 % from the
entry, checked on each bar's high and low. Fees: 5 bps taker + 2 bps slippage per side (7 bps
as the other engines' commission); no funding (neither library has it; tbotd runs without
``--funding`` here). Each engine is a whole process reading the same CSV files, as a user runs
it: ``tbotd backtest`` (without and with ``--out``: report files and the plot) against a
backtesting.py script (without and with its trades CSV and HTML plot) and a vectorbt script
(whose first run in a process includes numba's compilation; its warm simulation is timed too).

backtesting.py and vectorbt are optional, bench-only installs (``pip install backtesting
vectorbt``); an engine that is not installed is reported as such and skipped. The engines do
not agree to the trade — tbotd sizes with exact Decimal fee-aware rounding to the market's lot,
prices exits from the fill and applies slippage to the price, and stops the fourth entry within
an hour — so trade counts and returns are printed beside the times as a sanity check, not as a
parity claim (parity is tbotd's own tests' job, against its daemon).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402 - after the path set-up

from benchmarks.backtest_report_bench import CANDLES, CONFIG, YEAR, find, sparse  # noqa: E402

THRESHOLD, SL, TP, COMMISSION, CASH = 0.70, 0.006, 0.008, 0.0007, 10_000

PREPARE = f"""
import sys, numpy as np, pandas as pd
bars = pd.read_csv(sys.argv[1])
preds = pd.read_csv(sys.argv[2]).set_index("timestamp").reindex(bars["timestamp"])
index = pd.to_datetime(bars["timestamp"], unit="ms", utc=True)
confident = (preds["confidence"] >= {THRESHOLD}).to_numpy()
signal = preds["signal"].to_numpy()
long_ = confident & (signal == "long")
short = confident & (signal == "short")
flat = confident & (signal == "neutral")
"""

BACKTESTING = (
    PREPARE
    + f"""
import json
from backtesting import Strategy
from backtesting.lib import FractionalBacktest
frame = pd.DataFrame(
    {{c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}},
    index=index,
)
CODE = np.where(long_, 1, np.where(short, -1, np.where(flat, 0, 9)))

class Predicted(Strategy):
    def init(self):
        pass

    def next(self):
        code = CODE[len(self.data) - 1]
        if code == 9:
            return
        if code == 0 or (code == 1 and self.position.is_short) or (
            code == -1 and self.position.is_long
        ):
            self.position.close()
        if code == 0 or (code == 1 and self.position.is_long) or (
            code == -1 and self.position.is_short
        ):
            return
        price = self.data.Close[-1]
        if code == 1:
            self.buy(size=0.999, sl=price * (1 - {SL}), tp=price * (1 + {TP}))
        else:
            self.sell(size=0.999, sl=price * (1 + {SL}), tp=price * (1 - {TP}))

bt = FractionalBacktest(frame, Predicted, cash={CASH}, commission={COMMISSION})
stats = bt.run()
if len(sys.argv) > 3:
    stats._trades.to_csv(sys.argv[3] + "/trades.csv")
    bt.plot(filename=sys.argv[3] + "/plot.html", open_browser=False)
print(json.dumps({{"trades": int(stats["# Trades"]), "return_pct": float(stats["Return [%]"])}}))
"""
)

VECTORBT = (
    PREPARE
    + f"""
import json, time
import vectorbt as vbt
nxt = lambda a: np.concatenate([[False], a[:-1]])  # decided at the close, filled at next open
def simulate():
    return vbt.Portfolio.from_signals(
        close=bars["close"].to_numpy(), entries=nxt(long_), short_entries=nxt(short),
        exits=nxt(flat), short_exits=nxt(flat), price=bars["open"].to_numpy(),
        open=bars["open"].to_numpy(), high=bars["high"].to_numpy(), low=bars["low"].to_numpy(),
        sl_stop={SL}, tp_stop={TP}, fees={COMMISSION}, init_cash={CASH},
        upon_opposite_entry="reverse", freq="5min",
    )
clock = time.perf_counter()
pf = simulate()
first = time.perf_counter() - clock
clock = time.perf_counter()
pf = simulate()
warm = time.perf_counter() - clock
print(json.dumps({{"trades": int(pf.trades.count()), "return_pct": float(pf.total_return() * 100),
                  "first_simulation_s": first, "warm_simulation_s": warm}}))
"""
)


def timed(command: list[str], runs: int) -> dict[str, Any]:
    """Best wall time of ``runs`` processes and the last one's JSON last line."""
    walls, last = [], {}
    for _ in range(runs):
        clock = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - clock)
        last = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": round(min(walls), 3), "walls_s": [round(w, 3) for w in walls], "out": last}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frame = pd.read_csv(find(CANDLES)).tail(YEAR)
    result: dict[str, Any] = {"bars": len(frame)}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bars, preds = tmp / "year.csv", tmp / "predictions.csv"
        frame.to_csv(bars, index=False)
        sparse(frame).to_csv(preds, index=False)
        (tmp / "out_bt").mkdir()
        tbotd = [sys.executable, "-m", "tbotd", "backtest", "--config", str(CONFIG)]
        tbotd += ["--data", str(bars), "--predictions", str(preds), "--json"]
        plain = timed(tbotd, args.runs)
        files = timed([*tbotd, "--out", str(tmp / "out")], args.runs)
        result["tbotd"] = {"no files": _tbotd(plain), "report files + plot": _tbotd(files)}
        if installed("backtesting"):
            script = tmp / "bt.py"
            script.write_text(BACKTESTING)
            run = [sys.executable, str(script), str(bars), str(preds)]
            result["backtesting.py"] = {
                "no files": timed(run, args.runs),
                "trades CSV + HTML plot": timed([*run, str(tmp / "out_bt")], args.runs),
            }
        else:
            result["backtesting.py"] = "not installed (pip install backtesting)"
        if installed("vectorbt"):
            script = tmp / "vbt.py"
            script.write_text(VECTORBT)
            result["vectorbt"] = timed([sys.executable, str(script), str(bars), str(preds)], 1)
        else:
            result["vectorbt"] = "not installed (pip install vectorbt)"
    result["ratios"] = ratios(result)
    print(json.dumps(result, indent=None if args.json else 2))


def _tbotd(run: dict[str, Any]) -> dict[str, Any]:
    report = run.pop("out")
    run["out"] = {
        "trades": report.get("trades"),
        "return_pct": round(100 * report.get("total_return", 0.0), 3),
        "fees": report.get("fees"),
        "funding": report.get("funding"),
        "simulate_s": report.get("timings", {}).get("simulate_s"),
    }
    return run


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """tbotd's whole-process wall time ÷ each other engine's."""
    out: dict[str, float] = {}
    bt = result.get("backtesting.py")
    if isinstance(bt, dict):
        out["tbotd ÷ backtesting.py, no files"] = round(
            result["tbotd"]["no files"]["wall_s"] / bt["no files"]["wall_s"], 2
        )
        out["tbotd ÷ backtesting.py, with report files and plot"] = round(
            result["tbotd"]["report files + plot"]["wall_s"]
            / bt["trades CSV + HTML plot"]["wall_s"],
            2,
        )
    vbt = result.get("vectorbt")
    if isinstance(vbt, dict):
        out["tbotd ÷ vectorbt, no files (vectorbt's process includes numba compiling)"] = round(
            result["tbotd"]["no files"]["wall_s"] / vbt["wall_s"], 2
        )
    return out


if __name__ == "__main__":
    main()
