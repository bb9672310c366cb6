"""A stand-in journalctl (a real child process) serving captured journal JSON per test case."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, List

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


# The fake's --follow side (see its docstring): lines appended to follow.json reach its followers.


def kernel_entry(number: int, message: str) -> str:
    """One kernel line of the running boot as ``journalctl -o json`` writes it (cursor ``s=follow;i=N``)."""
    entry = {
        "__REALTIME_TIMESTAMP": str(1769000100000000 + number * 1000000),
        "__MONOTONIC_TIMESTAMP": str(160000000 + number * 1000000),
        "_BOOT_ID": "9a8b7c6d5e4f40312a1b2c3d4e5f6071",
        "_TRANSPORT": "kernel",
        "SYSLOG_IDENTIFIER": "kernel",
        "MESSAGE": message,
        "__CURSOR": f"s=follow;i={number}",
    }
    return json.dumps(entry, ensure_ascii=False) + "\n"  # as journalctl: UTF-8 unescaped


def append(directory: Path, text: str) -> None:
    """Append to the running boot's journal (follow.json): what a follower copies out next."""
    with (directory / "follow.json").open("a", encoding="utf-8") as file:
        file.write(text)


def wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit:g} s")
        time.sleep(0.01)


def sent(directory: Path) -> int:
    """Bytes of follow.json the latest follower has written to its pipe."""
    path = directory / "follow.sent"
    return int(path.read_text() or 0) if path.exists() else -1


def wait_sent(directory: Path) -> None:
    """Until the latest follower has written all of follow.json to its pipe (it is there to read)."""
    path = directory / "follow.json"
    wait_until(lambda: sent(directory) == (path.stat().st_size if path.exists() else 0), "sent by the follower")


def follower_pids(directory: Path) -> List[int]:
    """The followers started so far, oldest first."""
    path = directory / "follow.pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def wait_followers(directory: Path, count: int) -> List[int]:
    """Until ``count`` followers have started (each logs its call first, then its pid); their pids."""
    wait_until(lambda: len(follower_pids(directory)) >= count, f"{count} followers started")
    return follower_pids(directory)


def state(pid: int) -> str:
    """The process's state letter ("Z": a zombie), "" when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def children() -> List[int]:
    """This process's children that are the fake journalctl: by its command line, or by the name it
    gives itself once started (a zombie has no command line left)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                text = stat.read()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read()
        except (OSError, ValueError):
            continue
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if int(rest[1]) == os.getpid() and (comm == "fake-journalctl" or FAKE.encode() in argv):
            found.append(int(entry))
    return found
