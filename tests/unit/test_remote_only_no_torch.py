"""A daemon configured with only the remote ML API never imports torch nor pandas (hundreds of
MB of RSS on a small server for nothing): the local model code is imported only when a models
directory is configured."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, tbotd_env

PROGRAM = """
import sys
from tbotd.ops.imports import hidden
with hidden("pandas"):  # as `tbotd run` imports the daemon when ML is remote-only
    import tbotd.daemon.lifecycle
from tbotd.config import Settings
from tbotd.daemon.app import make_exchange
from tbotd.features import latest_features
from tbotd.predictor.fallback import FallbackPredictor

settings = Settings.model_validate({
    "exchange": {"market_type": "linear", "symbols": ["BTC/USDT:USDT"]},
    "strategy": {"mode": "ml_usdt_directional", "share_class": "USDT",
                 "initial_capital": "10000", "threshold": 0.7},
    "ml": {"remote_url": "http://127.0.0.1:9/predict"},
})
chain = FallbackPredictor.from_settings(settings)
sim = settings.model_copy(update={"exchange": settings.exchange.model_copy(
    update={"base_url": "http://127.0.0.1:9"})})
make_exchange(sim)  # a daemon against `tbotd sim` loads its client, not the venue
print("torch" in sys.modules, chain.local_unavailable.reason, "pandas" in sys.modules)
"""


def test_a_remote_only_daemon_does_not_import_torch_or_pandas() -> None:
    """Wiring the app, its exchange client and the prediction chain with only `ml.remote_url`
    leaves torch and pandas unimported; the local source says it is not configured."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True, text=True, env=tbotd_env(), cwd=REPO, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "not_configured", "False"]
