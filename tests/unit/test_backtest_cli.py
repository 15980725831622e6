"""`tbotd backtest` as a user runs it: bad input is named by file and line, exits 2 and writes
nothing; good input writes every output, all or nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tbotd.cli import main
from tests.conftest import CONFIGS, RunTbotd
from tests.synthetic import random_walk, write_csv

CONFIG = CONFIGS / "ml_usdt_directional.toml"
START = 1_709_510_400_000  # 2024-03-04 00:00 UTC
BARS = 600


def scenario(tmp_path: Path) -> dict[str, Path]:
    """Candles, predictions (ms and ISO timestamps, sd exits) and funding files."""
    frame = random_walk(BARS, seed=5, start_ms=START)
    candles = write_csv(frame, tmp_path / "candles.csv")
    t = frame["open_time"]
    signals = ["long", "short", "neutral", "hold", "long", "short"]
    rows = pd.DataFrame(
        {
            "timestamp": [str(x) for x in t],
            "signal": [signals[i % 6] for i in range(BARS)],
            "confidence": [0.9 if i % 7 == 0 else 0.5 for i in range(BARS)],
            "sd": ["0.004"] * BARS,
        }
    )
    rows.loc[5, "timestamp"] = pd.Timestamp(int(t[5]), unit="ms", tz="UTC").isoformat()
    rows.loc[6, "timestamp"] = (
        pd.Timestamp(int(t[6]), unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")
    )
    rows.to_csv(tmp_path / "pred.csv", index=False)
    funding = pd.DataFrame(
        {
            "timestamp": [START + k * 28_800_000 for k in range(4)],
            "funding_rate": ["0.0001", "-0.0002", "0.00015", "0.0001"],
        }
    )
    funding.to_csv(tmp_path / "funding.csv", index=False)
    return {"data": candles, "pred": tmp_path / "pred.csv", "funding": tmp_path / "funding.csv"}


def backtest(files: dict[str, Path], out: Path, *extra: str) -> int:
    return main(
        [
            "backtest",
            "--config",
            str(CONFIG),
            "--data",
            str(files["data"]),
            "--predictions",
            str(files["pred"]),
            "--funding",
            str(files["funding"]),
            "--out",
            str(out),
            *extra,
        ]
    )


def edit(path: Path, change: Callable[[list[list[str]]], None]) -> None:
    """Rewrite a CSV after ``change`` mutates its rows (row 0 is the header, CSV line 1)."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    change(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def swap(rows: list[list[str]]) -> None:
    rows[4], rows[5] = rows[5], rows[4]


BAD: list[tuple[str, str, Callable[[list[list[str]]], None], str]] = [
    ("data", "unsorted", swap, "line 6: timestamp is not after"),
    ("data", "duplicate", lambda r: r.__setitem__(7, r[6][:]), "line 8: timestamp is not after"),
    ("data", "gap", lambda r: r.pop(11), "line 12: 1 candle(s) missing"),
    ("data", "nan", lambda r: r[9].__setitem__(4, ""), "line 10: close is not a finite number"),
    ("data", "nan text", lambda r: r[9].__setitem__(2, "NaN"), "line 10: high is not a finite"),
    ("data", "columns", lambda r: r[0].__setitem__(4, "closing"), "missing close"),
    ("pred", "columns", lambda r: r[0].__setitem__(3, "stoploss"), "unknown column(s) stoploss"),
    (
        "pred",
        "before",
        lambda r: r[1].__setitem__(0, str(START - 300_000)),
        "line 2: timestamp 2024-03-03T23:55:00+00:00 is before the first candle",
    ),
    (
        "pred",
        "after",
        lambda r: r[-1].__setitem__(0, str(START + BARS * 300_000)),
        f"line {BARS + 1}: timestamp 2024-03-06T02:00:00+00:00 is after the last candle",
    ),
    (
        "pred",
        "unaligned",
        lambda r: r[3].__setitem__(0, str(START + 2 * 300_000 + 60_000)),
        "line 4: timestamp 2024-03-04T00:11:00+00:00 is not the open time of any candle",
    ),
    ("pred", "confidence", lambda r: r[4].__setitem__(2, "1.5"), "line 5: confidence is outside"),
    ("pred", "signal", lambda r: r[5].__setitem__(1, "up"), "line 6: signal must be one of"),
    ("pred", "missing", lambda r: r[6].__setitem__(2, ""), "line 7: confidence is not a finite"),
    ("pred", "text", lambda r: r[6].__setitem__(3, "wide"), "line 7: sd is not a finite number"),
    ("pred", "duplicate", lambda r: r.__setitem__(9, r[8][:]), "line 10: timestamp is not after"),
    (
        "pred",
        "naive",
        lambda r: r[3].__setitem__(0, "2024-03-04T00:10:00"),
        "line 4: timestamp '2024-03-04T00:10:00' has no time zone",
    ),
    (
        "funding",
        "hour",
        lambda r: r[2].__setitem__(0, str(START + 3_600_000)),
        "line 3: 2024-03-04T01:00:00+00:00 is not a funding time",
    ),
    ("funding", "rate", lambda r: r[3].__setitem__(1, "x"), "line 4: funding_rate 'x' is not"),
]


