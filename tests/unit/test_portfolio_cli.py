"""`tbotd backtest` over several symbols as a user runs it: SYMBOL=FILE or a directory, one
wallet, per-symbol and book reports, the risk guard's events; bad spans and unknown markets
are named and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tbotd.cli import main
from tests.conftest import CONFIGS
from tests.synthetic import random_walk, write_csv

START = 1_709_510_400_000  # 2024-03-04 00:00 UTC
BARS = 700
SYMBOLS = {"BTC/USDT:USDT": ("BTCUSDT", 1.0, 5), "ETH/USDT:USDT": ("ETHUSDT", 0.1, 6)}


def config(tmp_path: Path, symbols: list[str], risk: str = "") -> Path:
    base = (CONFIGS / "ml_usdt_directional.toml").read_text()
    path = tmp_path / "portfolio.toml"
    quoted = ", ".join(f'"{s}"' for s in symbols)
    lines = [
        f"symbols = [{quoted}]" if line.startswith("symbols") else line
        for line in base.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n" + risk)
    return path


def files(tmp_path: Path, shift: int = 0) -> Path:
    """Candles and predictions per symbol in one directory, named as exchanges name them."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    for k, (name, scale, seed) in enumerate(SYMBOLS.values()):
        frame = random_walk(BARS, seed=seed, start_ms=START, vol=0.004)
        for col in ("open", "high", "low", "close"):
            frame[col] = (frame[col] * scale).round(2)
        if k == 1 and shift:
            frame = frame.iloc[shift:].reset_index(drop=True)
        write_csv(frame, folder / f"binance_{name}_5m.csv")
        t = frame["open_time"]
        pd.DataFrame(
            {
                "timestamp": t,
                "signal": ["long", "short", "neutral"] * (len(t) // 3) + ["long"] * (len(t) % 3),
                "confidence": [0.9 if i % 5 == 0 else 0.4 for i in range(len(t))],
                "sd": "0.004",
            }
        ).to_csv(tmp_path / f"pred_{name}.csv", index=False)
    return folder


def test_two_symbols_from_a_directory_write_the_book_and_each_symbols_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory of candles and SYMBOL=FILE predictions: report.json with the book's
    metrics, per-symbol parts and risk events; trades.csv with a symbol column; equity.csv with
    each symbol's contribution, which add up to the book's equity."""
    folder = files(tmp_path)
    cfg = config(tmp_path, list(SYMBOLS), "[risk]\nmax_drawdown_pct = 1\n")
    preds = [f"--predictions={s}={tmp_path / f'pred_{n}.csv'}" for s, (n, _, _) in SYMBOLS.items()]
    out = tmp_path / "out"
    code = main(
        [
            "backtest",
            "--config",
            str(cfg),
            "--data",
            str(folder),
            *preds,
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["symbols"] == list(SYMBOLS)
    assert set(report["per_symbol"]) == set(SYMBOLS)
    assert [e["event"] for e in report["risk"]] == ["risk-trip"]
    trades = pd.read_csv(out / "trades.csv")
    assert set(trades["symbol"]) == set(SYMBOLS)
    assert len(trades) == report["trades"]
    equity = pd.read_csv(out / "equity.csv")
    parts = equity[[f"pnl:{s}" for s in SYMBOLS]].sum(axis=1)
    assert (abs(equity["equity"] - 10_000 - parts) < 1e-4).all()  # 10 significant digits
    assert (out / "equity.png").stat().st_size > 0
    assert pd.read_csv(out / "risk.csv")["rule"].tolist() == ["max_drawdown"]


def test_files_over_different_spans_exit_2_unless_aligned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Candle files that do not cover the same bars: exit 2 naming the spans; --align runs
    over the span both cover."""
    folder = files(tmp_path, shift=30)
    cfg = config(tmp_path, list(SYMBOLS))
    preds = [f"--predictions={s}={tmp_path / f'pred_{n}.csv'}" for s, (n, _, _) in SYMBOLS.items()]
    args = ["backtest", "--config", str(cfg), "--data", str(folder), *preds]
    assert main(args) == 2
    assert "do not cover the same bars" in capsys.readouterr().err
    assert main([*args, "--align", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bars"] == BARS - 30


def test_a_symbol_without_market_rules_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No bundled rules for the symbol and no --markets table: exit 2, the symbol named."""
    frame = random_walk(50, seed=1, start_ms=START)
    a, b = write_csv(frame, tmp_path / "a.csv"), write_csv(frame, tmp_path / "b.csv")
    cfg = config(tmp_path, ["BTC/USDT:USDT", "WIF/USDT:USDT"])
    code = main(
        [
            "backtest",
            "--config",
            str(cfg),
            f"--data=BTC/USDT:USDT={a}",
            f"--data=WIF/USDT:USDT={b}",
        ]
    )
    assert code == 2
    assert "WIF/USDT:USDT" in capsys.readouterr().err


def test_steady_losses_trip_where_equity_csv_says_and_trades_csv_has_no_entry_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbotd backtest` with max_drawdown_pct = 3 on a falling market and long calls: report.json
    names the trip at the close of the first bar whose equity.csv drawdown exceeds 3 %, and
    trades.csv has no entry at or after it."""
    from tests.unit.test_portfolio_backtest import losing

    frame, preds = losing()
    data = write_csv(frame, tmp_path / "btc.csv")
    preds.to_csv(tmp_path / "pred.csv", index=False)
    cfg = config(tmp_path, ["BTC/USDT:USDT"], "[risk]\nmax_drawdown_pct = 3\n")
    out = tmp_path / "out"
    args = ["--data", str(data), "--predictions", str(tmp_path / "pred.csv"), "--out", str(out)]
    assert main(["backtest", "--config", str(cfg), *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [e["event"] for e in report["risk"]] == ["risk-trip"]
    equity = pd.read_csv(out / "equity.csv")
    first = equity[equity["drawdown"] > 0.03].iloc[0]
    trip = pd.Timestamp(report["risk"][0]["time"])
    assert trip == pd.Timestamp(first["time"]) + pd.Timedelta(minutes=5)  # that bar's close
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) >= 3
    assert (pd.to_datetime(trades["entry_time"]) < trip).all()
