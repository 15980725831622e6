"""The repository explains itself: no file cites a document that is not in it (a design brief or
notes kept elsewhere), so a reader of any file can follow every reference."""

from __future__ import annotations

import re

from tests.conftest import REPO

OUTSIDE = re.compile("DESIGN" + r" §|\b(?:ml|exchange|serving)" + "-notes")
TEXT = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".service", ".conf"}
SKIP = {".venv", ".git", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}


def test_no_file_cites_a_document_outside_the_repository() -> None:
    """README, ARCHITECTURE, docs, configs, code, tests and benchmarks cite only their own docs."""
    cited = []
    for path in REPO.rglob("*"):
        if SKIP & set(path.relative_to(REPO).parts) or path.suffix not in TEXT:
            continue
        if "egg-info" in str(path) or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                cited.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert cited == []
