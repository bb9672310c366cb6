"""The README's Commands table, as written: every command line runs against the quickstart's files
(the shipped ``agent.toml`` in the checkout) and exits with a status the table lists for it.

``.venv/bin/monagent`` is this interpreter's ``-m monagent``. The state and runtime directories
are the test's own (``$STATE_DIRECTORY``, ``$RUNTIME_DIRECTORY``, as systemd sets them), so a run
as root leaves ``/var/lib/monagent`` alone; ``install`` stages into a directory (``--root``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest
from conftest import ROOT

ROW = re.compile(r"^\| `(?P<command>[^`]+)` \| (?P<what>.+) \| (?P<exits>[^|]+) \|$")


def commands_table() -> List[Tuple[str, Set[int]]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Commands\n") : text.index("### Exit codes")]
    rows = []
    for line in section.splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        codes: Set[int] = set()
        for low, high in re.findall(r"\b(\d+)(?:-(\d+))?\b", match.group("exits")):
            codes.update(range(int(low), int(high or low) + 1))
        rows.append((match.group("command"), codes))
    return rows


def argv(command: str, checkout: Path) -> List[str]:
    words = shlex.split(command)
    if words[0] == "sudo":
        words = words[1:]
    assert words[0] == ".venv/bin/monagent", command
    words = [sys.executable, "-m", "monagent", *words[1:]]
    if words[3] in ("install", "uninstall"):
        words += ["--root", str(checkout / "staged")]  # the README's command, staged instead of on this host
    return words


def test_the_table_has_every_command() -> None:
    names = {shlex.split(c)[1 if c.startswith(".venv") else 2] for c, _ in commands_table()}
    assert names >= {"run", "check", "validate", "plugins", "status", "silence", "ack", "notify-test", "install"}
    assert all(codes for _, codes in commands_table())


def test_every_command_in_the_readme_table_exits_as_the_table_says(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "agent.toml", checkout / "agent.toml")
    env: Dict[str, str] = dict(
        os.environ,
        STATE_DIRECTORY=str(tmp_path / "state"),
        RUNTIME_DIRECTORY=str(tmp_path / "run"),
        MONAGENT_UNIT=str(tmp_path / "no-such.service"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("MONAGENT_CONFIG", None)
    env.pop("JOURNAL_STREAM", None)
    for command, codes in commands_table():
        if command.startswith("sudo") and os.geteuid() != 0:
            continue  # as written it needs root
        words = argv(command, checkout)
        if words[3] == "run":
            code, output = _run_until_first_cycle(words, checkout, env)
        else:
            done = subprocess.run(words, cwd=checkout, env=env, capture_output=True, text=True, timeout=120, check=False)
            code, output = done.returncode, done.stdout + done.stderr
        assert code in codes, f"{command}: exit {code}, the README says {sorted(codes)}\n{output}"
        assert "Traceback" not in output, f"{command}\n{output}"


def _run_until_first_cycle(words: List[str], checkout: Path, env: Dict[str, str]) -> Tuple[int, str]:
    log = checkout / "run.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(words, cwd=checkout, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "first cycle" not in log.read_text(errors="replace") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    if "first cycle" not in text:
        pytest.fail(f"the agent never finished its first cycle:\n{text}")
    return code, text
