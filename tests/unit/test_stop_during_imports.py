"""A SIGTERM that lands while a command is still importing is a clean stop (exit 0), even when
the code it interrupted re-raised it as another error."""

from __future__ import annotations

import argparse
import signal
from typing import Any

import pytest

from tbotd import cli
from tbotd.ops import signals


def _parser_running(handler: Any) -> Any:
    def build() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="tbotd")
        parser.set_defaults(handler=handler, command="demo")
        return parser

    return build


class _Descriptor:
    """Like a library's class attribute whose ``__set_name__`` runs while a module imports."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail

    def __set_name__(self, owner: type, name: str) -> None:
        if self.fail is not None:
            raise self.fail
        signal.raise_signal(signal.SIGTERM)  # main's early handler raises inside this call


def _import_a_class(fail: BaseException | None = None) -> Any:
    def handler(_args: argparse.Namespace) -> int:
        class Interrupted:  # Python wraps an error raised here in RuntimeError
            attribute = _Descriptor(fail)

        return 1  # not reached

    return handler


@pytest.fixture(autouse=True)
def _clear_stop() -> Any:
    yield
    signals.STOP.clear()


def test_sigterm_inside_a_class_body_being_imported_exits_0(monkeypatch: Any) -> None:
    """The stop requested during an import ends the command with 0, not a traceback."""
    monkeypatch.setattr(cli, "build_parser", _parser_running(_import_a_class()))
    assert cli.main([]) == 0


def test_an_unrelated_error_during_imports_still_fails(monkeypatch: Any) -> None:
    """Only an error caused by the stop is forgiven: a real import failure still raises."""
    monkeypatch.setattr(cli, "build_parser", _parser_running(_import_a_class(ValueError("bad"))))
    with pytest.raises(RuntimeError) as raised:
        cli.main([])
    assert not signals.stopped_by_signal(raised.value)
