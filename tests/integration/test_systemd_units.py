"""The systemd units are valid and hardened (systemd-analyze, where the machine has it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNITS = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)


def runnable_copy(unit: Path, tmp_path: Path, name: str) -> Path:
    """The unit with ExecStart pointing at this checkout's tbotd (the /opt path exists only
    on a real install), so verify checks everything else."""
    text = unit.read_text()
    text = text.replace("/opt/tbotd/.venv/bin/tbotd", f"{sys.executable} -m tbotd")
    copy = tmp_path / name
    copy.write_text(text)
    return copy


@needs_analyze
@pytest.mark.parametrize(
    ("unit", "name"), [("tbotd.service", "tbotd.service"), ("tbotd@.service", "tbotd@usdt.service")]
)
def test_units_pass_systemd_analyze_verify(unit: str, name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong with either unit."""
    copy = runnable_copy(UNITS / unit, tmp_path, name)
    result = subprocess.run(
        [ANALYZE or "", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if name in line or "Unknown" in line or "Invalid" in line
    ]
    assert result.returncode == 0, result.stderr
    assert problems == []


@needs_analyze
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    """`systemd-analyze security --offline` rates the hardening OK (exposure below 3)."""
    copy = runnable_copy(UNITS / "tbotd.service", tmp_path, "tbotd.service")
    result = subprocess.run(
        [ANALYZE or "", "security", "--offline=true", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for tbotd.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) < 3.0


@pytest.mark.parametrize("unit", ["tbotd.service", "tbotd@.service"])
def test_units_declare_what_the_design_asks(unit: str) -> None:
    """Type=notify, watchdog, restart with a start limit, state dir, credentials, hardening."""
    text = (UNITS / unit).read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "StartLimitBurst=",
        "TimeoutStopSec=",
        "StateDirectory=",
        "LoadCredential=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "MemoryMax=",
        "UMask=0077",
    ):
        assert line in text, line
    assert "%i" in text or unit == "tbotd.service"


@pytest.mark.parametrize("unit", ["tbotd.service", "tbotd@.service"])
def test_units_load_every_credential_the_config_loader_reads(unit: str) -> None:
    """The LoadCredential= names are exactly the secrets tbotd reads from $CREDENTIALS_DIRECTORY
    (notification URLs included)."""
    from tbotd.config.loader import CREDENTIAL_FILES

    names = re.findall(r"^LoadCredential=([a-z_]+):", (UNITS / unit).read_text(), re.MULTILINE)
    assert sorted(names) == sorted(CREDENTIAL_FILES)
    assert "notify_urls" in names


def with_gpu_dropin(tmp_path: Path) -> Path:
    """tbotd.service as systemd sees it with systemd/gpu.conf installed as a drop-in (its
    [Service] lines appended: later assignments win, DeviceAllow= accumulates)."""
    base = runnable_copy(UNITS / "tbotd.service", tmp_path, "tbotd.service").read_text()
    lines = (UNITS / "gpu.conf").read_text().splitlines()
    extra = [line for line in lines if line and not line.startswith(("#", "[Service]"))]
    merged = tmp_path / "tbotd.service"
    merged.write_text(base.replace("\n[Install]", "\n" + "\n".join(extra) + "\n\n[Install]"))
    return merged


def test_the_gpu_dropin_opens_only_the_nvidia_devices() -> None:
    """The drop-in lifts PrivateDevices (which hides /dev/nvidia*) but keeps DevicePolicy=closed
    with only NVIDIA's character devices allowed."""
    text = (UNITS / "gpu.conf").read_text()
    assert "PrivateDevices=no" in text
    assert "DevicePolicy=closed" in text
    allowed = re.findall(r"^DeviceAllow=(\S+)", text, re.MULTILINE)
    assert allowed
    assert all(device.startswith("char-nvidia") for device in allowed)


@needs_analyze
def test_the_unit_with_the_gpu_dropin_verifies_and_stays_hardened(tmp_path: Path) -> None:
    """With the GPU drop-in the unit still passes `verify` and rates OK (exposure below 3)."""
    unit = with_gpu_dropin(tmp_path)
    verify = subprocess.run(
        [ANALYZE or "", "verify", str(unit)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(
        [ANALYZE or "", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for tbotd.service: ([0-9.]+)", security.stdout)
    assert match is not None, security.stdout + security.stderr
    assert float(match.group(1)) < 3.0
