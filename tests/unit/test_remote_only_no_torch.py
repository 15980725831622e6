"""A daemon configured with only the remote ML API never imports torch (hundreds of MB of RSS
on a small server for nothing): the local model code is imported only when a models directory
is configured."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, tbotd_env

PROGRAM = """
import sys
from tbotd.config import Settings
import tbotd.daemon.app
from tbotd.predictor.fallback import FallbackPredictor

settings = Settings.model_validate({
    "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
    "strategy": {"mode": "ml_usdt_directional", "share_class": "USDT",
                 "initial_capital": "10000", "threshold": 0.7},
    "ml": {"remote_url": "http://127.0.0.1:9/predict"},
})
chain = FallbackPredictor.from_settings(settings)
print("torch" in sys.modules, chain.local_unavailable.reason)
"""


def test_a_remote_only_daemon_does_not_import_torch() -> None:
    """Wiring the app and building the prediction chain with only `ml.remote_url` leaves torch
    unimported; the local source says it is not configured."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True, text=True, env=tbotd_env(), cwd=REPO, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "not_configured"]
