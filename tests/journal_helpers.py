"""A stand-in journalctl (a real child process) serving captured journal JSON per test case."""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "journal"
FAKE = str(DATA / "fake-journalctl")


def journal_dir(tmp_path: Path, case: str) -> Path:
    """A directory holding the case's files; set FAKE_JOURNAL_DIR to it."""
    target = tmp_path / "journal"
    if not target.exists():
        shutil.copytree(DATA, target)
    (target / "case").write_text(case)
    return target


def calls(directory: Path) -> list:
    path = directory / "calls.log"
    return path.read_text().splitlines() if path.exists() else []
