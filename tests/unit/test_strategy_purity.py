"""The strategy, risk and monitoring cores are pure: they import no config, I/O or daemon code
(ARCHITECTURE)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, tbotd_env

PURE = (
    "tbotd.strategy.kinds",
    "tbotd.strategy.signal",
    "tbotd.strategy.rules",
    "tbotd.strategy.exits",
    "tbotd.strategy.sizing",
    "tbotd.strategy.manager",
    "tbotd.strategy.ml_opinion",
    "tbotd.strategy.model_inputs",
    "tbotd.strategy.consensus",
    "tbotd.strategy.pure_ml",
    "tbotd.strategy.enhance",
    "tbotd.strategy.strategy",
    "tbotd.strategy.classic",
    "tbotd.strategy.classic.mean_reversion",
    "tbotd.strategy.classic.momentum",
    "tbotd.risk.guard",
    "tbotd.risk.codec",
    "tbotd.risk.gate",
    "tbotd.monitoring",
    "tbotd.monitoring.outcomes",
    "tbotd.monitoring.metrics",
    "tbotd.monitoring.live",
    "tbotd.monitoring.report",
)
FORBIDDEN_TBOTD = (
    "tbotd.config",
    "tbotd.store",
    "tbotd.daemon",
    "tbotd.execution",
    "tbotd.ops",
    "tbotd.predictor",
    "tbotd.marketdata",
    "tbotd.backtest",
    "tbotd.sim",
    "tbotd.serving",
    "tbotd.ml",
    "tbotd.commands",
    "tbotd.cli",
    "tbotd.features",
)
FORBIDDEN_LIBRARIES = (
    "sqlite3",
    "sqlite_utils",
    "aiohttp",
    "ccxt",
    "websockets",
    "asyncio",
    "structlog",
    "pydantic_settings",
    "torch",
)


def test_strategy_modules_import_no_config_or_io() -> None:
    """Importing every pure strategy module (in a fresh interpreter) loads none of tbotd's
    config, store, daemon, execution or ML packages and no I/O library: only the builder,
    ``tbotd.strategy.build``, reads the config."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {PURE!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=tbotd_env(),
        cwd=REPO,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    bad = sorted(
        m
        for m in loaded
        if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_TBOTD + FORBIDDEN_LIBRARIES)
    )
    assert bad == []
    assert "tbotd.strategy.build" not in loaded
    assert "talib" in loaded  # the indicators' library is computation, not I/O
