"""Adapt pyproject.toml to the distribution's own build tools, before a .deb or .rpm build.

Upstream metadata uses what a current setuptools writes without a warning (PEP 639: an SPDX
``license`` string and ``license-files``, setuptools >= 77). A distribution builds with its
own, older setuptools (Debian 12: 66, Fedora 41: 69, RHEL 9 with python3.11: 65), which
rejects both. With such a setuptools this rewrites ``license`` as a table and drops
``license-files`` (the LICENSE file is still found by setuptools' default patterns).

psutil's lower bound (6.0) documents what upstream tests with; monagent uses only APIs
that psutil 5.8 already has (cpu_times, process_iter), so with an older distribution psutil
the bound is lowered to the installed version instead of making the package uninstallable.

Run with the interpreter the package is built for: ``python3 packaging/distro_pyproject.py``.
It edits ./pyproject.toml in place (or the file given) and says what it changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

SETUPTOOLS_PEP639 = (77, 0)
PSUTIL_PIN = (6, 0)


def _version(module: str) -> Optional[Tuple[int, ...]]:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        text = version(module)
    except PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def adapt(text: str, setuptools: Optional[Tuple[int, ...]], psutil: Optional[Tuple[int, ...]]) -> Tuple[str, List[str]]:
    """``text`` adapted to these versions, and one line per change made."""
    changes = []
    if setuptools is not None and setuptools < SETUPTOOLS_PEP639:
        text, n = re.subn(r'(?m)^license = "([^"]+)"$', r'license = { text = "\1" }', text)
        if n:
            changes.append("license: SPDX string -> table (setuptools < 77)")
        text, n = re.subn(r"(?m)^license-files = .*\n", "", text)
        if n:
            changes.append("license-files: dropped (setuptools < 77 finds LICENSE itself)")
        text, n = re.subn(r'"setuptools>=[0-9.]+"', '"setuptools>=61"', text)
        if n:
            changes.append("build requirement: setuptools>=61")
    if psutil is not None and psutil < PSUTIL_PIN:
        floor = ".".join(str(p) for p in psutil)
        text, n = re.subn(r'"psutil>=[0-9.]+,', f'"psutil>={floor},', text)
        if n:
            changes.append(f"psutil>={floor}: the distribution's psutil")
    return text, changes


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0] if args else "pyproject.toml")
    text, changes = adapt(path.read_text(encoding="utf-8"), _version("setuptools"), _version("psutil"))
    if changes:
        path.write_text(text, encoding="utf-8")
    for change in changes:
        print(f"{path}: {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
