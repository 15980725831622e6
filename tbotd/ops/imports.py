"""Keep optional imports of third-party libraries out of a process that does not need them.

sqlite_utils and TA-Lib each import pandas whenever it is installed (~35 MB resident), only for
conveniences tbotd never uses (a ``pd.Timestamp`` column type; ``Series`` wrappers: tbotd hands
TA-Lib numpy arrays). A daemon whose ML is remote-only needs no pandas at all, so `tbotd run`
imports the daemon with pandas hidden; anything that needs pandas later (training, local
features, reports) imports it normally.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """Inside: ``import NAME`` raises ImportError (libraries take their no-NAME path). Names
    already imported are left alone; after the block they import normally again."""
    hiding = [name for name in names if name not in sys.modules]
    for name in hiding:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        for name in hiding:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
