"""The command line answers --help and --version and uses stable exit codes."""

from __future__ import annotations

from tbotd import __version__
from tests.conftest import RunTbotd


def test_version(run_tbotd: RunTbotd) -> None:
    """`tbotd --version` prints the package version and exits 0."""
    result = run_tbotd("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_commands(run_tbotd: RunTbotd) -> None:
    """`tbotd --help` lists the subcommands."""
    result = run_tbotd("--help")
    assert result.returncode == 0
    assert "check-config" in result.stdout


def test_unknown_command_is_bad_input(run_tbotd: RunTbotd) -> None:
    """An unknown subcommand exits 2 with usage, no traceback."""
    result = run_tbotd("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