@pytest.mark.parametrize(("which", "name", "change", "message"), BAD, ids=[b[1] for b in BAD])
def test_bad_input_names_file_and_line_exits_2_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    name: str,
    change: Callable[[list[list[str]]], None],
    message: str,
) -> None:
    """Unsorted, duplicated, gapped, NaN, misnamed or out-of-range rows: a clear message with the
    file and line, exit 2, no output directory."""
    files = scenario(tmp_path)
    edit(files[which], change)
    out = tmp_path / "out"
    assert backtest(files, out) == 2
    err = capsys.readouterr().err
    assert str(files[which]) in err
    assert message in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_gaps_can_be_accepted_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--allow-gaps runs across a missing candle, ignores its prediction, and says so."""
    files = scenario(tmp_path)
    edit(files["data"], lambda r: r.pop(11))
    assert backtest(files, tmp_path / "out", "--allow-gaps") == 0
    err = capsys.readouterr().err
    assert "line 12: 1 candle(s) missing" in err
    assert "1 prediction(s) for missing candles ignored" in err
    inputs = json.loads((tmp_path / "out" / "report.json").read_text())["inputs"]
    assert (inputs["gaps"], inputs["predictions_in_gaps"]) == (1, 1)


def test_a_bad_config_or_model_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Config problems and an unusable --models directory are bad input too."""
    files = scenario(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.read_text().replace("threshold = 0.70", "threshold = 7"))
    args = ["backtest", "--config", str(bad), "--data", str(files["data"])]
    code = main([*args, "--predictions", str(files["pred"])])
    assert code == 2
    assert "strategy.threshold" in capsys.readouterr().err
    args = ["backtest", "--config", str(CONFIG), "--data", str(files["data"])]
    code = main([*args, "--models", str(tmp_path / "nowhere")])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_run_writes_every_output_consistently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """report.json (every documented key), trades.csv (one row per trade), equity.csv (one row per
    bar), equity.png; --json prints the same report as the last line."""
    files = scenario(tmp_path)
    out = tmp_path / "out"
    assert backtest(files, out, "--json") == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads((out / "report.json").read_text())
    assert printed == report
    for key in (
        "bars", "trades", "total_return", "cagr", "sharpe", "sortino", "max_drawdown",
        "win_rate", "profit_factor", "exposure", "fees", "funding", "initial_equity",
        "final_equity", "seconds", "predictions",
    ):  # fmt: skip
        assert key in report
    assert report["complete"] is True
    assert report["bars"] == BARS
    assert report["predictions"]["hold"] == 100
    assert report["predictions"]["total"] == BARS
    trades = pd.read_csv(out / "trades.csv")
    assert list(trades.columns) == [
        "entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "exit_reason",
        "pnl", "fees", "funding", "stop_loss", "take_profit",
    ]  # fmt: skip
    assert len(trades) == report["trades"] > 0
    equity = pd.read_csv(out / "equity.csv")
    assert len(equity) == BARS
    assert (out / "equity.png").read_bytes()[:4] == b"\x89PNG"
    decisions = pd.read_csv(out / "decisions.csv")
    assert (decisions["actions"].str.contains("open")).sum() == len(trades)
    assert set(decisions["strategy"]) == {"ml_directional"}
    assert sorted(p.name for p in out.iterdir()) == [
        "decisions.csv",
        "equity.csv",
        "equity.png",
        "report.json",
        "trades.csv",
    ]


def test_a_failed_write_leaves_the_previous_report_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing fails half-way (here: the plot), exit 1 and the old outputs stay as they were,
    with no temporary directory left behind."""
    files = scenario(tmp_path)
    out = tmp_path / "out"
    assert backtest(files, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("tbotd.backtest.plot.plot_equity", broken)
    assert backtest(files, out, "--max-prediction-age", "2") == 1
    assert "disk full" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_command_runs_from_the_shell(tmp_path: Path, run_tbotd: RunTbotd) -> None:
    """`python -m tbotd backtest` prints the summary table and exits 0."""
    files = scenario(tmp_path)
    done = run_tbotd(
        "backtest",
        "--config",
        str(CONFIG),
        "--data",
        str(files["data"]),
        "--predictions",
        str(files["pred"]),
    )
    assert done.returncode == 0, done.stderr
    assert "total return" in done.stdout
    assert "no --out given" in done.stderr
