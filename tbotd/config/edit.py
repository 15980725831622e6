"""Changing keys in a TOML config file's text, keeping everything else (comments, order).

The dashboard's editor writes the operator's own file, so it edits lines rather than
re-serialising the tree (which would drop every comment). Only scalar and list values of keys
that live under a ``[section]`` or ``[section.sub]`` header are edited; the result is always
validated by the loader before it is written (see ``tbotd.daemon.dashboard``).
"""

from __future__ import annotations

import json
import re
from typing import Any

EDITABLE_SECTIONS = ("strategy", "ml")
_HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.\- ]+)\]\s*(#.*)?$")


class EditError(ValueError):
    """A change the editor cannot make (the message says which key and why)."""


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (bool, number, string, or a list of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise EditError(f"unsupported value {value!r}: expected a bool, number, string or list")


def set_key(text: str, dotted: str, value: Any) -> str:
    """``text`` with ``dotted`` (``section[.sub].key``) set to ``value``: its line replaced
    (a trailing comment kept), else added at the end of its table, else a new table appended."""
    table, _, key = dotted.rpartition(".")
    if not table or not re.fullmatch(r"[A-Za-z0-9_]+", key):
        raise EditError(f"{dotted}: not a key inside a [section]")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _table(line) == table), None)
    line = f"{key} = {toml_value(value)}"
    if start is None:
        return text.rstrip("\n") + f"\n\n[{table}]\n{line}\n"
    end = next((i for i in range(start + 1, len(lines)) if _table(lines[i])), len(lines))
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=\s*(.*)$")
    for i in range(start + 1, end):
        found = pattern.match(lines[i])
        if found:
            comment = _comment(found.group(1))
            lines[i] = line + (f"  {comment}" if comment else "")
            return "\n".join(lines) + "\n"
    last = max((i for i in range(start, end) if lines[i].strip()), default=start)
    lines.insert(last + 1, line)
    return "\n".join(lines) + "\n"


def _table(line: str) -> str | None:
    found = _HEADER.match(line)
    return None if found is None else found.group(1).replace(" ", "")


def _comment(rest: str) -> str:
    """The ``# ...`` after a simple value (none when the value is a string holding a #)."""
    if '"' in rest or "'" in rest:
        closing = max(rest.rfind('"'), rest.rfind("'"))
        hash_at = rest.find("#", closing + 1)
    else:
        hash_at = rest.find("#")
    return "" if hash_at < 0 else rest[hash_at:].strip()
