"""The systemd units' sandboxing, as ``systemd-analyze security --offline`` scores it.

Exposure is systemd's 0-10 scale (lower is better). The units must stay at 2.0 or below (the
score when they were written is in docs/RELIABILITY.md). Skipped, with the reason, on a checkout
without the units or a machine without systemd-analyze (systemd ≥ 252 for ``--offline``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

MAX_EXPOSURE = 2.0
UNITS = ("tbotd.service", "tbotd@.service")


def exposure(unit: Path) -> float:
    """The overall exposure level systemd-analyze gives ``unit`` offline."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {done.stderr.strip()}")
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    return float(found.group(1))


@pytest.mark.parametrize("name", UNITS)
def test_unit_exposure_stays_low(name: str) -> None:
    """Each unit scores at most 2.0 ("OK") on systemd's exposure scale (a template is scored as
    an instance of itself)."""
    unit = REPO / "systemd" / name
    if not unit.is_file():
        pytest.skip(f"{unit.relative_to(REPO)} is not in this checkout")
    assert exposure(unit) <= MAX_EXPOSURE
