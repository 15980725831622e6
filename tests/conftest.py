"""Shared fixtures: running the `tbotd` CLI as a user would, from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def tbotd_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tbotd subprocess: this checkout importable, no TBOTD_* leakage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TBOTD_", "BASIS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


RunTbotd = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_tbotd() -> RunTbotd:
    """Run `tbotd ARGS...` in a subprocess and return the completed process."""

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tbotd", *args],
            capture_output=True,
            text=True,
            env=tbotd_env(env),
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(autouse=True)
def _no_tbotd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean environment: no TBOTD_* or BASIS_* variables from the caller."""
    for name in list(os.environ):
        if name.startswith(("TBOTD_", "BASIS_")) or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
